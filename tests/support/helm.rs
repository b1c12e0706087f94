//! The real helm and kubectl against a given kubeconfig: the chart tests of the control plane
//! (`tests/cluster/helm.rs`) and of the node (`tests/node/helm_node.rs`) share them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::{repo_root, tool};

/// Runs helm with its caches under the temporary directory.
pub fn helm(kubeconfig: &Path, args: &[&str]) -> Output {
    let tmp = std::env::temp_dir();
    Command::new(tool("helm"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HELM_CACHE_HOME", tmp.join("sr-helm-cache"))
        .env("HELM_CONFIG_HOME", tmp.join("sr-helm-config"))
        .env("HELM_DATA_HOME", tmp.join("sr-helm-data"))
        .output()
        .expect("running helm")
}

/// Runs helm; fails the test with its output unless it succeeds. Returns stdout.
pub fn helm_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = helm(kubeconfig, args);
    assert!(
        out.status.success(),
        "helm {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The chart's directory.
pub fn chart() -> String {
    repo_root()
        .join("charts/secret-rotator")
        .display()
        .to_string()
}

/// Runs kubectl with `input` on stdin; fails the test unless it succeeds. Returns stdout.
pub fn kubectl_stdin(kubeconfig: &Path, args: &[&str], input: &str) -> String {
    let mut child = Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writing to kubectl");
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "kubectl {}:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
