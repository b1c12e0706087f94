//! RotateSecret through `serve` on real databases: a targets file maps the secret's InstanceId to
//! a throwaway PostgreSQL or MariaDB server, and the operator's `csms` backend rotates through it, with
//! `serve` answering at once while the database steps run in the background (the default), and with
//! `--synchronous-rotation`; and the operator process itself (`run --store csms`) through `serve` in both
//! modes, on a local control plane. Also: the answers without a targets file, for an unknown instance, for
//! an account the instance may not rotate, and for a secret scheduled for deletion.

use crate::support::csms as csms_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::db::{ADMIN_PASSWORD, Mariadb, Postgres};
use csms_support::{PROJECT, Serving, TOKEN, start_serving, token_client};
use secret_rotator_server::RotationMode;
use secret_rotator_server::targets::TargetsFile;
use secret_rotator_store::csms::{CsmsOptions, CsmsStore};
use secret_rotator_store::*;
use serde_json::Value;

/// Client options: quick retries, and task polls long enough for a 10 s database timeout.
fn opts() -> CsmsOptions {
    CsmsOptions {
        max_attempts: 3,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
        request_timeout: Duration::from_secs(30),
        task_timeout: Duration::from_secs(40),
        task_poll: Duration::from_millis(100),
    }
}

fn private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A targets file in `dir` with one instance per `(id, engine, port, admin user)`, each for PROJECT, with
/// an administrator credential file next to it.
fn targets(dir: &Path, instances: &[(&str, &str, u16, &str)]) -> PathBuf {
    let mut text = String::from("instances:\n");
    for (id, engine, port, admin) in instances {
        private(
            &dir.join(format!("{id}-admin.yaml")),
            &format!("username: {admin}\npassword: {ADMIN_PASSWORD}\n"),
        );
        text.push_str(&format!(
            "  {id}:\n    engine: {engine}\n    host: 127.0.0.1\n    port: {port}\n    tls: {{mode: disable}}\n    admin_credentials_file: {id}-admin.yaml\n    projects: [{PROJECT}]\n"
        ));
    }
    let path = dir.join("targets.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn serve_with_targets(path: &Path, rotation: RotationMode) -> csms_support::TestServer {
    let resolver = Arc::new(TargetsFile::load(path).unwrap());
    start_serving(Serving {
        resolver: Some(resolver),
        rotation,
        ..Serving::default()
    })
    .await
}

/// A listener that accepts connections and never answers: a database that hangs.
fn black_hole() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            held.push(c);
        }
    });
    port
}

async fn create_db_secret(
    client: &CsmsStore,
    name: &str,
    instance: &str,
    user: &str,
    password: &str,
    secret_type: &str,
) {
    client
        .create_secret(
            PROJECT,
            CreateSecret {
                name: name.into(),
                secret_type: Some(secret_type.into()),
                secret_string: Some(
                    DatabaseCredential {
                        username: user.into(),
                        password: password.into(),
                    }
                    .to_value(),
                ),
                rotation_config: Some(format!(
                    r#"{{"InstanceId":"{instance}","SecretSubType":"SingleUser"}}"#
                )),
                ..CreateSecret::default()
            },
        )
        .await
        .unwrap();
}

async fn current_password(client: &CsmsStore, name: &str) -> (String, String) {
    let v = client
        .show_version_by_stage(PROJECT, name, SYSCURRENT)
        .await
        .unwrap();
    let cred = DatabaseCredential::from_value(&v.value).unwrap();
    (v.version_metadata.id, cred.password.clone())
}

