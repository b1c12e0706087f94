//! Database rotation against real PostgreSQL 15 and MariaDB servers, driven by the operator process on
//! the local control plane.

use crate::support::db::{ADMIN_PASSWORD, Mariadb, Postgres, local_server};
use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use mysql_async::prelude::Queryable;
use secret_rotator_store::{Store, TaskFilter};

enum Db {
    Pg(Postgres),
    Maria(Mariadb),
}

impl Db {
    fn start(engine: &str) -> Db {
        match engine {
            "postgresql" => Db::Pg(Postgres::start()),
            _ => Db::Maria(Mariadb::start()),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Db::Pg(p) => p.port,
            Db::Maria(m) => m.port,
        }
    }

    fn admin_user(&self) -> &'static str {
        match self {
            Db::Pg(_) => "admin",
            Db::Maria(_) => "root",
        }
    }

    async fn create_user(&self, user: &str, password: &str) {
        match self {
            Db::Pg(p) => {
                p.admin_sql(&format!("CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
                    .await
            }
            Db::Maria(m) => {
                m.admin_sql(&format!(
                    "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
                ))
                .await
            }
        }
    }

    async fn login(&self, user: &str, password: &str) -> bool {
        match self {
            Db::Pg(p) => p.login(user, password).await,
            Db::Maria(m) => m.login(user, password).await,
        }
    }
}

async fn admin_secret(c: &Client, ns: &str, user: &str) {
    let s: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
        "stringData": {"username": user, "password": ADMIN_PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap();
}

fn db_sr(name: &str, engine: &str, port: u16, users: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  secretType: RDS-FG\n  rotation: {{period: 30d}}\n  database:\n    serverRef: {{name: {engine}-{port}, kind: DatabaseServer}}\n    {users}\n"
    )
}

async fn synced(c: &Client, ns: &str, name: &str, version: &str) -> (String, String) {
    eventually(20, &format!("Secret {name} at {version}"), || async {
        let s = get_secret(c, ns, name).await?;
        (s.metadata
            .annotations
            .as_ref()?
            .get("secretrotator.dev/version-id")?
            .as_str()
            == version)
            .then(|| (secret_text(&s, "username"), secret_text(&s, "password")))
    })
    .await
}

/// A database with the account `app`, a namespace with the administrator's Secret, an operator, and a
/// SingleUser SecretRotation `app-db` that became Ready at v2.
struct SingleUserSetup {
    db: Db,
    c: Client,
    ns: TestNamespace,
    files: OperatorFiles,
    op: Operator,
    p2: String,
}

async fn single_user_setup(engine: &str, prefix: &str) -> SingleUserSetup {
    let db = Db::start(engine);
    db.create_user("app", "initial-app-pw").await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, &format!("{prefix}-{}", &engine[..2])).await;
    admin_secret(&c, &ns.name, db.admin_user()).await;
    local_server(
        &c,
        &ns.name,
        &format!("{engine}-{}", db.port()),
        engine,
        db.port(),
        Some("db-admin"),
    )
    .await;
    let files = OperatorFiles::new();
    let op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(
        &c,
        &ns.name,
        &db_sr("app-db", engine, db.port(), "username: app"),
    )
    .await;
    wait_ready(&c, &ns.name, "app-db", "True", "Synced", 60).await;
    let (_, p2) = synced(&c, &ns.name, "app-db", "v2").await;
    SingleUserSetup {
        db,
        c,
        ns,
        files,
        op,
        p2,
    }
}

