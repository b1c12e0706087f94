//! Crash safety of database rotation against real PostgreSQL and MariaDB servers. A child process (this
//! binary, re-executed) rotates SingleUser and MultiUser secrets in a loop through the real password
//! targets; the parent kills it with SIGKILL at a random moment, then checks that every account's
//! database password is a value the store holds, that every version decrypts with exactly one
//! SYSCURRENT, and that a pending rotation completes with its original value and then logs in.
//!
//! `DB_CRASH_TRIALS` sets the trials per engine (default 10 here; scripts/crash-trials runs 50).

#[path = "support/db.rs"]
mod db;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::PasswordChanger;
use secret_rotator_store::database::{self, Connection};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

const P: &str = "crash";

fn conn(engine: &str, port: u16) -> Connection {
    let (engine, admin) = if engine == "postgresql" {
        (secret_rotator::api::DatabaseEngine::Postgresql, "admin")
    } else {
        (secret_rotator::api::DatabaseEngine::Mysql, "root")
    };
    Connection {
        engine,
        host: "127.0.0.1".into(),
        port,
        database: None,
        tls: secret_rotator::api::TlsMode::Disable,
        ca_pem: None,
        admin: Some((
            admin.into(),
            SecretValue::from_str_value(db::ADMIN_PASSWORD),
        )),
    }
}

fn target(engine: &str, port: u16) -> Arc<dyn PasswordChanger> {
    database::target(conn(engine, port))
}

fn open(dir: &std::path::Path) -> EmbeddedStore {
    let key = MasterKey::from_file(&dir.join("key")).expect("key");
    EmbeddedStore::open(&dir.join("store.redb"), key, EmbeddedOptions::default())
        .expect("the store reopens")
}

const SECRETS: &[(&str, &str, &[&str])] = &[
    ("single", "SingleUser", &["solo"]),
    ("multi", "MultiUser", &["duo_a", "duo_b"]),
];

async fn child(dir: PathBuf, engine: String, port: u16) {
    let s = open(&dir);
    let t = target(&engine, port);
    loop {
        for (name, _, _) in SECRETS {
            let _ = s
                .rotate(
                    P,
                    name,
                    RotateOptions {
                        changer: Some(t.clone()),
                        policy: None,
                    },
                )
                .await;
        }
    }
}

async fn login(engine: &str, port: u16, user: &str, password: &str) -> bool {
    let c = Connection {
        admin: None,
        ..conn(engine, port)
    };
    database::target(c)
        .test_login(user, &SecretValue::from_str_value(password))
        .await
        .is_ok()
}

