//! Crash safety of the embedded store. A child process (this binary, re-executed) rotates database
//! secrets in a loop against a file-backed "database"; the parent kills it with SIGKILL at a random moment,
//! then checks: the store reopens; every version decrypts; each secret has exactly one SYSCURRENT; every
//! account's database password is a value the store holds; a pending rotation resumes to completion with
//! its original value.
//!
//! `STORE_CRASH_TRIALS` sets the number of trials (default 200).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::{ChangeError, PasswordChanger};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

const PROJECT: &str = "crash";
const SECRETS: &[(&str, &str, &str)] = &[
    ("single", "SingleUser", "app"),
    ("multi", "MultiUser", "m_a"),
];

/// A database whose accounts are files: a password change is an atomic, durable rename.
struct FileTarget {
    dir: PathBuf,
}

impl FileTarget {
    fn read(&self, user: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(user)).ok()
    }
}

#[async_trait]
impl PasswordChanger for FileTarget {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        _: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        let tmp = self.dir.join(format!(".{user}.tmp"));
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(new.expose())?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(user))?;
            std::fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| ChangeError::new("SET_PASSWORD", e.to_string()))
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        match self.read(user) {
            Some(p) if p.as_bytes() == password.expose() => Ok(()),
            _ => Err(ChangeError::new("LOGIN_TEST", "refused")),
        }
    }

    fn describe(&self) -> String {
        "files".into()
    }
}

fn open(dir: &Path, key: &MasterKey) -> EmbeddedStore {
    EmbeddedStore::open(
        &dir.join("store.redb"),
        key.clone(),
        EmbeddedOptions::default(),
    )
    .expect("the store reopens")
}

fn target(dir: &Path) -> Arc<FileTarget> {
    Arc::new(FileTarget {
        dir: dir.join("db"),
    })
}

fn opts(t: &Arc<FileTarget>) -> RotateOptions {
    RotateOptions {
        changer: Some(t.clone() as Arc<dyn PasswordChanger>),
        policy: None,
    }
}

async fn child(dir: PathBuf, key: MasterKey) {
    let s = open(&dir, &key);
    let t = target(&dir);
    loop {
        for (name, _, _) in SECRETS {
            s.rotate(PROJECT, name, opts(&t))
                .await
                .expect("rotation in the child");
        }
    }
}

