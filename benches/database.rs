//! Database rotation latency, one run per engine: a full rotation through the embedded store (pending
//! version stored durably, ALTER through the administrator, fresh login test, SYSCURRENT moved) as a ratio
//! to the bare minimum made directly with the driver (one ALTER on an open admin connection plus one fresh
//! login). Needs DB_BENCH_PG_PORT and DB_BENCH_MARIA_PORT of servers prepared by scripts/bench-db.

use std::time::{Duration, Instant};

use secret_rotator::api::{DatabaseEngine, TlsMode};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::database::{self, Connection};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

fn conn(engine: DatabaseEngine, port: u16, admin: &str, pw: &str) -> Connection {
    Connection {
        engine,
        host: "127.0.0.1".into(),
        port,
        database: None,
        tls: TlsMode::Disable,
        ca_pem: None,
        admin: Some((admin.into(), SecretValue::from_str_value(pw))),
    }
}

/// What one rotation is made of, measured on their own in the same run: the operator's fresh login as the
/// account (through the same guards; a rotation makes two, the precheck and the test) and one durable
/// store commit (a rotation makes two).
struct Parts {
    login: Duration,
    commit: Duration,
}

async fn rotations(
    engine: DatabaseEngine,
    port: u16,
    admin: &str,
    pw: &str,
    n: u32,
) -> (Duration, Parts) {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(
        &dir.path().join("s.redb"),
        MasterKey::generate().unwrap(),
        EmbeddedOptions::default(),
    )
    .unwrap();
    s.create_secret(
        "p",
        CreateSecret {
            name: "db".into(),
            secret_type: Some("RDS-FG".into()),
            secret_string: Some(
                DatabaseCredential {
                    username: "bench_user".into(),
                    password: String::new(),
                }
                .to_value(),
            ),
            rotation_config: Some(r#"{"SecretSubType":"SingleUser"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let target = database::target(conn(engine, port, admin, pw));
    let start = Instant::now();
    for _ in 0..n {
        s.rotate(
            "p",
            "db",
            RotateOptions {
                changer: Some(target.clone()),
                policy: None,
            },
        )
        .await
        .unwrap();
    }
    let full = start.elapsed() / n;
    let current = s
        .show_version_by_stage("p", "db", SYSCURRENT)
        .await
        .unwrap();
    let cred = DatabaseCredential::from_value(&current.value).unwrap();
    let password = SecretValue::from_str_value(&cred.password);
    let start = Instant::now();
    for _ in 0..n {
        target.test_login(&cred.username, &password).await.unwrap();
    }
    let login = start.elapsed() / n;
    s.create_secret(
        "p",
        CreateSecret {
            name: "common".into(),
            secret_string: Some(SecretValue::from_str_value("x")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let start = Instant::now();
    for _ in 0..n {
        s.create_version(
            "p",
            "common",
            CreateVersion {
                secret_string: Some(SecretValue::from_str_value("y")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let commit = start.elapsed() / n;
    (full, Parts { login, commit })
}

/// The breakdown, on stderr (stdout keeps one line per engine).
fn parts(engine: &str, full: Duration, bare: Duration, p: &Parts) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rest = ms(full) - 2.0 * ms(p.login) - 2.0 * ms(p.commit);
    eprintln!(
        "{engine} breakdown: the operator's fresh login {:.2} ms (two per rotation), a durable commit {:.2} ms (two per rotation), the rest {rest:.2} ms (the ALTER and its lookups); without the precheck login the ratio would be {:.2}",
        ms(p.login),
        ms(p.commit),
        (ms(full) - ms(p.login)) / ms(bare)
    );
}

async fn bare_pg(port: u16, pw: &str, n: u32) -> Duration {
    let (admin, c) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=admin password={pw} dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(c);
    let start = Instant::now();
    for i in 0..n {
        let new = format!("bare-password-{i}");
        admin
            .batch_execute(&format!("ALTER ROLE bench_user WITH PASSWORD '{new}'"))
            .await
            .unwrap();
        let (u, c) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=bench_user password={new} dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(c);
        u.simple_query("SELECT 1").await.unwrap();
    }
    start.elapsed() / n
}

async fn bare_maria(port: u16, pw: &str, n: u32) -> Duration {
    use mysql_async::prelude::Queryable;
    let opts = |u: &str, p: &str| -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some(u))
            .pass(Some(p))
            .prefer_socket(false)
            .into()
    };
    let mut admin = mysql_async::Conn::new(opts("root", pw)).await.unwrap();
    let start = Instant::now();
    for i in 0..n {
        let new = format!("bare-password-{i}");
        admin
            .query_drop(format!("ALTER USER 'bench_user'@'%' IDENTIFIED BY '{new}'"))
            .await
            .unwrap();
        let mut u = mysql_async::Conn::new(opts("bench_user", &new))
            .await
            .unwrap();
        let _: Option<i64> = u.query_first("SELECT 1").await.unwrap();
        u.disconnect().await.unwrap();
    }
    start.elapsed() / n
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    secret_rotator_store::tls::install_crypto_provider();
    let n: u32 = std::env::var("DB_BENCH_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let pw = std::env::var("DB_BENCH_ADMIN_PASSWORD")
        .expect("DB_BENCH_ADMIN_PASSWORD (run scripts/bench-db)");
    println!("database rotation benchmark ({n} rotations each)");
    println!(
        "  {:<10} {:>16} {:>22} {:>8}",
        "engine", "rotation (ms)", "bare ALTER+login (ms)", "ratio"
    );
    if let Some(port) = std::env::var("DB_BENCH_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        let bare = bare_pg(port, &pw, n).await;
        let (full, p) = rotations(DatabaseEngine::Postgresql, port, "admin", &pw, n).await;
        parts("postgresql", full, bare, &p);
        println!(
            "  {:<10} {:>16.2} {:>22.2} {:>8.2}",
            "postgresql",
            full.as_secs_f64() * 1e3,
            bare.as_secs_f64() * 1e3,
            full.as_secs_f64() / bare.as_secs_f64()
        );
    }
    if let Some(port) = std::env::var("DB_BENCH_MARIA_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
    {
        let bare = bare_maria(port, &pw, n).await;
        let (full, p) = rotations(DatabaseEngine::Mysql, port, "root", &pw, n).await;
        parts("mariadb", full, bare, &p);
        println!(
            "  {:<10} {:>16.2} {:>22.2} {:>8.2}",
            "mariadb",
            full.as_secs_f64() * 1e3,
            bare.as_secs_f64() * 1e3,
            full.as_secs_f64() / bare.as_secs_f64()
        );
    }
}