/// A raw RotateSecret: the status, the body, and how long the answer took.
async fn raw_rotate(url: &str, name: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/{PROJECT}/secrets/{name}/rotate"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

async fn task(client: &CsmsStore, id: &str) -> RotationTask {
    client.show_task(PROJECT, id).await.unwrap()
}

/// The default: RotateSecret answers at once with the task; the database steps run in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csms_backend_rotates_real_postgresql_through_serve_in_the_background() {
    let pg = Postgres::start();
    pg.admin_sql("CREATE ROLE app_bg LOGIN PASSWORD 'initial-bg-0123456789'")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let hang = black_hole();
    let path = targets(
        dir.path(),
        &[
            ("rds-pg", "postgresql", pg.port, "admin"),
            ("rds-hang", "postgresql", hang, "admin"),
        ],
    );
    let srv = serve_with_targets(&path, RotationMode::Background).await;
    let client = token_client(&srv.url, opts());
    create_db_secret(
        &client,
        "bg.db",
        "rds-pg",
        "app_bg",
        "initial-bg-0123456789",
        "RDS-FG",
    )
    .await;

    // The operator's backend: RotateSecret, then the task polled to SUCCESS, then SYSCURRENT read back.
    let r = client
        .rotate(PROJECT, "bg.db", RotateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.version_id.as_str(), r.secret_name.as_str()),
        ("v2", "bg.db")
    );
    assert_eq!(
        task(&client, &r.rotation_task_id).await.task_status,
        TaskStatus::Success
    );
    let (id, new) = current_password(&client, "bg.db").await;
    assert_eq!(id, "v2");
    assert!(pg.login("app_bg", &new).await, "the new password logs in");
    assert!(
        !pg.login("app_bg", "initial-bg-0123456789").await,
        "the old one no longer does"
    );

    // The answer itself: at once, the task and the version it makes current, while the task runs.
    let (status, body, took) = raw_rotate(&srv.url, "bg.db").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["secret_name"], "bg.db");
    assert_eq!(body["version_id"], "v3");
    let task_id = body["rotation_task_id"].as_str().unwrap().to_owned();
    assert_eq!(task_id.len(), 36, "{body}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let t = task(&client, &task_id).await;
        if t.task_status != TaskStatus::Processing {
            break t;
        }
        assert!(Instant::now() < deadline, "task {task_id} still PROCESSING");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.task_status, TaskStatus::Success, "{done:?}");
    let (id, newer) = current_password(&client, "bg.db").await;
    assert_eq!(id, "v3");
    assert!(pg.login("app_bg", &newer).await && !pg.login("app_bg", &new).await);

    // A database that hangs: the answer still comes at once; the task is PROCESSING while the connection
    // waits (10 s), then FAILED with the step's code; the backend reports that failure.
    create_db_secret(
        &client,
        "bg.hang",
        "rds-hang",
        "app_bg",
        "initial-bg-0123456789",
        "RDS-FG",
    )
    .await;
    let (status, body, took) = raw_rotate(&srv.url, "bg.hang").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        took < Duration::from_secs(2),
        "waited for the database: {took:?}"
    );
    let hang_task = body["rotation_task_id"].as_str().unwrap().to_owned();
    let t = task(&client, &hang_task).await;
    assert_eq!(t.task_status, TaskStatus::Processing, "{t:?}");
    // The backend, asked to rotate meanwhile, is refused as concurrent (400 CSMS.0903) ...
    let e = client
        .rotate(PROJECT, "bg.hang", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "CSMS.0903"), "{e}");
    // ... and the task ends FAILED with the database step's code.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let t = task(&client, &hang_task).await;
        if t.task_status != TaskStatus::Processing {
            break t;
        }
        assert!(Instant::now() < deadline, "still PROCESSING after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(failed.task_status, TaskStatus::Failed);
    assert!(
        failed.task_error_code.starts_with("CSMS.0510."),
        "{failed:?}"
    );
    // The backend's own rotation of it resumes the same task and reports the failure as the task's.
    let e = client
        .rotate(PROJECT, "bg.hang", RotateOptions::default())
        .await
        .unwrap_err();
    match &e {
        StoreError::RotationFailed { task_id, code, .. } => {
            assert_eq!(task_id, &hang_task);
            assert!(code.starts_with("CSMS.0510."), "{e}");
        }
        other => panic!("expected RotationFailed, got {other:?}"),
    }
    assert_eq!(current_password(&client, "bg.hang").await.0, "v1");
}