async fn check(dir: &std::path::Path, engine: &str, port: u16) -> Result<bool, String> {
    let s = open(dir);
    let t = target(engine, port);
    let mut resumed = false;
    for (name, _, users) in SECRETS {
        let page = s
            .list_versions(P, name, Some(200), None)
            .await
            .map_err(|e| e.to_string())?;
        // Every value held (a pending one may already be set on the database), and whether it is only
        // pending (a rotation that may not have reached the database yet).
        let mut held: Vec<(DatabaseCredential, bool)> = Vec::new();
        for v in &page.version_metadatas {
            let full = s
                .show_version(P, name, &v.id)
                .await
                .map_err(|e| format!("{name} {} does not decrypt: {e}", v.id))?;
            let only_pending =
                !v.version_stages.is_empty() && v.version_stages.iter().all(|x| x == SYSPENDING);
            held.push((
                DatabaseCredential::from_value(&full.value).ok_or("not a credential")?,
                only_pending,
            ));
        }
        let currents = page
            .version_metadatas
            .iter()
            .filter(|v| v.version_stages.iter().any(|x| x == SYSCURRENT))
            .count();
        if currents != 1 {
            return Err(format!("{name}: {currents} SYSCURRENT versions"));
        }
        for user in *users {
            let mut ok = false;
            for (c, _) in held
                .iter()
                .filter(|(c, _)| c.username == *user && !c.password.is_empty())
            {
                if login(engine, port, user, &c.password).await {
                    ok = true;
                    break;
                }
            }
            // An account the store has completed a rotation of (not one whose first rotation is still
            // pending: the database may hold its original password, which the store never knew; a
            // MultiUser secret starts knowing only its first account's).
            let ever_set = held
                .iter()
                .any(|(c, pending)| c.username == *user && !c.password.is_empty() && !pending);
            if ever_set && !ok {
                return Err(format!(
                    "{engine} {name}: no value the store holds logs in as {user}"
                ));
            }
        }
        let pending = s
            .show_version_by_stage(P, name, SYSPENDING)
            .await
            .ok()
            .and_then(|v| {
                DatabaseCredential::from_value(&v.value).map(|c| (v.version_metadata.id.clone(), c))
            });
        let r = s
            .rotate(
                P,
                name,
                RotateOptions {
                    changer: Some(t.clone()),
                    policy: None,
                },
            )
            .await
            .map_err(|e| format!("{name}: rotate after the kill: {e}"))?;
        let cur = DatabaseCredential::from_value(
            &s.show_version_by_stage(P, name, SYSCURRENT)
                .await
                .map_err(|e| e.to_string())?
                .value,
        )
        .ok_or("current")?;
        if let Some((id, p)) = &pending {
            resumed = true;
            if r.version_id != *id || cur.password != p.password {
                return Err(format!(
                    "{name}: the pending rotation {id} did not complete with its own value"
                ));
            }
        }
        if !login(engine, port, &cur.username, &cur.password).await {
            return Err(format!(
                "{engine} {name}: SYSCURRENT does not log in after convergence"
            ));
        }
    }
    Ok(resumed)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(dir) = std::env::var("DB_CRASH_CHILD_DIR") {
        let engine = std::env::var("DB_CRASH_ENGINE").expect("engine");
        let port: u16 = std::env::var("DB_CRASH_PORT")
            .expect("port")
            .parse()
            .expect("port");
        rt.block_on(child(PathBuf::from(dir), engine, port));
        return;
    }
    let trials: usize = std::env::var("DB_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let (mut passed, mut failed) = (0usize, 0usize);
    let exe = std::env::current_exe().expect("exe");
    let mut rng = rand::rng();
    for engine in ["postgresql", "mysql"] {
        let pg;
        let maria;
        let port = if engine == "postgresql" {
            pg = db::Postgres::start();
            pg.port
        } else {
            maria = db::Mariadb::start();
            maria.port
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let key = MasterKey::generate().expect("key");
        std::fs::write(dir.path().join("key"), key.to_base64().as_bytes()).expect("key file");
        rt.block_on(async {
            for (name, sub, users) in SECRETS {
                for u in *users {
                    let sql_pw = "initial-pw";
                    if engine == "postgresql" {
                        let (client, c) = tokio_postgres::connect(
                            &format!(
                                "host=127.0.0.1 port={port} user=admin password={} dbname=postgres",
                                db::ADMIN_PASSWORD
                            ),
                            tokio_postgres::NoTls,
                        )
                        .await
                        .expect("pg");
                        tokio::spawn(c);
                        client
                            .batch_execute(&format!("CREATE ROLE {u} LOGIN PASSWORD '{sql_pw}'"))
                            .await
                            .expect("create role");
                    } else {
                        use mysql_async::prelude::Queryable;
                        let opts: mysql_async::Opts = mysql_async::OptsBuilder::default()
                            .ip_or_hostname("127.0.0.1")
                            .tcp_port(port)
                            .user(Some("root"))
                            .pass(Some(db::ADMIN_PASSWORD))
                            .prefer_socket(false)
                            .into();
                        let mut c = mysql_async::Conn::new(opts).await.expect("maria");
                        c.query_drop(format!("CREATE USER '{u}'@'%' IDENTIFIED BY '{sql_pw}'"))
                            .await
                            .expect("create user");
                    }
                }
                let s = open(dir.path());
                s.create_secret(
                    P,
                    CreateSecret {
                        name: name.to_string(),
                        secret_type: Some("RDS-FG".into()),
                        secret_string: Some(
                            DatabaseCredential {
                                username: users[0].to_string(),
                                password: "initial-pw".into(),
                            }
                            .to_value(),
                        ),
                        rotation_config: Some(format!(
                            r#"{{"SecretSubType":"{sub}","Usernames":{}}}"#,
                            serde_json::to_string(users).unwrap()
                        )),
                        ..Default::default()
                    },
                )
                .await
                .expect("create");
            }
        });
        let started = Instant::now();
        let mut resumed = 0;
        for trial in 0..trials {
            let mut c = Command::new(&exe)
                .env("DB_CRASH_CHILD_DIR", dir.path())
                .env("DB_CRASH_ENGINE", engine)
                .env("DB_CRASH_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("child");
            std::thread::sleep(Duration::from_millis(rng.random_range(20..600)));
            c.kill().expect("SIGKILL");
            let _ = c.wait();
            match rt.block_on(check(dir.path(), engine, port)) {
                Ok(r) => {
                    passed += 1;
                    resumed += usize::from(r);
                }
                Err(e) => {
                    eprintln!("{engine} trial {trial}: {e}");
                    failed += 1;
                }
            }
        }
        let tasks: u32 = rt.block_on(async {
            let s = open(dir.path());
            s.list_tasks(P, TaskFilter::default())
                .await
                .map(|t| t.total)
                .unwrap_or(0)
        });
        println!(
            "database crash test, {engine}: {trials} SIGKILL trials in {:.1}s, {resumed} found a pending rotation and completed it with its value, {tasks} rotation tasks in all",
            started.elapsed().as_secs_f64()
        );
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
