//! Test support: a real local control plane for each test binary, a fresh namespace per test, and
//! helpers for kubectl and the CRD.
//!
//! The control plane is the one named by `SECRET_ROTATOR_KUBECONFIG` (scripts/test starts one and shares
//! it), or else one this binary starts with `scripts/testenv up`; a watcher started with it stops it when
//! this process exits, so nothing is left running.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the cached control plane binaries, kubectl and helm.
pub fn bin_dir() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/testenv"))
        .arg("bin")
        .output()
        .expect("running scripts/testenv bin");
    assert!(out.status.success(), "scripts/testenv bin failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A binary from the cache, or a failure that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `scripts/testenv install` (scripts/test does it) to build or fetch it",
        p.display()
    );
    p
}

/// A running control plane.
pub struct ControlPlane {
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The state directory when this binary started it (logs, pid files).
    pub state: Option<PathBuf>,
}

static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();

/// The control plane for this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    CONTROL_PLANE.get_or_init(|| {
        if let Ok(kc) = std::env::var("SECRET_ROTATOR_KUBECONFIG") {
            let kubeconfig = PathBuf::from(kc);
            assert!(
                kubeconfig.is_file(),
                "SECRET_ROTATOR_KUBECONFIG names {}, which does not exist",
                kubeconfig.display()
            );
            return ControlPlane {
                kubeconfig,
                state: None,
            };
        }
        start_control_plane()
    })
}

/// Makes `cp` the control plane of this test binary (every helper here then talks to it). Must be called
/// before anything uses [`control_plane`]; the node tests use it for the control plane with a node.
pub fn use_control_plane(cp: ControlPlane) {
    assert!(
        CONTROL_PLANE.set(cp).is_ok(),
        "use_control_plane called after the control plane was chosen"
    );
}

/// A control plane of its own (for tests that stop its parts), stopped when this process exits.
pub fn start_control_plane() -> ControlPlane {
    for b in ["kube-apiserver", "kube-controller-manager", "kubectl"] {
        tool(b);
    }
    let state = std::env::temp_dir().join(format!(
        "secret-rotator-test-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let out = Command::new(repo_root().join("scripts/testenv"))
        .arg("up")
        .arg(&state)
        .env("SECRET_ROTATOR_WATCH_PID", std::process::id().to_string())
        .output()
        .expect("running scripts/testenv up");
    assert!(
        out.status.success(),
        "scripts/testenv up failed (run `scripts/testenv install` first):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ControlPlane {
        kubeconfig: state.join("kubeconfig"),
        state: Some(state),
    }
}

impl ControlPlane {
    /// `scripts/testenv stop|start DIR NAME` on this control plane.
    pub fn component(&self, action: &str, name: &str) {
        let state = self
            .state
            .as_ref()
            .expect("only a control plane this process started can be stopped");
        let out = Command::new(repo_root().join("scripts/testenv"))
            .args([action, &state.to_string_lossy(), name])
            .output()
            .expect("running scripts/testenv");
        assert!(
            out.status.success(),
            "scripts/testenv {action} {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A kube client for the admin user.
pub async fn client() -> Client {
    client_for(&control_plane().kubeconfig).await
}

/// A kube client from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("reading kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig to config");
    Client::try_from(config).expect("building a kube client")
}

/// Runs kubectl against the control plane and returns its output.
pub fn kubectl(args: &[&str]) -> Output {
    Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .output()
        .expect("running kubectl")
}

/// Runs kubectl and asserts it succeeded; returns stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args);
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs (server-side applies) the project's CRDs and waits until they are established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in secret_rotator::crdgen::crds() {
        let name = crd.metadata.name.clone().expect("the CRD has a name");
        crds.patch(
            &name,
            &PatchParams::apply("secret-rotator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .expect("applying the CRD");
        wait_crd_established(client, &name).await;
    }
}

/// Waits until a CRD reports `Established=True`.
pub async fn wait_crd_established(client: &Client, name: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for _ in 0..200 {
        if let Ok(c) = crds.get(name).await {
            let established = c
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("CRD {name} was not established within 20 s");
}

/// A namespace made for one test, deleted when dropped.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>`.
    pub async fn new(client: &Client, prefix: &str) -> TestNamespace {
        let name = format!("{prefix}-{:08x}", rand::random::<u32>());
        let ns: Api<Namespace> = Api::all(client.clone());
        let obj: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {"secretrotator.dev/test": "true"}},
        }))
        .expect("namespace object");
        ns.create(&PostParams::default(), &obj)
            .await
            .expect("creating the test namespace");
        TestNamespace { name }
    }

    /// Deletes the namespace now (instead of at drop).
    pub async fn delete(self, client: &Client) {
        let ns: Api<Namespace> = Api::all(client.clone());
        let _ = ns.delete(&self.name, &DeleteParams::background()).await;
        std::mem::forget(self);
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Best effort, without waiting: the control plane is thrown away after the run anyway.
        let _ = Command::new(bin_dir().join("kubectl"))
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .env("KUBECONFIG", &control_plane().kubeconfig)
            .output();
    }
}
pub mod csms;
pub mod db;
pub mod helm;
pub mod node;
pub mod operator;