/// `--synchronous-rotation`: the answer comes when the rotation has finished; MariaDB this time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csms_backend_rotates_real_mariadb_through_serve_synchronously() {
    let db = Mariadb::start();
    db.admin_sql("CREATE USER 'app_sync'@'127.0.0.1' IDENTIFIED BY 'initial-sync-0123456789'")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = targets(dir.path(), &[("taurus-1", "mysql", db.port, "root")]);
    let srv = serve_with_targets(&path, RotationMode::Synchronous).await;
    let client = token_client(&srv.url, opts());
    create_db_secret(
        &client,
        "sync.db",
        "taurus-1",
        "app_sync",
        "initial-sync-0123456789",
        "GaussDB-FG",
    )
    .await;

    let r = client
        .rotate(PROJECT, "sync.db", RotateOptions::default())
        .await
        .unwrap();
    assert_eq!(r.version_id, "v2");
    assert_eq!(
        task(&client, &r.rotation_task_id).await.task_status,
        TaskStatus::Success
    );
    let (_, new) = current_password(&client, "sync.db").await;
    assert!(db.login("app_sync", &new).await);
    assert!(!db.login("app_sync", "initial-sync-0123456789").await);

    // The raw answer holds the finished rotation: the task is SUCCESS by the time it arrives.
    let (status, body, _) = raw_rotate(&srv.url, "sync.db").await;
    assert_eq!(
        (status, body["version_id"].as_str()),
        (200, Some("v3")),
        "{body}"
    );
    let t = task(&client, body["rotation_task_id"].as_str().unwrap()).await;
    assert_eq!(t.task_status, TaskStatus::Success);
    let (_, newest) = current_password(&client, "sync.db").await;
    assert!(db.login("app_sync", &newest).await);

    // A failing rotation (the account was dropped): the synchronous answer is the failure (502); the
    // backend finds the FAILED task and reports the database step's code.
    db.admin_sql("DROP USER 'app_sync'@'127.0.0.1'").await;
    let (status, body, _) = raw_rotate(&srv.url, "sync.db").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["error_code"], "CSMS.0502", "{body}");
    let e = client
        .rotate(PROJECT, "sync.db", RotateOptions::default())
        .await
        .unwrap_err();
    match &e {
        StoreError::RotationFailed { code, .. } => {
            assert!(code.starts_with("CSMS.0510."), "{e}")
        }
        other => panic!("expected RotationFailed, got {other:?}"),
    }
    assert_eq!(current_password(&client, "sync.db").await.0, "v3");
}

