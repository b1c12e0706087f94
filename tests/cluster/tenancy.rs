//! Tenancy, tried as an attacker with only `create`/`patch` on SecretRotations would: a resource names a
//! server and an account, and the operator acts on nothing else on its behalf. Real apiserver (and its
//! audit log), real PostgreSQL, and listeners that record what reaches them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::db::{ADMIN_PASSWORD, Postgres, local_server};
use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd};

/// A TCP listener that counts the connections that reach it and answers each with `answer` (or nothing).
async fn recording_listener(answer: Option<Vec<u8>>) -> (u16, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                if let Some(a) = answer {
                    let _ = s.write_all(&a).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (port, seen)
}

fn sr(name: &str, database: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  secretType: RDS-FG\n  rotation: {{period: 30d}}\n  database: {database}\n"
    )
}

fn apply_cluster_server(name: &str, spec: &str) {
    crate::support::helm::kubectl_stdin(
        &control_plane().kubeconfig,
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: secretrotator.dev/v1alpha1\nkind: ClusterDatabaseServer\nmetadata:\n  name: {name}\nspec: {spec}\n"
        ),
    );
}

fn delete_cluster_server(name: &str) {
    let _ = crate::support::kubectl(&["delete", "clusterdatabaseserver", name, "--wait=false"]);
}

/// The audit log's requests for one object path (as `verb path`).
fn audited(path: &str) -> Vec<String> {
    let state = control_plane()
        .kubeconfig
        .parent()
        .expect("the kubeconfig's directory")
        .to_path_buf();
    let log = std::fs::read_to_string(state.join("audit.log")).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the audit log is needed)",
            state.join("audit.log").display()
        )
    });
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["requestURI"]
                .as_str()
                .is_some_and(|u| u.split('?').next() == Some(path))
        })
        .map(|e| format!("{} {}", e["verb"].as_str().unwrap_or(""), path))
        .collect()
}