async fn single_user(engine: &str) {
    let SingleUserSetup {
        db,
        c,
        ns,
        files: _files,
        mut op,
        p2,
    } = single_user_setup(engine, "db-single").await;
    // v1 records the account with an unknown password; the bootstrap rotation set v2 through the admin.
    let st = get_sr(&c, &ns.name, "app-db").await.status.unwrap();
    assert_eq!(st.version_id.as_deref(), Some("v2"));
    assert_eq!(st.current_user.as_deref(), Some("app"));
    let task = st.rotation_task_id.clone().unwrap();
    assert_eq!(task.len(), 36);
    assert_eq!(
        secret_text(
            &get_secret(&c, &ns.name, "app-db").await.unwrap(),
            "username"
        ),
        "app"
    );
    let secret = get_secret(&c, &ns.name, "app-db").await.unwrap();
    assert_eq!(
        secret.metadata.annotations.unwrap()["secretrotator.dev/rotation-task-id"],
        task
    );
    assert_eq!(
        secret_text(&get_secret(&c, &ns.name, "app-db").await.unwrap(), "port"),
        db.port().to_string()
    );
    assert!(db.login("app", &p2).await, "the synced password logs in");
    assert!(
        !db.login("app", "initial-app-pw").await,
        "the old password is refused"
    );

    annotate(&c, &ns.name, "app-db", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "app-db", "v3", 30).await;
    let (_, p3) = synced(&c, &ns.name, "app-db", "v3").await;
    assert_ne!(p2, p3);
    assert!(db.login("app", &p3).await);
    assert!(!db.login("app", &p2).await);

    op.stop();
    let log = op.log_text();
    for v in [&p2, &p3, &ADMIN_PASSWORD.to_owned()] {
        assert!(
            !log.contains(v.as_str()),
            "the operator log holds a password"
        );
    }
    if let Db::Pg(pg) = &db {
        // log_statement = all: every statement is logged, and none holds a generated password.
        let pglog = std::fs::read_to_string(pg.log_path()).unwrap();
        assert!(
            pglog.contains("ALTER ROLE"),
            "log_statement = all was in effect"
        );
        assert!(
            pglog.contains("SCRAM-SHA-256$4096:"),
            "the verifier, not the password, was sent"
        );
        for v in [&p2, &p3] {
            assert!(
                !pglog.contains(v.as_str()),
                "the PostgreSQL log holds a generated password"
            );
        }
    }
}

#[tokio::test]
async fn single_user_postgresql() {
    single_user("postgresql").await;
}

#[tokio::test]
async fn single_user_mariadb() {
    single_user("mysql").await;
}

async fn multi_user(engine: &str) {
    let db = Db::start(engine);
    db.create_user("acct_a", "initial-a").await;
    db.create_user("acct_b", "initial-b").await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, &format!("db-multi-{}", &engine[..2])).await;
    admin_secret(&c, &ns.name, db.admin_user()).await;
    local_server(
        &c,
        &ns.name,
        &format!("{engine}-{}", db.port()),
        engine,
        db.port(),
        Some("db-admin"),
    )
    .await;
    let files = OperatorFiles::new();
    let _op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(
        &c,
        &ns.name,
        &db_sr(
            "multi",
            engine,
            db.port(),
            "mode: MultiUser\n    usernames: [acct_a, acct_b]",
        ),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "multi", "True", "Synced", 60).await;
    let current = sr.status.unwrap().current_user.unwrap();
    let (user, pw) = synced(&c, &ns.name, "multi", "v2").await;
    assert_eq!(user, current);
    assert_eq!(
        current, "acct_b",
        "the bootstrap rotation reset the account not recorded as current"
    );
    assert!(db.login(&user, &pw).await);

    // A client logged in with the current account keeps working through the rotation.
    let (held_ok, held_after) = match &db {
        Db::Pg(pg) => {
            // The Config builder, not a key=value string: generated passwords hold quotes and backslashes.
            let mut cfg = tokio_postgres::Config::new();
            cfg.host("127.0.0.1")
                .port(pg.port)
                .user(&user)
                .password(&pw)
                .dbname("postgres");
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let ok = client.simple_query("SELECT 1").await.is_ok();
            annotate(&c, &ns.name, "multi", "secretrotator.dev/rotate-now", "1").await;
            wait_version(&c, &ns.name, "multi", "v3", 30).await;
            (ok, client.simple_query("SELECT 2").await.is_ok())
        }
        Db::Maria(m) => {
            let mut conn = m.connect(&user, &pw).await;
            let ok: Option<i64> = conn.query_first("SELECT 1").await.unwrap();
            annotate(&c, &ns.name, "multi", "secretrotator.dev/rotate-now", "1").await;
            wait_version(&c, &ns.name, "multi", "v3", 30).await;
            let after: Result<Option<i64>, _> = conn.query_first("SELECT 2").await;
            (ok == Some(1), after.is_ok())
        }
    };
    assert!(held_ok && held_after, "the held connection as {user} broke");
    assert!(
        db.login(&user, &pw).await,
        "the account that was current was changed"
    );
    let (user3, pw3) = synced(&c, &ns.name, "multi", "v3").await;
    assert_eq!(user3, "acct_a", "the other account is current now");
    assert_eq!(
        get_sr(&c, &ns.name, "multi")
            .await
            .status
            .unwrap()
            .current_user
            .as_deref(),
        Some("acct_a")
    );
    assert!(db.login("acct_a", &pw3).await);
    assert!(!db.login("acct_a", "initial-a").await);
}