/// What a database RotateSecret answers when `serve` cannot rotate it: no targets file, an InstanceId
/// it does not hold (or holds for another project), an account the instance may not rotate; and a
/// secret scheduled for deletion.
#[tokio::test]
async fn database_rotations_serve_cannot_carry_out_are_refused_clearly() {
    // No --targets-file (nor --simulated-databases).
    let srv = start_serving(Serving {
        no_targets: true,
        ..Serving::default()
    })
    .await;
    let client = token_client(&srv.url, opts());
    create_db_secret(
        &client,
        "none.db",
        "rds-1",
        "app",
        "pw-0123456789",
        "RDS-FG",
    )
    .await;
    let (status, body, _) = raw_rotate(&srv.url, "none.db").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["error_code"], "CSMS.0905");
    let msg = body["error"]["error_msg"].as_str().unwrap();
    assert!(
        msg.contains("--targets-file") && msg.contains("none.db"),
        "{msg}"
    );
    assert_eq!(
        client
            .list_tasks(PROJECT, TaskFilter::default())
            .await
            .unwrap()
            .total,
        0,
        "nothing was started"
    );
    // COMMON secrets are still refused as before (CSMS.0002), not for the missing targets.
    client
        .create_secret(
            PROJECT,
            CreateSecret {
                name: "none.api".into(),
                secret_string: Some("x".to_owned().into()),
                ..CreateSecret::default()
            },
        )
        .await
        .unwrap();
    let (status, body, _) = raw_rotate(&srv.url, "none.api").await;
    assert_eq!(
        (status, body["error"]["error_code"].as_str()),
        (400, Some("CSMS.0002"))
    );

    // A targets file without the secret's instance; an instance of another project; a superuser.
    let dir = tempfile::tempdir().unwrap();
    let path = targets(dir.path(), &[("rds-1", "postgresql", 5432, "admin")]);
    let srv = serve_with_targets(&path, RotationMode::Background).await;
    let client = token_client(&srv.url, opts());
    create_db_secret(
        &client,
        "unknown.db",
        "rds-9",
        "app",
        "pw-0123456789",
        "RDS-FG",
    )
    .await;
    let (status, body, _) = raw_rotate(&srv.url, "unknown.db").await;
    assert_eq!(
        (status, body["error"]["error_code"].as_str()),
        (400, Some("CSMS.0906")),
        "{body}"
    );
    assert!(
        body["error"]["error_msg"]
            .as_str()
            .unwrap()
            .contains("\"rds-9\""),
        "{body}"
    );
    client
        .create_secret(
            "projB",
            CreateSecret {
                name: "other.db".into(),
                secret_type: Some("RDS-FG".into()),
                secret_string: Some(
                    DatabaseCredential {
                        username: "app".into(),
                        password: "pw-0123456789".into(),
                    }
                    .to_value(),
                ),
                rotation_config: Some(
                    r#"{"InstanceId":"rds-1","SecretSubType":"SingleUser"}"#.into(),
                ),
                ..CreateSecret::default()
            },
        )
        .await
        .unwrap();
    let e = client
        .rotate("projB", "other.db", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "CSMS.0906"), "{e}");
    // The superuser: the task fails with FORBIDDEN before any connection is made.
    create_db_secret(
        &client,
        "su.db",
        "rds-1",
        "postgres",
        "pw-0123456789",
        "RDS-FG",
    )
    .await;
    let e = client
        .rotate(PROJECT, "su.db", RotateOptions::default())
        .await
        .unwrap_err();
    match &e {
        StoreError::RotationFailed { code, message, .. } => {
            assert_eq!(code, "CSMS.0510.FORBIDDEN", "{e}");
            assert!(message.contains("built-in superuser"), "{message}");
        }
        other => panic!("expected RotationFailed, got {other:?}"),
    }

    // Scheduled for deletion: the rotation is refused with CSMS.0103 before any target is looked at;
    // restored, it is refused for its instance again.
    let pending = client
        .schedule_deletion(PROJECT, "unknown.db", Some(7))
        .await
        .unwrap();
    assert_eq!(pending.state, SecretState::PendingDelete);
    let (status, body, _) = raw_rotate(&srv.url, "unknown.db").await;
    assert_eq!(
        (status, body["error"]["error_code"].as_str()),
        (400, Some("CSMS.0103")),
        "{body}"
    );
    let e = client
        .rotate(PROJECT, "unknown.db", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        e,
        StoreError::PendingDeletion {
            name: "unknown.db".into()
        }
    );
    let restored = client.restore_secret(PROJECT, "unknown.db").await.unwrap();
    assert_eq!(restored.state, SecretState::Enabled);
    let (_, body, _) = raw_rotate(&srv.url, "unknown.db").await;
    assert_eq!(body["error"]["error_code"], "CSMS.0906", "{body}");
}

