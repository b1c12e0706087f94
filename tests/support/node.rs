//! A control plane with a real node (`scripts/testenv up --node`): containerd, runc, the CNI bridge,
//! kubelet, kube-scheduler, kube-proxy and dnsmasq, and the images `scripts/image` builds.
//!
//! The node named by `SECRET_ROTATOR_NODE_STATE` (scripts/test starts one and shares it), or else one
//! this binary starts, stopped by a watcher when this process exits. One node per machine: it needs
//! root and owns the bridge `cni-sr0` (10.244.0.0/24). A missing piece fails the test with what to do.
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::{ControlPlane, repo_root, tool, use_control_plane};

/// The control plane with a node.
pub struct Node {
    /// Its state directory (logs, the containerd socket, the audit log).
    pub state: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
}

static NODE: OnceLock<Node> = OnceLock::new();

/// The node of this test binary, started on first use; it is also the binary's control plane.
pub fn node() -> &'static Node {
    NODE.get_or_init(|| {
        let state = match std::env::var("SECRET_ROTATOR_NODE_STATE") {
            Ok(s) => {
                let state = PathBuf::from(s);
                assert!(
                    state.join("node.mode").is_file(),
                    "SECRET_ROTATOR_NODE_STATE names {}, which holds no node (scripts/testenv up --node DIR makes one)",
                    state.display()
                );
                state
            }
            Err(_) => start_node(),
        };
        let kubeconfig = state.join("kubeconfig");
        use_control_plane(ControlPlane {
            kubeconfig: kubeconfig.clone(),
            state: None,
        });
        Node { state, kubeconfig }
    })
}

fn start_node() -> PathBuf {
    let uid = Command::new("id").arg("-u").output().expect("running id");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the node tests need root: a node creates a bridge, network namespaces and mounts"
    );
    for b in [
        "kube-apiserver",
        "kube-controller-manager",
        "kubelet",
        "kube-scheduler",
        "kube-proxy",
        "kubectl",
        "helm",
    ] {
        tool(b);
    }
    let state = std::env::temp_dir().join(format!(
        "secret-rotator-node-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let out = Command::new(repo_root().join("scripts/testenv"))
        .args(["up", "--node"])
        .arg(&state)
        .env("SECRET_ROTATOR_WATCH_PID", std::process::id().to_string())
        .output()
        .expect("running scripts/testenv up --node");
    assert!(
        out.status.success(),
        "scripts/testenv up --node failed (scripts/testenv install installs and builds what it needs):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    state
}

/// Builds an image with `scripts/image KIND` and returns the archive. For the operator,
/// `SECRET_ROTATOR_IMAGE` names an archive already built (scripts/test builds it before the tests).
pub fn image_archive(kind: &str) -> PathBuf {
    if kind == "operator"
        && let Ok(p) = std::env::var("SECRET_ROTATOR_IMAGE")
    {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SECRET_ROTATOR_IMAGE names {}, which does not exist",
            p.display()
        );
        return p;
    }
    let out = Command::new(repo_root().join("scripts/image"))
        .arg(kind)
        .output()
        .expect("running scripts/image");
    assert!(
        out.status.success(),
        "scripts/image {kind} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .last()
        .expect("scripts/image printed no path");
    PathBuf::from(last.trim())
}

/// The image name an archive carries (its `io.containerd.image.name`).
pub fn image_name(archive: &Path) -> String {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("index.json")
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "{} has no index.json",
        archive.display()
    );
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).expect("index.json is JSON");
    index["manifests"][0]["annotations"]["io.containerd.image.name"]
        .as_str()
        .expect("the archive names its image")
        .to_owned()
}

static LOADED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Builds (once) and loads (once per process) an image into the node; returns its name.
pub fn load_image(kind: &str) -> String {
    let node = node();
    let archive = image_archive(kind);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    let set = loaded.get_or_insert_with(HashSet::new);
    if !set.contains(&archive) {
        let out = Command::new(repo_root().join("scripts/testenv"))
            .arg("load-image")
            .arg(&archive)
            .arg(&node.state)
            .output()
            .expect("running scripts/testenv load-image");
        assert!(
            out.status.success(),
            "scripts/testenv load-image {} failed:\n{}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        set.insert(archive.clone());
    }
    image_name(&archive)
}

/// The host pid of a running container (`containerd://<id>` from a pod's status).
pub fn container_pid(container_id: &str) -> u32 {
    let id = container_id
        .strip_prefix("containerd://")
        .unwrap_or(container_id);
    let out = Command::new("ctr")
        .arg("--address")
        .arg(node().state.join("node/containerd.sock"))
        .args(["-n", "k8s.io", "tasks", "ls"])
        .output()
        .expect("running ctr");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id)).then(|| f.next().and_then(|p| p.parse().ok()))?
        })
        .unwrap_or_else(|| panic!("no running task {id} in the node's containerd:\n{text}"))
}

/// The last lines of the node's logs, for a failure message.
pub fn node_logs() -> String {
    let n = node().state.join("node");
    let mut s = String::new();
    for f in ["kubelet.log", "containerd.log"] {
        let text = std::fs::read_to_string(n.join(f)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(25)..];
        s.push_str(&format!("--- {f} (last lines)\n{}\n", tail.join("\n")));
    }
    s
}