#[tokio::test]
async fn multi_user_postgresql() {
    multi_user("postgresql").await;
}

#[tokio::test]
async fn multi_user_mariadb() {
    multi_user("mysql").await;
}

/// The database stops mid-rotation: the task fails with its error recorded, the current credential keeps
/// working, and the rotation completes with the same pending password once the database is back.
async fn database_down(engine: &str) {
    let SingleUserSetup {
        mut db,
        c,
        ns,
        files,
        mut op,
        p2,
    } = single_user_setup(engine, "db-down").await;
    match &mut db {
        Db::Pg(p) => p.stop_server(),
        Db::Maria(m) => m.stop_server(),
    }
    annotate(
        &c,
        &ns.name,
        "app-db",
        "secretrotator.dev/rotate-now",
        "while-down",
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "app-db", "False", "RotationFailed", 40).await;
    let st = sr.status.unwrap();
    assert!(st.failed_attempts >= 1);
    let failure = st.last_failure.unwrap();
    assert!(
        failure.error_code.starts_with("CSMS.0510."),
        "{}",
        failure.error_code
    );
    assert_eq!(st.version_id.as_deref(), Some("v2"), "SYSCURRENT untouched");
    assert_eq!(
        secret_text(
            &get_secret(&c, &ns.name, "app-db").await.unwrap(),
            "password"
        ),
        p2
    );

    match &mut db {
        Db::Pg(p) => p.start_server(),
        Db::Maria(m) => m.start_server(),
    }
    assert!(db.login("app", &p2).await, "SYSCURRENT still logs in");
    wait_version(&c, &ns.name, "app-db", "v3", 60).await;
    let (_, p3) = synced(&c, &ns.name, "app-db", "v3").await;
    assert!(db.login("app", &p3).await);
    assert!(!db.login("app", &p2).await);
    op.stop();
    let store = files.open_store();
    let name = format!("{}.app-db", ns.name);
    let versions = store
        .list_versions("default", &name, None, None)
        .await
        .unwrap();
    assert_eq!(
        versions.version_metadatas.len(),
        3,
        "one pending version across every attempt"
    );
    let tasks = store
        .list_tasks(
            "default",
            TaskFilter {
                secret_name: Some(name.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let last = &tasks.tasks[0];
    assert!(
        last.attempt_nums >= 2,
        "the same task was resumed: {last:?}"
    );
    assert_eq!(last.task_status, secret_rotator_store::TaskStatus::Success);
}

#[tokio::test]
async fn postgresql_down_mid_rotation() {
    database_down("postgresql").await;
}

#[tokio::test]
async fn mariadb_down_mid_rotation() {
    database_down("mysql").await;
}

/// Sets a new password for `tls_user` through `base` in each TLS mode with its CA; a mode expected to work
/// must also leave a password that logs in (`login`), one expected to fail must fail (with CONNECT or TLS
/// when `check_code`).
async fn tls_modes(
    base: secret_rotator_store::database::Connection,
    cases: &[(secret_rotator::api::TlsMode, Option<Vec<u8>>, bool)],
    check_code: bool,
    login: impl AsyncFn(&str, &str) -> bool,
) {
    use secret_rotator_core::secret_value::SecretValue;
    for (mode, ca_pem, ok) in cases {
        let mut conn = base.clone();
        conn.tls = *mode;
        conn.ca_pem = ca_pem.clone();
        let target = secret_rotator_store::database::target(conn);
        let new = SecretValue::from_str_value(&format!("tls-{}", rand::random::<u32>()));
        let result = target.set_password("tls_user", &new, None).await;
        assert_eq!(result.is_ok(), *ok, "{mode:?}: {result:?}");
        if *ok {
            target.test_login("tls_user", &new).await.unwrap();
            assert!(login("tls_user", new.expose_str().unwrap()).await);
        } else if check_code {
            let e = result.unwrap_err();
            assert!(e.code == "CONNECT" || e.code == "TLS", "{e:?}");
        }
    }
}

/// TLS to PostgreSQL: require encrypts without verifying; verify-full checks the chain against the given
/// CA and the host name, and refuses another CA.
#[tokio::test]
async fn postgresql_tls_modes() {
    use secret_rotator::api::TlsMode;
    let (pg, ca) = Postgres::start_tls();
    pg.admin_sql("CREATE ROLE tls_user LOGIN PASSWORD 'tls-initial'")
        .await;
    let other_dir = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = crate::support::db::make_certs(other_dir.path());
    let cases = [
        (TlsMode::Require, None, true),
        (TlsMode::VerifyFull, Some(ca.clone()), true),
        (TlsMode::VerifyFull, Some(other_ca.clone()), false),
        (TlsMode::VerifyFull, None, false),
    ];
    tls_modes(pg.connection(true), &cases, true, async |u, p| {
        pg.login(u, p).await
    })
    .await;
}

/// TLS to MariaDB, as for PostgreSQL.
#[tokio::test]
async fn mariadb_tls_modes() {
    use secret_rotator::api::TlsMode;
    let (m, ca) = Mariadb::start_tls();
    m.admin_sql("CREATE USER 'tls_user'@'%' IDENTIFIED BY 'tls-initial'")
        .await;
    let other_dir = tempfile::tempdir().unwrap();
    let (other_ca, _, _) = crate::support::db::make_certs(other_dir.path());
    let cases = [
        (TlsMode::Require, None, true),
        (TlsMode::VerifyFull, Some(ca.clone()), true),
        (TlsMode::VerifyFull, Some(other_ca.clone()), false),
    ];
    tls_modes(m.connection(true), &cases, false, async |u, p| {
        m.login(u, p).await
    })
    .await;
}

/// SingleUser without an administrator: the operator adopts the account's current password from the
/// synced Secret only when that Secret's owner opted in, then rotates it as the account itself.
#[tokio::test]
async fn the_initial_password_is_adopted_only_from_an_opted_in_secret() {
    let db = Db::start("postgresql");
    db.create_user("selfapp", "initial-self-pw").await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "db-adopt").await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns.name);
    let initial: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "self-db"},
        "stringData": {"password": "initial-self-pw"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &initial)
        .await
        .unwrap();
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    local_server(&c, &ns.name, "self-pg", "postgresql", db.port(), None).await;
    let sr = "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: self-db\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database:\n    serverRef: {name: self-pg, kind: DatabaseServer}\n    username: selfapp\n";
    apply_sr(&c, &ns.name, sr).await;
    wait_ready(&c, &ns.name, "self-db", "False", "SecretNotOwned", 30).await;
    assert_eq!(
        secret_text(&secrets.get("self-db").await.unwrap(), "password"),
        "initial-self-pw",
        "nothing was written to a Secret whose owner did not opt in"
    );

    let patch =
        serde_json::json!({"metadata": {"annotations": {"secretrotator.dev/adopt": "true"}}});
    secrets
        .patch(
            "self-db",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    annotate(&c, &ns.name, "self-db", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "self-db", "v2", 60).await;
    let (user, p2) = synced(&c, &ns.name, "self-db", "v2").await;
    assert_eq!(user, "selfapp");
    assert!(
        db.login("selfapp", &p2).await,
        "the rotated password logs in"
    );
    assert!(!db.login("selfapp", "initial-self-pw").await);
}

/// An access rule lets the application in but refuses the operator's own login as the account (pg_hba, an
/// account limited to the application's hosts): the rotation changes nothing, and the application keeps a
/// password that works.
async fn no_lockout(engine: &str) {
    let db = Db::start(engine);
    match &db {
        Db::Pg(pg) => {
            pg.admin_sql("CREATE ROLE app LOGIN PASSWORD 'initial-app-pw'")
                .await
        }
        Db::Maria(m) => {
            m.admin_sql("CREATE USER 'app'@'localhost' IDENTIFIED BY 'initial-app-pw'")
                .await;
            m.admin_sql("CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY 'initial-app-pw'")
                .await;
        }
    }
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, &format!("db-lockout-{}", &engine[..2])).await;
    admin_secret(&c, &ns.name, db.admin_user()).await;
    local_server(
        &c,
        &ns.name,
        &format!("{engine}-{}", db.port()),
        engine,
        db.port(),
        Some("db-admin"),
    )
    .await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &db_sr("app-db", engine, db.port(), "username: app"),
    )
    .await;
    wait_ready(&c, &ns.name, "app-db", "True", "Synced", 60).await;
    let (_, p2) = synced(&c, &ns.name, "app-db", "v2").await;
    // Now only the application's own host may log in as app.
    match &db {
        Db::Pg(pg) => {
            pg.refuse_tcp_logins_of("app").await;
            assert!(pg.login_local("app", &p2).await);
            assert!(!pg.login("app", &p2).await, "the rule refuses TCP logins");
        }
        Db::Maria(m) => {
            m.admin_sql("DROP USER 'app'@'127.0.0.1'").await;
            assert!(m.login_local("app", &p2).await);
            assert!(
                !m.login("app", &p2).await,
                "the account is limited to localhost"
            );
        }
    }
    annotate(&c, &ns.name, "app-db", "secretrotator.dev/rotate-now", "1").await;
    let sr = wait_ready(&c, &ns.name, "app-db", "False", "RotationFailed", 60).await;
    let st = sr.status.unwrap();
    let failure = st.last_failure.unwrap();
    assert_eq!(
        failure.error_code, "CSMS.0510.PRECHECK",
        "{}",
        failure.message
    );
    assert_eq!(
        st.version_id.as_deref(),
        Some("v2"),
        "the synced Secret keeps v2"
    );
    let local = match &db {
        Db::Pg(pg) => pg.login_local("app", &p2).await,
        Db::Maria(m) => m.login_local("app", &p2).await,
    };
    assert!(
        local,
        "the application still logs in with the password it holds"
    );
}