/// The operator (`run --store csms`) against `serve` with a targets file on real PostgreSQL, in `mode`: a
/// database SecretRotation rotates on create and its synced Secret's password logs in; the store secret
/// scheduled for deletion through `serve` stops it (`StoreSecretPendingDeletion`, the Secret kept);
/// restored, a rotate-now rotates again.
async fn operator_through_serve(mode: RotationMode, tag: &str) {
    use crate::support::operator::*;
    use crate::support::*;
    use kube::api::Api;
    use secret_rotator::api::SecretRotation;
    use std::process::{Command, Stdio};

    let pg = Postgres::start();
    let user = format!("app_op_{tag}");
    pg.admin_sql(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'initial-op-0123456789'"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = targets(dir.path(), &[("rds-op", "postgresql", pg.port, "admin")]);
    let srv = serve_with_targets(&path, mode).await;
    let direct = token_client(&srv.url, opts());

    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, &format!("serve-op-{tag}")).await;
    let store_name = format!("{}.orders-db", ns.name);
    // The csms backend never creates secrets: the database secret exists in the store first.
    create_db_secret(
        &direct,
        &store_name,
        "rds-op",
        &user,
        "initial-op-0123456789",
        "RDS-FG",
    )
    .await;
    // rotateOnCreate rotates a value older than the resource, whose creation time has whole seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let auth = dir.path().join("csms-auth.yaml");
    let hmac = dir.path().join("hmac.key");
    private(&auth, &format!("token: {TOKEN}\n"));
    std::fs::write(&hmac, [5u8; 32]).unwrap();
    std::fs::set_permissions(&hmac, std::fs::Permissions::from_mode(0o600)).unwrap();
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = dir.path().join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["run", "--store", "csms", "--leader-election=false"])
        .args(["--csms-endpoint", &srv.url])
        .arg("--csms-auth-file")
        .arg(&auth)
        .arg("--hmac-key-file")
        .arg(&hmac)
        .args(["--csms-project-id", PROJECT])
        .args(["--namespace", &ns.name, "--metrics-addr", &metrics_addr])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        // As the other tests' operators: a rotate-now may follow the first rotation at once.
        .env("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1s")
        .env("RUST_LOG", "info,secret_rotator=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut op = Operator {
        child: Some(child),
        log,
        metrics_addr,
    };
    crate::support::db::local_server(&c, &ns.name, "orders-pg", "postgresql", pg.port, None).await;
    apply_sr(
        &c,
        &ns.name,
        &format!(
            "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: orders-db\nspec:\n  secretType: RDS-FG\n  rotation: {{period: 30d}}\n  database: {{serverRef: {{name: orders-pg, kind: DatabaseServer}}, username: {user}}}\n"
        ),
    )
    .await;
    let sr = wait_version(&c, &ns.name, "orders-db", "v2", 60).await;
    let task_id = sr.status.unwrap().rotation_task_id.unwrap_or_default();
    assert_eq!(
        task(&direct, &task_id).await.task_status,
        TaskStatus::Success,
        "{}",
        op.log_text()
    );
    let synced = eventually(30, "the synced Secret at v2", || async {
        get_secret(&c, &ns.name, "orders-db").await.filter(|s| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("secretrotator.dev/version-id"))
                .is_some_and(|v| v == "v2")
        })
    })
    .await;
    let password = secret_text(&synced, "password");
    assert_eq!(secret_text(&synced, "username"), user);
    assert!(
        pg.login(&user, &password).await,
        "the synced password does not log in"
    );
    assert!(!pg.login(&user, "initial-op-0123456789").await);
    wait_ready(&c, &ns.name, "orders-db", "True", "Synced", 30).await;

    // Scheduled for deletion through serve: the operator stops with its own condition.
    direct
        .schedule_deletion(PROJECT, &store_name, Some(7))
        .await
        .unwrap();
    annotate(
        &c,
        &ns.name,
        "orders-db",
        "secretrotator.dev/rotate-now",
        "1",
    )
    .await;
    wait_ready(
        &c,
        &ns.name,
        "orders-db",
        "False",
        "StoreSecretPendingDeletion",
        60,
    )
    .await;
    let synced = get_secret(&c, &ns.name, "orders-db").await.unwrap();
    assert_eq!(
        secret_text(&synced, "password"),
        password,
        "the Secret is kept"
    );
    assert!(
        pg.login(&user, &password).await,
        "the database is untouched"
    );

    // Restored: a rotate-now rotates again.
    direct.restore_secret(PROJECT, &store_name).await.unwrap();
    annotate(
        &c,
        &ns.name,
        "orders-db",
        "secretrotator.dev/rotate-now",
        "2",
    )
    .await;
    wait_version(&c, &ns.name, "orders-db", "v3", 90).await;
    wait_ready(&c, &ns.name, "orders-db", "True", "Synced", 30).await;
    let synced = get_secret(&c, &ns.name, "orders-db").await.unwrap();
    let newest = secret_text(&synced, "password");
    assert!(pg.login(&user, &newest).await && !pg.login(&user, &password).await);
    let api: Api<SecretRotation> = Api::namespaced(c.clone(), &ns.name);
    let st = api.get("orders-db").await.unwrap().status.unwrap();
    assert_eq!(st.failed_attempts, 0, "{st:?}");
    assert!(op.alive(), "the operator exited:\n{}", op.log_text());
    op.stop();
    // No value in the operator's log.
    let text = op.log_text();
    for needle in [password.as_str(), newest.as_str(), ADMIN_PASSWORD] {
        assert!(!text.contains(needle), "the operator log holds a value");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_rotates_through_serve_answering_at_once() {
    operator_through_serve(RotationMode::Background, "bg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_rotates_through_serve_answering_synchronously() {
    operator_through_serve(RotationMode::Synchronous, "sync").await;
}