/// Checks one secret after a kill; returns whether a pending rotation was found and completed.
async fn check(s: &EmbeddedStore, t: &Arc<FileTarget>, name: &str) -> Result<bool, String> {
    let page = s
        .list_versions(PROJECT, name, Some(200), None)
        .await
        .map_err(|e| e.to_string())?;
    let mut held: Vec<DatabaseCredential> = Vec::new();
    for v in &page.version_metadatas {
        let full = s
            .show_version(PROJECT, name, &v.id)
            .await
            .map_err(|e| format!("{name} {} does not decrypt: {e}", v.id))?;
        held.push(
            DatabaseCredential::from_value(&full.value)
                .ok_or(format!("{name} {} is not a credential", v.id))?,
        );
    }
    let currents = page
        .version_metadatas
        .iter()
        .filter(|v| v.version_stages.iter().any(|s| s == SYSCURRENT))
        .count();
    if currents != 1 {
        return Err(format!("{name} has {currents} SYSCURRENT versions"));
    }
    // Every account's database password is a value the store holds.
    for user in ["app", "m_a", "m_b"] {
        if let Some(pw) = t.read(user)
            && !held.iter().any(|c| c.username == user && c.password == pw)
            && SECRETS.iter().any(|(n, _, _)| *n == name)
            && held.iter().any(|c| c.username == user)
        {
            return Err(format!(
                "{name}: the database password of {user} is not a value the store holds"
            ));
        }
    }
    let pending = match s.show_version_by_stage(PROJECT, name, SYSPENDING).await {
        Ok(v) => Some((
            v.version_metadata.id.clone(),
            DatabaseCredential::from_value(&v.value).ok_or("pending is not a credential")?,
        )),
        Err(e) if e.status() == 404 => None,
        Err(e) => return Err(e.to_string()),
    };
    let r = s
        .rotate(PROJECT, name, opts(t))
        .await
        .map_err(|e| format!("{name}: rotate after the kill failed: {e}"))?;
    let cur = s
        .show_version_by_stage(PROJECT, name, SYSCURRENT)
        .await
        .map_err(|e| e.to_string())?;
    let cred = DatabaseCredential::from_value(&cur.value).ok_or("current is not a credential")?;
    if let Some((id, p)) = &pending
        && (r.version_id != *id || cred.password != p.password)
    {
        return Err(format!(
            "{name}: the pending rotation {id} did not resume with its own value (got {})",
            r.version_id
        ));
    }
    if t.read(&cred.username).as_deref() != Some(cred.password.as_str()) {
        return Err(format!(
            "{name}: SYSCURRENT does not log in after convergence"
        ));
    }
    Ok(pending.is_some())
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(dir) = std::env::var("STORE_CRASH_CHILD_DIR") {
        let key = MasterKey::from_file(&PathBuf::from(&dir).join("key")).expect("key");
        rt.block_on(child(PathBuf::from(dir), key));
        return;
    }
    let trials: usize = std::env::var("STORE_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_owned();
    std::fs::create_dir_all(dir.join("db")).expect("db dir");
    let key = MasterKey::generate().expect("key");
    std::fs::write(dir.join("key"), key.to_base64().as_bytes()).expect("key file");
    rt.block_on(async {
        let s = open(&dir, &key);
        let t = target(&dir);
        for (name, sub, user) in SECRETS {
            t.set_password(user, &SecretValue::from_str_value("initial"), None)
                .await
                .expect("seed");
            s.create_secret(
                PROJECT,
                CreateSecret {
                    name: name.to_string(),
                    secret_type: Some("RDS-FG".into()),
                    secret_string: Some(
                        DatabaseCredential {
                            username: user.to_string(),
                            password: "initial".into(),
                        }
                        .to_value(),
                    ),
                    rotation_config: Some(format!(
                        r#"{{"SecretSubType":"{sub}","Usernames":["m_a","m_b"]}}"#
                    )),
                    ..Default::default()
                },
            )
            .await
            .expect("create");
        }
    });

    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::rng();
    let (mut passed, mut failed, mut resumed) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    for trial in 0..trials {
        let mut c = Command::new(&exe)
            .env("STORE_CRASH_CHILD_DIR", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning the child");
        std::thread::sleep(Duration::from_millis(rng.random_range(5..120)));
        c.kill().expect("SIGKILL");
        let status = c.wait().expect("wait");
        if status.success() {
            eprintln!("trial {trial}: the child exited on its own: {status}");
            failed += 1;
            continue;
        }
        let outcome: Result<usize, String> = rt.block_on(async {
            let s = open(&dir, &key);
            let t = target(&dir);
            let mut n = 0;
            for (name, _, _) in SECRETS {
                if check(&s, &t, name).await? {
                    n += 1;
                }
            }
            Ok(n)
        });
        match outcome {
            Ok(n) => {
                passed += 1;
                resumed += n;
            }
            Err(e) => {
                eprintln!("trial {trial}: {e}");
                failed += 1;
            }
        }
    }
    let versions: usize = rt.block_on(async {
        let s = open(&dir, &key);
        let mut n = 0;
        for (name, _, _) in SECRETS {
            n += s
                .list_tasks(
                    PROJECT,
                    TaskFilter {
                        secret_name: Some(name.to_string()),
                        limit: Some(1),
                        ..Default::default()
                    },
                )
                .await
                .expect("tasks")
                .total as usize;
        }
        n
    });
    println!(
        "store crash test: {trials} SIGKILL trials in {:.1}s; {resumed} interrupted rotations resumed with their pending value; {versions} rotation tasks recorded",
        started.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed != trials {
        std::process::exit(1);
    }
    if resumed == 0 {
        eprintln!(
            "no trial interrupted a rotation between its steps: the test did not exercise resumption"
        );
        std::process::exit(1);
    }
}