/// The old inline fields and any Secret a tenant names reach nothing: the schema wants a server, a server
/// that does not allow the namespace or the account makes no connection, and the Secret the tenant named
/// is never read.
#[tokio::test]
async fn a_tenant_reaches_no_database_and_no_secret_the_platform_did_not_grant() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "tenancy-reach").await;
    let n = ns.name.as_str();
    let victim: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "victim"},
        "stringData": {"username": "someone", "password": "the-victims-password"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), n)
        .create(&PostParams::default(), &victim)
        .await
        .unwrap();
    let (port, seen) = recording_listener(None).await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, n, &[]);

    // The inline fields of before: pruned by the schema, which then wants a server.
    let inline = sr(
        "inline",
        &format!(
            "{{engine: postgresql, host: 127.0.0.1, port: {port}, username: app, adminSecretRef: {{name: victim}}, tls: {{mode: disable}}}}"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("inline.yaml");
    std::fs::write(&manifest, &inline).unwrap();
    let out = crate::support::kubectl(&["apply", "-n", n, "-f", manifest.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a resource without serverRef was accepted"
    );
    assert!(err.contains("serverRef"), "{err}");

    // A server for another namespace, and one that allows this namespace but not the account.
    let other = format!("{n}-other");
    let narrow = format!("{n}-narrow");
    apply_cluster_server(
        &other,
        &format!(
            "{{engine: postgresql, host: 127.0.0.1, port: {port}, tls: {{mode: disable}}, accounts: ['*'], allowedNamespaces: {{names: [billing]}}}}"
        ),
    );
    apply_cluster_server(
        &narrow,
        &format!(
            "{{engine: postgresql, host: 127.0.0.1, port: {port}, tls: {{mode: disable}}, accounts: ['app_*'], allowedNamespaces: {{names: [{n}]}}}}"
        ),
    );
    apply_sr(
        &c,
        n,
        &sr(
            "other",
            &format!("{{serverRef: {{name: {other}}}, username: app}}"),
        ),
    )
    .await;
    apply_sr(
        &c,
        n,
        &sr(
            "narrow",
            &format!("{{serverRef: {{name: {narrow}}}, username: dba}}"),
        ),
    )
    .await;
    apply_sr(
        &c,
        n,
        &sr(
            "missing",
            "{serverRef: {name: nowhere, kind: DatabaseServer}, username: app}",
        ),
    )
    .await;
    let sr_other = wait_ready(&c, n, "other", "False", "Forbidden", 30).await;
    assert!(
        ready_condition(&sr_other)
            .message
            .contains(&format!("does not allow namespace {n}"))
    );
    let sr_narrow = wait_ready(&c, n, "narrow", "False", "Forbidden", 30).await;
    assert!(
        ready_condition(&sr_narrow)
            .message
            .contains("does not allow the account dba")
    );
    wait_ready(&c, n, "missing", "False", "ServerNotFound", 30).await;
    // Give a wrong operator time to connect anyway.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a refused resource made a connection"
    );
    // Nothing was stored for them either.
    for name in ["other", "narrow", "missing"] {
        assert!(
            get_secret(&c, n, name).await.is_none(),
            "{name}: a synced Secret"
        );
    }
    // The Secret the tenant named was never read: only the test's own create is in the audit log.
    let requests = audited(&format!("/api/v1/namespaces/{n}/secrets/victim"));
    assert!(
        requests.iter().all(|r| !r.starts_with("get ")),
        "{requests:?}"
    );
    delete_cluster_server(&other);
    delete_cluster_server(&narrow);
}

/// The administrator's account cannot be taken over: naming it is refused before anything is stored,
/// and an edit afterwards rotates only the account it names; the administrator's password never changes.
#[tokio::test]
async fn the_administrator_account_cannot_be_taken_over() {
    let pg = Postgres::start();
    pg.admin_sql("CREATE ROLE app LOGIN PASSWORD 'initial-app-pw'")
        .await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "tenancy-admin").await;
    let n = ns.name.as_str();
    let admin: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
        "stringData": {"username": "admin", "password": ADMIN_PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), n)
        .create(&PostParams::default(), &admin)
        .await
        .unwrap();
    local_server(&c, n, "pg", "postgresql", pg.port, Some("db-admin")).await;
    let files = OperatorFiles::new();
    let mut op = start_in(&files, n, &[]);
    apply_sr(
        &c,
        n,
        &sr(
            "db",
            "{serverRef: {name: pg, kind: DatabaseServer}, username: admin}",
        ),
    )
    .await;
    let refused = wait_ready(&c, n, "db", "False", "Forbidden", 30).await;
    assert!(
        ready_condition(&refused).message.contains("administrator"),
        "{:?}",
        ready_condition(&refused)
    );
    // The edit the attack needed: another account. It rotates that account, nothing else.
    let srs: Api<secret_rotator::api::SecretRotation> = Api::namespaced(c.clone(), n);
    srs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({"spec": {"database": {"username": "app"}}})),
    )
    .await
    .unwrap();
    // The refusal was a failed attempt: the new account's first rotation waits for its backoff (10 s,
    // doubling with each refused attempt before the edit landed; a loaded machine may see several).
    wait_ready(&c, n, "db", "True", "Synced", 180).await;
    let synced = get_secret(&c, n, "db").await.expect("the synced Secret");
    assert_eq!(secret_text(&synced, "username"), "app");
    assert!(pg.login("app", &secret_text(&synced, "password")).await);
    assert!(
        pg.login("admin", ADMIN_PASSWORD).await,
        "the administrator's password changed"
    );
    op.stop();
    use secret_rotator_store::Store;
    let store = files.open_store();
    let v = store
        .show_version_by_stage("default", &format!("{n}.db"), "SYSCURRENT")
        .await
        .unwrap();
    let text = String::from_utf8_lossy(v.value.expose()).into_owned();
    assert!(
        !text.contains("\"admin\""),
        "the store holds the administrator: {text}"
    );
}

