//! `kubectl srot` as an on-call person runs it: the real kubectl finds the plugin on the PATH (the
//! `secret-rotator` binary linked as `kubectl-srot`), with a kubeconfig whose context names the
//! namespace, against the local control plane and a real `secret-rotator run`.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support::db::local_server;
use crate::support::operator::*;
use crate::support::{TestNamespace, bin_dir, client, control_plane, install_crd, tool};

/// A directory with `kubectl-srot` (a link to the binary under test) and a kubeconfig whose current
/// context's namespace is `ns`.
struct Plugin {
    dir: tempfile::TempDir,
}

impl Plugin {
    fn new(ns: &str) -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_secret-rotator"),
            dir.path().join("kubectl-srot"),
        )
        .unwrap();
        std::fs::copy(&control_plane().kubeconfig, dir.path().join("kubeconfig")).unwrap();
        let p = Plugin { dir };
        let out = p.kubectl(&["config", "set-context", "--current", "--namespace", ns]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        p
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}:{}",
            self.dir.path().display(),
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(tool("kubectl"))
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("PATH", path)
            .output()
            .expect("running kubectl")
    }

    /// `kubectl srot ARGS`: exit code, stdout, stderr.
    fn srot(&self, args: &[&str]) -> (i32, String, String) {
        let mut full = vec!["srot"];
        full.extend_from_slice(args);
        let out = self.kubectl(&full);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn ok(r: (i32, String, String), what: &str) -> String {
    assert_eq!(r.0, 0, "{what}: exit {}\n{}{}", r.0, r.1, r.2);
    r.1
}

#[tokio::test]
async fn status_rotate_history_rollback_suspend_and_resume() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "srot").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    let plugin = Plugin::new(&ns.name);
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n",
    )
    .await;
    wait_ready(&c, &ns.name, "api", "True", "Synced", 30).await;
    let v1_value = secret_text(&get_secret(&c, &ns.name, "api").await.unwrap(), "value");

    // status: the namespace comes from the kubeconfig's context.
    let table = ok(plugin.srot(&["status"]), "status");
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STORE SECRET"),
        "{table}"
    );
    assert!(lines[1].starts_with("api "), "{table}");
    assert!(lines[1].contains(&format!("{}.api", ns.name)), "{table}");
    assert!(
        lines[1].contains(" v1 ") && lines[1].contains("Synced"),
        "{table}"
    );
    let json = ok(
        plugin.srot(&["status", "-A", "-o", "json"]),
        "status -A -o json",
    );
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["namespace"] == ns.name.as_str()
                && r["name"] == "api"
                && r["version"] == "v1"),
        "{json}"
    );
    let yaml = ok(
        plugin.srot(&["status", "api", "-o", "yaml"]),
        "status -o yaml",
    );
    assert!(yaml.contains("storeSecret:"), "{yaml}");

    // rotate --wait: a new Ready version.
    let out = ok(
        plugin.srot(&["rotate", "api", "--wait", "--timeout", "60s"]),
        "rotate --wait",
    );
    assert!(out.contains("rotated: v2 is Ready"), "{out}");
    let v2_value = secret_text(&get_secret(&c, &ns.name, "api").await.unwrap(), "value");
    assert_ne!(v1_value, v2_value);

    // history: both versions with their stages.
    let history = eventually(20, "history with two versions", || async {
        let h = ok(plugin.srot(&["history", "api"]), "history");
        (h.lines().count() >= 3).then_some(h)
    })
    .await;
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].starts_with("VERSION") && lines[0].contains("STAGES"),
        "{history}"
    );
    assert!(
        lines[1].starts_with("v2 ") && lines[1].contains("SYSCURRENT"),
        "{history}"
    );
    assert!(
        lines[2].starts_with("v1 ") && lines[2].contains("SYSPREVIOUS"),
        "{history}"
    );

    // rollback to a version the store does not hold: refused at once, exit 2, nothing asked.
    let (code, _, err) = plugin.srot(&["rollback", "api", "--to", "v9"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("does not hold version v9") && err.contains("v2, v1"),
        "{err}"
    );
    let sr = get_sr(&c, &ns.name, "api").await;
    assert!(
        !sr.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("secretrotator.dev/rollback-to")
    );

    // rollback --wait to v1: SYSCURRENT and the synced Secret hold v1's value again, as a ROLLBACK task.
    let out = ok(
        plugin.srot(&[
            "rollback",
            "api",
            "--to",
            "v1",
            "--wait",
            "--timeout",
            "60s",
        ]),
        "rollback",
    );
    assert!(out.contains("rolled back") && out.contains("v1"), "{out}");
    let s = eventually(20, "the Secret back at v1", || async {
        let s = get_secret(&c, &ns.name, "api").await?;
        (secret_text(&s, "value") == v1_value).then_some(s)
    })
    .await;
    assert_eq!(
        s.metadata.annotations.unwrap()["secretrotator.dev/version-id"],
        "v1"
    );
    let st = get_sr(&c, &ns.name, "api").await.status.unwrap();
    assert_eq!(st.version_id.as_deref(), Some("v1"));
    let rb = st.last_rollback.unwrap();
    assert!(
        rb.task_id.is_some(),
        "the store recorded the rollback as a task"
    );
    // suspend: rotate and rollback are refused by the plugin (exit 2); a rollback asked for directly is
    // refused by the operator, recorded, and Ready stays True.
    let out = ok(plugin.srot(&["suspend", "api"]), "suspend");
    assert!(out.contains("suspended"), "{out}");
    assert!(get_sr(&c, &ns.name, "api").await.spec.suspend);
    let (code, _, err) = plugin.srot(&["rotate", "api"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = plugin.srot(&["rollback", "api", "--to", "v2"]);
    assert_eq!(code, 2, "{err}");
    annotate(
        &c,
        &ns.name,
        "api",
        "secretrotator.dev/rollback-to",
        "v2/direct",
    )
    .await;
    let st = eventually(20, "the refused rollback recorded", || async {
        let st = get_sr(&c, &ns.name, "api").await.status?;
        st.last_rollback
            .as_ref()
            .is_some_and(|r| r.request == "v2/direct")
            .then_some(st)
    })
    .await;
    let rb = st.last_rollback.clone().unwrap();
    assert_eq!(rb.result, secret_rotator::api::RollbackResult::Refused);
    assert!(rb.message.contains("suspended"), "{}", rb.message);
    assert_eq!(st.version_id.as_deref(), Some("v1"));
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Synced")
    );
    let out = ok(plugin.srot(&["resume", "api"]), "resume");
    assert!(out.contains("resumed"), "{out}");
    assert!(!get_sr(&c, &ns.name, "api").await.spec.suspend);
}

/// `rotate --wait` on a rotation that fails exits 1 with the condition's message.
#[tokio::test]
async fn rotate_wait_reports_a_failed_rotation() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "srot-fail").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    let plugin = Plugin::new(&ns.name);
    let admin: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
        "stringData": {"username": "dba", "password": "not-used-anywhere"}
    }))
    .unwrap();
    kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.clone(), &ns.name)
        .create(&Default::default(), &admin)
        .await
        .unwrap();
    // A database nobody listens for: every rotation fails to connect.
    local_server(&c, &ns.name, "pg-1", "postgresql", 1, Some("db-admin")).await;
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: db\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database:\n    serverRef: {name: pg-1, kind: DatabaseServer}\n    username: app\n",
    )
    .await;
    wait_ready(&c, &ns.name, "db", "False", "RotationFailed", 60).await;
    let (code, _, err) = plugin.srot(&["rotate", "db", "--wait", "--timeout", "90s"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("rotation failed") && err.contains("CSMS.0510.CONNECT"),
        "{err}"
    );
}
