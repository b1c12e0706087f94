//! The operator as a real process: started with a kubeconfig, its log captured to a file, stopped on
//! drop.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use secret_rotator::api::SecretRotation;

/// A running operator.
pub struct Operator {
    pub child: Option<Child>,
    pub log: PathBuf,
    pub metrics_addr: String,
}

/// Files an operator needs: a store path and a master key.
pub struct OperatorFiles {
    pub dir: tempfile::TempDir,
}

impl OperatorFiles {
    pub fn new() -> OperatorFiles {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        std::fs::write(
            &key,
            secret_rotator_store::embedded::crypto::MasterKey::generate()
                .unwrap()
                .to_base64()
                .as_bytes(),
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        OperatorFiles { dir }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store.redb")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("master.key")
    }

    /// Opens the store (only while no operator holds it).
    pub fn open_store(&self) -> secret_rotator_store::embedded::EmbeddedStore {
        let key =
            secret_rotator_store::embedded::crypto::MasterKey::from_file(&self.key()).unwrap();
        secret_rotator_store::embedded::EmbeddedStore::open(&self.store(), key, Default::default())
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    /// Starts `secret-rotator run` on the embedded store for one namespace.
    pub fn start(
        kubeconfig: &Path,
        files: &OperatorFiles,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let log = files
            .dir
            .path()
            .join(format!("operator-{}.log", rand::random::<u32>()));
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret-rotator"));
        cmd.arg("run")
            .arg("--store-path")
            .arg(files.store())
            .arg("--master-key-file")
            .arg(files.key())
            .args(["--namespace", namespace, "--metrics-addr", &metrics_addr])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,secret_rotator=debug")
            // The tests rotate every few seconds; the operator's default floor is a minute.
            .env("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("starting the operator");
        Operator {
            child: Some(child),
            log,
            metrics_addr,
        }
    }

    /// The /metrics text.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("fetching /metrics")
            .text()
            .await
            .expect("reading /metrics")
    }

    /// The captured log.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 200 ms until it returns Some, or fails after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies a SecretRotation from YAML (server-side apply, as `kubectl apply --server-side` would).
pub async fn apply_sr(client: &Client, ns: &str, yaml: &str) -> SecretRotation {
    let sr: SecretRotation = serde_saphyr::from_str(yaml).unwrap();
    let name = sr.metadata.name.clone().unwrap();
    let api: Api<SecretRotation> = Api::namespaced(client.clone(), ns);
    api.patch(
        &name,
        &PatchParams::apply("test-user").force(),
        &Patch::Apply(&sr),
    )
    .await
    .unwrap()
}

/// The SecretRotation.
pub async fn get_sr(client: &Client, ns: &str, name: &str) -> SecretRotation {
    Api::<SecretRotation>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// The condition `type_` of a resource's status (`Ready`, `Rotating`), if it has one.
pub fn condition(sr: &SecretRotation, type_: &str) -> Option<Condition> {
    sr.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// The Ready condition; a test that reads it expects one.
pub fn ready_condition(sr: &SecretRotation) -> Condition {
    condition(sr, "Ready").unwrap_or_else(|| panic!("no Ready condition: {:?}", sr.status))
}

/// A COMMON SecretRotation, as the tests apply them: a name, a period, its synced Secret of the same name,
/// and any further spec lines (indented by two spaces, under `spec:`).
pub struct Common<'a> {
    /// `metadata.name` and the synced Secret's name.
    pub name: &'a str,
    /// `spec.rotation.period`.
    pub period: &'a str,
    /// More lines of the spec.
    pub extra: &'a str,
}

impl Common<'_> {
    /// The manifest.
    pub fn yaml(&self) -> String {
        format!(
            "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  secretType: COMMON\n  rotation:\n    period: {period}\n  target:\n    name: {name}\n{extra}",
            name = self.name,
            period = self.period,
            extra = self.extra
        )
    }
}

/// Waits until Ready has `status` with `reason`, and returns the resource.
pub async fn wait_ready(
    client: &Client,
    ns: &str,
    name: &str,
    status: &str,
    reason: &str,
    secs: u64,
) -> SecretRotation {
    eventually(
        secs,
        &format!("{ns}/{name} Ready={status} {reason}"),
        || async {
            let sr = Api::<SecretRotation>::namespaced(client.clone(), ns)
                .get_opt(name)
                .await
                .ok()??;
            let ok = sr
                .status
                .as_ref()?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == status && c.reason == reason);
            ok.then_some(sr)
        },
    )
    .await
}

/// Waits until the status names `version`.
pub async fn wait_version(
    client: &Client,
    ns: &str,
    name: &str,
    version: &str,
    secs: u64,
) -> SecretRotation {
    eventually(secs, &format!("{ns}/{name} at {version}"), || async {
        let sr = Api::<SecretRotation>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .ok()??;
        (sr.status.as_ref()?.version_id.as_deref() == Some(version)).then_some(sr)
    })
    .await
}

/// A Secret, if present.
pub async fn get_secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// A key of a Secret as text.
pub fn secret_text(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// Sets an annotation on a SecretRotation (merge patch, as `kubectl annotate` does).
pub async fn annotate(client: &Client, ns: &str, name: &str, key: &str, value: &str) {
    let api: Api<SecretRotation> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Every event message in a namespace.
pub async fn event_text(client: &Client, ns: &str) -> String {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&Default::default()).await.unwrap();
    list.items
        .iter()
        .map(|e| {
            format!(
                "{} {} {}\n",
                e.reason.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
                e.regarding
                    .as_ref()
                    .and_then(|r| r.name.clone())
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Waits until the operator process has exited.
pub async fn wait_exit(op: &mut Operator, secs: u64) {
    for _ in 0..secs * 5 {
        if !op.alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the operator did not exit within {secs}s");
}

/// An operator for one namespace of the shared control plane, without leader election.
pub fn start_in(files: &OperatorFiles, namespace: &str, env: &[(&str, &str)]) -> Operator {
    Operator::start(
        &crate::support::control_plane().kubeconfig,
        files,
        namespace,
        &["--leader-election=false"],
        env,
    )
}

/// A directory for `secret-rotator serve`: `master.key` (new) and `auth.yaml` with one token for
/// `project`, both mode 0600.
pub fn serve_dir(token: &str, project: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("master.key"),
        secret_rotator_store::embedded::crypto::MasterKey::generate()
            .unwrap()
            .to_base64(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("auth.yaml"),
        format!("tokens:\n- token: {token}\n  projects: [{project}]\n"),
    )
    .unwrap();
    for f in ["master.key", "auth.yaml"] {
        std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    dir
}

/// `secret-rotator serve` on the files of [`serve_dir`], listening on a free loopback port (returned);
/// the caller adds flags, environment and output.
pub fn serve_command(dir: &Path) -> (Command, u16) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secret-rotator"));
    cmd.args([
        "serve",
        "--store-path",
        "store.redb",
        "--master-key-file",
        "master.key",
    ])
    .args([
        "--auth-file",
        "auth.yaml",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ])
    .current_dir(dir);
    (cmd, port)
}