#[tokio::test]
async fn no_lockout_postgresql() {
    no_lockout("postgresql").await;
}

#[tokio::test]
async fn no_lockout_mariadb() {
    no_lockout("mysql").await;
}

/// A rollback of a database secret: the operator sets the earlier version's password on the
/// real database through the rotation's steps; the application's Secret and the database agree again, and
/// the newer password no longer logs in.
async fn rollback(engine: &str) {
    let SingleUserSetup {
        db,
        c,
        ns,
        files: _files,
        op: _op,
        p2,
    } = single_user_setup(engine, "db-rollback").await;
    annotate(&c, &ns.name, "app-db", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "app-db", "v3", 30).await;
    let (_, p3) = synced(&c, &ns.name, "app-db", "v3").await;
    assert!(db.login("app", &p3).await);

    annotate(
        &c,
        &ns.name,
        "app-db",
        "secretrotator.dev/rollback-to",
        "v2",
    )
    .await;
    wait_version(&c, &ns.name, "app-db", "v2", 30).await;
    let (_, back) = synced(&c, &ns.name, "app-db", "v2").await;
    assert_eq!(back, p2, "the synced Secret holds v2's password again");
    assert!(db.login("app", &p2).await, "v2's password logs in again");
    assert!(!db.login("app", &p3).await, "v3's password no longer does");
    let st = get_sr(&c, &ns.name, "app-db").await.status.unwrap();
    let rb = st.last_rollback.unwrap();
    assert_eq!(rb.result, secret_rotator::api::RollbackResult::Done);
    assert_eq!(rb.task_id.as_ref().map(String::len), Some(36));
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test]
async fn rollback_postgresql() {
    rollback("postgresql").await;
}