/// A database server's own words (here a hostile one's, with terminal escapes) never reach the status:
/// the condition names the step that failed.
#[tokio::test]
async fn a_servers_error_text_is_not_copied_into_the_status() {
    // A PostgreSQL ErrorResponse to the startup message: severity, code, and a message with an escape
    // sequence and a role-existence hint.
    let msg = "\u{1b}[31mrole \"app\" does not exist\u{1b}[0m";
    let mut fields = Vec::new();
    for (k, v) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', msg)] {
        fields.push(k);
        fields.extend_from_slice(v.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut answer = vec![b'E'];
    answer.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    answer.extend_from_slice(&fields);
    let (port, seen) = recording_listener(Some(answer)).await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "tenancy-text").await;
    let n = ns.name.as_str();
    let admin: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
        "stringData": {"username": "admin", "password": "not-used"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), n)
        .create(&PostParams::default(), &admin)
        .await
        .unwrap();
    local_server(&c, n, "hostile", "postgresql", port, Some("db-admin")).await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, n, &[]);
    apply_sr(
        &c,
        n,
        &sr(
            "db",
            "{serverRef: {name: hostile, kind: DatabaseServer}, username: app}",
        ),
    )
    .await;
    let sr = wait_ready(&c, n, "db", "False", "RotationFailed", 60).await;
    assert!(
        seen.load(Ordering::SeqCst) > 0,
        "the server was never reached"
    );
    let status = serde_json::to_string(&sr.status).unwrap();
    assert!(
        !status.contains('\u{1b}') && !status.contains("\\u001b"),
        "{status}"
    );
    assert!(
        !status.contains("does not exist"),
        "the server's words reached the status: {status}"
    );
    assert!(status.contains("CSMS.0510."), "{status}");
    let events = event_text(&c, n).await;
    assert!(!events.contains("does not exist"), "{events}");
    // The server's own status says what its login met, escaped.
    let servers: Api<secret_rotator::api::DatabaseServer> = Api::namespaced(c.clone(), n);
    let ready = eventually(30, "the server's Ready condition", || async {
        let s = servers.get("hostile").await.ok()?;
        s.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready")
    })
    .await;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "LoginFailed"),
        "{ready:?}"
    );
    assert!(ready.message.starts_with("CSMS.0510."), "{}", ready.message);
    assert!(!ready.message.contains('\u{1b}'), "{}", ready.message);
    assert!(
        ready.message.contains("\\u{1b}"),
        "the escape is written out: {}",
        ready.message
    );
}

/// A person's requests cost nothing to make and a rotation each to carry out: rotate-now and rollback-to
/// wait for `--min-rotation-period` since SYSCURRENT changed, and a rollback goes only to a version younger
/// than `--max-rollback-age`.
#[tokio::test]
async fn requests_are_bounded_by_the_rotation_floor_and_the_rollback_age() {
    let c = client().await;
    install_crd(&c).await;
    let common = |name: &str| {
        Common {
            name,
            period: "30d",
            extra: "",
        }
        .yaml()
    };
    // A floor of an hour: twenty rotate-now values in a row make no version.
    let slow = TestNamespace::new(&c, "tenancy-floor").await;
    let files = OperatorFiles::new();
    let _op = start_in(
        &files,
        &slow.name,
        &[("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1h")],
    );
    apply_sr(&c, &slow.name, &common("api")).await;
    wait_version(&c, &slow.name, "api", "v1", 30).await;
    for i in 0..20 {
        annotate(
            &c,
            &slow.name,
            "api",
            "secretrotator.dev/rotate-now",
            &format!("flood-{i}"),
        )
        .await;
    }
    let sr = eventually(30, "the request waits", || async {
        let sr = get_sr(&c, &slow.name, "api").await;
        condition(&sr, "Rotating")
            .is_some_and(|r| r.reason == "RateLimited")
            .then_some(sr)
    })
    .await;
    let rotating = condition(&sr, "Rotating").unwrap();
    assert!(
        rotating.message.contains("rotate-now"),
        "{}",
        rotating.message
    );
    assert_eq!(sr.status.unwrap().version_id.as_deref(), Some("v1"));
    // An age of one second: v1 is too old to go back to by the time it is asked for.
    let young = TestNamespace::new(&c, "tenancy-age").await;
    let files2 = OperatorFiles::new();
    let _op2 = start_in(
        &files2,
        &young.name,
        &[("SECRET_ROTATOR_MAX_ROLLBACK_AGE", "1s")],
    );
    apply_sr(&c, &young.name, &common("api")).await;
    wait_version(&c, &young.name, "api", "v1", 30).await;
    annotate(&c, &young.name, "api", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &young.name, "api", "v2", 30).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    annotate(
        &c,
        &young.name,
        "api",
        "secretrotator.dev/rollback-to",
        "v1",
    )
    .await;
    let sr = eventually(30, "the rollback is refused", || async {
        let sr = get_sr(&c, &young.name, "api").await;
        sr.status
            .as_ref()
            .and_then(|s| s.last_rollback.as_ref())
            .is_some_and(|r| r.request == "v1")
            .then_some(sr)
    })
    .await;
    let st = sr.status.unwrap();
    let last = st.last_rollback.unwrap();
    assert_eq!(
        last.result,
        secret_rotator::api::RollbackResult::Refused,
        "{}",
        last.message
    );
    assert!(
        last.message.contains("--max-rollback-age"),
        "{}",
        last.message
    );
    assert_eq!(st.version_id.as_deref(), Some("v2"));
}