#[tokio::test]
async fn rollback_mariadb() {
    rollback("mysql").await;
}

/// Administrator connections: kept between rotations for the same server and credentials,
/// and replaced when the server closed them (a restart).
async fn admin_backend(pg: &Postgres) -> Vec<i32> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=admin password={ADMIN_PASSWORD} dbname=postgres",
            pg.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE usename = 'admin' AND application_name = 'secret-rotator'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn administrator_connections_are_kept_and_renewed_postgresql() {
    use secret_rotator_core::secret_value::SecretValue;
    use secret_rotator_store::database::pool::AdminPool;
    use std::sync::Arc;
    let pg = Postgres::start();
    pg.admin_sql("CREATE ROLE pooled LOGIN PASSWORD 'p0'").await;
    let pool = Arc::new(AdminPool::default());
    let target = secret_rotator_store::database::changer_in(pg.connection(true), pool.clone());
    let mut first = None;
    for i in 1..=3 {
        let pw = format!("pooled-pw-{i}");
        target
            .set_password("pooled", &SecretValue::from_str_value(&pw), None)
            .await
            .unwrap();
        assert!(pg.login("pooled", &pw).await, "rotation {i}");
        let backends = admin_backend(&pg).await;
        assert_eq!(
            backends.len(),
            1,
            "one administrator connection: {backends:?}"
        );
        assert_eq!(
            *first.get_or_insert(backends[0]),
            backends[0],
            "the same one, kept"
        );
    }
    assert_eq!(pool.idle_count(), 1);
    // Another administrator password for the same server and user gets no kept connection.
    let mut other = pg.connection(true);
    other.admin = Some((
        "admin".into(),
        SecretValue::from_str_value("not-the-password"),
    ));
    let e = secret_rotator_store::database::changer_in(other, pool.clone())
        .set_password("pooled", &SecretValue::from_str_value("hijack"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code, "AUTH", "{e:?}");
    assert!(pg.login("pooled", "pooled-pw-3").await);
    // The server restarts: the kept connection is dead; the next change opens a new one.
    pg.stop_server();
    pg.start_server();
    target
        .set_password(
            "pooled",
            &SecretValue::from_str_value("after-restart"),
            None,
        )
        .await
        .unwrap();
    assert!(pg.login("pooled", "after-restart").await);
    let backends = admin_backend(&pg).await;
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert_ne!(
        Some(backends[0]),
        first,
        "a new connection after the restart"
    );
}

#[tokio::test]
async fn administrator_connections_are_kept_and_renewed_mariadb() {
    use secret_rotator_core::secret_value::SecretValue;
    use secret_rotator_store::database::pool::AdminPool;
    use std::sync::Arc;
    let mut m = Mariadb::start();
    m.admin_sql("CREATE USER 'pooled'@'%' IDENTIFIED BY 'p0'")
        .await;
    let pool = Arc::new(AdminPool::default());
    let target = secret_rotator_store::database::changer_in(m.connection(true), pool.clone());
    for i in 1..=3 {
        let pw = format!("pooled-pw-{i}");
        target
            .set_password("pooled", &SecretValue::from_str_value(&pw), None)
            .await
            .unwrap();
        assert!(m.login("pooled", &pw).await, "rotation {i}");
        assert_eq!(pool.idle_count(), 1);
    }
    m.stop_server();
    m.start_server();
    target
        .set_password(
            "pooled",
            &SecretValue::from_str_value("after-restart"),
            None,
        )
        .await
        .unwrap();
    assert!(m.login("pooled", "after-restart").await);
}
