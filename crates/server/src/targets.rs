//! `serve --targets-file`: the real databases that RotateSecret changes, by the `InstanceId` of a secret's
//! `rotation_config`, as CSMS changes an RDS or TaurusDB instance through its rotation function.
//!
//! ```yaml
//! instances:
//!   rds-orders:                      # the InstanceId secrets name
//!     engine: postgresql             # postgresql | mysql (MySQL, MariaDB, GaussDB/TaurusDB)
//!     host: orders-db.internal
//!     port: 5432                     # default 5432 / 3306
//!     database: postgres             # optional
//!     tls: {mode: verify-full, ca_file: rds-ca.pem}   # disable | require (default) | verify-full
//!     admin_credentials_file: orders-admin.yaml       # {username, password}, mode 0600
//!     projects: [proj1]              # projects whose secrets may use it; "*" for every project
//!     accounts: ["app_*"]            # optional: the accounts it may rotate (default: any)
//! ```
//!
//! The file is YAML (JSON is YAML too). Relative paths are read from the targets file's directory. Every
//! instance is checked at start-up (its administrator file must exist, parse and be private, its CA must
//! parse); the administrator and CA files are read again at each rotation, so replacing them takes effect
//! without a restart. Whatever the file says, an instance never rotates its own administrator's account nor
//! an engine's built-in superuser, and it answers only secrets of its `projects`: an unknown instance and one
//! of another project get the same answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use zeroize::Zeroizing;

use secret_rotator_core::accounts::{SUPERUSERS, glob};
use secret_rotator_core::engine::{DatabaseEngine, TlsMode};
use secret_rotator_core::files::check_private;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::{ChangeError, ChangerResolver, PasswordChanger, ResolveError};
use secret_rotator_store::database::{self, Connection};
use secret_rotator_store::model::{RotationConfig, Secret};

/// Why a targets file was refused at start-up.
#[derive(Debug, thiserror::Error)]
#[error("targets file {path}: {message}")]
pub struct TargetsFileError {
    /// The file.
    pub path: String,
    /// What is wrong (a field, a file; never a credential).
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileText {
    instances: BTreeMap<String, InstanceText>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstanceText {
    engine: DatabaseEngine,
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    tls: TlsText,
    admin_credentials_file: PathBuf,
    projects: Vec<String>,
    #[serde(default)]
    accounts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TlsText {
    #[serde(default)]
    mode: TlsMode,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// An administrator credential file: `username` and `password`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminText {
    username: String,
    password: Zeroizing<String>,
}

/// One database instance of the targets file.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The InstanceId.
    pub id: String,
    /// Engine.
    pub engine: DatabaseEngine,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database to connect to.
    pub database: Option<String>,
    /// TLS mode.
    pub tls: TlsMode,
    /// PEM CA bundle for verify-full (else the web PKI roots).
    pub ca_file: Option<PathBuf>,
    /// The administrator's credential file.
    pub admin_credentials_file: PathBuf,
    /// Projects whose secrets may use it (`*`: every project).
    pub projects: Vec<String>,
    /// Patterns of the accounts it may rotate (`*` matches any run); empty: any account.
    pub accounts: Vec<String>,
}

/// The targets file: the [`ChangerResolver`] of `serve --targets-file`.
#[derive(Debug, Clone)]
pub struct TargetsFile {
    instances: BTreeMap<String, Instance>,
}

impl TargetsFile {
    /// Loads a targets file and checks every instance (its administrator file is read and must be private).
    pub fn load(path: &Path) -> Result<TargetsFile, TargetsFileError> {
        let fail = |message: String| TargetsFileError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let file = TargetsFile::parse(&text, base).map_err(fail)?;
        for instance in file.instances.values() {
            instance.admin().map_err(fail)?;
            instance.ca_pem().map_err(fail)?;
        }
        Ok(file)
    }

    /// Parses targets file text; relative paths are taken from `base`. Nothing is read.
    pub fn parse(text: &str, base: &Path) -> Result<TargetsFile, String> {
        // serde-saphyr's messages can quote the input; keep their first line only (the file holds no
        // credential, but a mistyped one could be pasted in).
        let file: FileText = serde_saphyr::from_str(text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().chars().take(160).collect::<String>();
            format!("not a valid targets file (instances: {{<InstanceId>: {{engine, host, port, database, tls: {{mode, ca_file}}, admin_credentials_file, projects, accounts}}}}): {first}")
        })?;
        if file.instances.is_empty() {
            return Err("no instances: RotateSecret could rotate nothing".into());
        }
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let mut instances = BTreeMap::new();
        for (id, i) in file.instances {
            let what = format!("instance {id:?}");
            if id.is_empty() || id.len() > 128 {
                return Err(format!("{what}: an InstanceId is 1 to 128 characters"));
            }
            if i.host.trim().is_empty() {
                return Err(format!("{what}: host is empty"));
            }
            if i.port == Some(0) {
                return Err(format!("{what}: port 0"));
            }
            if i.projects.is_empty() || i.projects.iter().any(String::is_empty) {
                return Err(format!(
                    "{what}: projects must list the projects whose secrets may use it (\"*\" for every project)"
                ));
            }
            if i.accounts.iter().any(String::is_empty) {
                return Err(format!("{what}: an empty account pattern"));
            }
            if i.tls.ca_file.is_some() && i.tls.mode != TlsMode::VerifyFull {
                return Err(format!(
                    "{what}: tls.ca_file is used only with tls.mode verify-full"
                ));
            }
            instances.insert(
                id.clone(),
                Instance {
                    id,
                    engine: i.engine,
                    port: i.port.unwrap_or(i.engine.default_port()),
                    host: i.host,
                    database: i.database,
                    tls: i.tls.mode,
                    ca_file: i.tls.ca_file.map(resolve),
                    admin_credentials_file: resolve(i.admin_credentials_file),
                    projects: i.projects,
                    accounts: i.accounts,
                },
            );
        }
        Ok(TargetsFile { instances })
    }

    /// The instances, by InstanceId.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }
}

impl Instance {
    fn serves(&self, project: &str) -> bool {
        self.projects.iter().any(|p| p == "*" || p == project)
    }

    /// The administrator's credentials, read now (the file must be private).
    fn admin(&self) -> Result<(String, SecretValue), String> {
        let path = &self.admin_credentials_file;
        check_private(path, "administrator credential file")
            .map_err(|e| format!("instance {:?}: {e}", self.id))?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            format!(
                "instance {:?}: administrator credential file {}: cannot read: {e}",
                self.id,
                path.display()
            )
        })?);
        let admin: AdminText = serde_saphyr::from_str(&text).map_err(|_| {
            format!(
                "instance {:?}: administrator credential file {} is not YAML {{username, password}}",
                self.id,
                path.display()
            )
        })?;
        if admin.username.is_empty() || admin.password.is_empty() {
            return Err(format!(
                "instance {:?}: administrator credential file {} has an empty username or password",
                self.id,
                path.display()
            ));
        }
        Ok((admin.username, SecretValue::from_str_value(&admin.password)))
    }

    /// The CA bundle, read now, when there is one; it must hold a certificate.
    fn ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let pem = std::fs::read(path).map_err(|e| {
            format!(
                "instance {:?}: CA file {}: cannot read: {e}",
                self.id,
                path.display()
            )
        })?;
        let mut reader = pem.as_slice();
        let certs = rustls_pemfile::certs(&mut reader)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("instance {:?}: CA file {}: {e}", self.id, path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "instance {:?}: CA file {} holds no PEM certificate",
                self.id,
                path.display()
            ));
        }
        Ok(Some(pem))
    }
}

impl ChangerResolver for TargetsFile {
    fn resolve(
        &self,
        project: &str,
        secret: &Secret,
    ) -> Result<Arc<dyn PasswordChanger>, ResolveError> {
        let config: RotationConfig = secret
            .rotation_config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        if config.instance_id.is_empty() {
            return Err(ResolveError::NoInstance {
                secret: secret.name.clone(),
            });
        }
        let instance = self
            .instances
            .get(&config.instance_id)
            .filter(|i| i.serves(project))
            .ok_or_else(|| ResolveError::UnknownInstance {
                secret: secret.name.clone(),
                instance: config.instance_id.chars().take(128).collect(),
                project: project.to_owned(),
            })?;
        if secret.secret_type == "GaussDB-FG" && instance.engine != DatabaseEngine::Mysql {
            return Err(ResolveError::EngineMismatch {
                secret: secret.name.clone(),
                secret_type: secret.secret_type.clone(),
                instance: instance.id.clone(),
                engine: format!("{:?}", instance.engine).to_lowercase(),
            });
        }
        let config_error = |message: String| ResolveError::Config {
            instance: instance.id.clone(),
            message,
        };
        let admin = instance.admin().map_err(config_error)?;
        let ca_pem = instance.ca_pem().map_err(config_error)?;
        let admin_user = admin.0.clone();
        let inner = database::target(Connection {
            engine: instance.engine,
            host: instance.host.clone(),
            port: instance.port,
            database: instance.database.clone(),
            tls: instance.tls,
            ca_pem,
            admin: Some(admin),
        });
        Ok(Arc::new(GuardedTarget {
            inner,
            instance: instance.id.clone(),
            admin_user,
            accounts: instance.accounts.clone(),
        }))
    }
}

/// A target that refuses to touch accounts its instance may not rotate: its administrator's, a built-in
/// superuser, one outside `accounts`. Logins are refused too, so the server cannot be used to test
/// passwords of such accounts.
struct GuardedTarget {
    inner: Arc<dyn PasswordChanger>,
    instance: String,
    admin_user: String,
    accounts: Vec<String>,
}

impl GuardedTarget {
    fn check(&self, user: &str) -> Result<(), ChangeError> {
        let refuse = |why: &str| {
            Err(ChangeError::new(
                "FORBIDDEN",
                format!(
                    "database instance {} does not rotate account {user}: {why}",
                    self.instance
                ),
            ))
        };
        if user.eq_ignore_ascii_case(&self.admin_user) {
            return refuse("it is the instance's administrator");
        }
        if SUPERUSERS.contains(&user.to_ascii_lowercase().as_str()) {
            return refuse("it is a built-in superuser");
        }
        if !self.accounts.is_empty() && !self.accounts.iter().any(|p| glob(p, user)) {
            return refuse("it is not among the instance's accounts in the targets file");
        }
        Ok(())
    }
}

#[async_trait]
impl PasswordChanger for GuardedTarget {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        self.check(user)?;
        self.inner.set_password(user, new, current).await
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        self.check(user)?;
        self.inner.test_login(user, password).await
    }

    fn describe(&self) -> String {
        format!("instance {} ({})", self.instance, self.inner.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn secret(name: &str, secret_type: &str, config: &str) -> Secret {
        Secret {
            name: name.into(),
            secret_type: secret_type.into(),
            rotation_config: Some(config.into()),
            ..Secret::default()
        }
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    const FILE: &str = "instances:\n  rds-1:\n    engine: postgresql\n    host: 127.0.0.1\n    admin_credentials_file: admin.yaml\n    projects: [p1]\n    accounts: [\"app_*\"]\n  taurus-1:\n    engine: mysql\n    host: db.example\n    port: 3307\n    database: shop\n    tls: {mode: verify-full}\n    admin_credentials_file: /abs/admin.yaml\n    projects: [\"*\"]\n";

    #[test]
    fn parses_yaml_and_json_with_defaults_and_relative_paths() {
        let f = TargetsFile::parse(FILE, Path::new("/etc/sr")).unwrap();
        let all: Vec<&Instance> = f.instances().collect();
        assert_eq!(all.len(), 2);
        let rds = &all[0];
        assert_eq!(
            (rds.id.as_str(), rds.engine, rds.port, rds.tls),
            ("rds-1", DatabaseEngine::Postgresql, 5432, TlsMode::Require)
        );
        assert_eq!(
            rds.admin_credentials_file,
            PathBuf::from("/etc/sr/admin.yaml")
        );
        let taurus = &all[1];
        assert_eq!(
            (taurus.port, taurus.tls, taurus.database.as_deref()),
            (3307, TlsMode::VerifyFull, Some("shop"))
        );
        assert_eq!(
            taurus.admin_credentials_file,
            PathBuf::from("/abs/admin.yaml")
        );
        let json = r#"{"instances": {"rds-1": {"engine": "mysql", "host": "h", "admin_credentials_file": "a.json", "projects": ["p"], "tls": {"mode": "disable"}}}}"#;
        let f = TargetsFile::parse(json, Path::new("/x")).unwrap();
        let i = f.instances().next().unwrap();
        assert_eq!(
            (i.engine, i.port, i.tls),
            (DatabaseEngine::Mysql, 3306, TlsMode::Disable)
        );
    }

    /// The README's example parses as written.
    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme
            .find("### Database rotation: the targets file")
            .unwrap()..];
        let start = section.find("```yaml\n").unwrap() + "```yaml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        let f = TargetsFile::parse(block, Path::new("/etc/secret-rotator")).unwrap();
        let ids: Vec<&str> = f.instances().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["rds-orders", "taurus-shop"]);
        let rds = f.instances().next().unwrap();
        assert_eq!(
            rds.ca_file.as_deref(),
            Some(Path::new("/etc/secret-rotator/rds-ca.pem"))
        );
        assert_eq!(rds.accounts, ["app_*"]);
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (text, says) in [
            ("instances: {}\n", "no instances"),
            (
                "instances:\n  a: {engine: oracle, host: h, admin_credentials_file: a, projects: [p]}\n",
                "not a valid targets file",
            ),
            (
                "instances:\n  a: {engine: mysql, host: h, admin_credentials_file: a, projects: [p], color: red}\n",
                "not a valid targets file",
            ),
            (
                "instances:\n  a: {engine: mysql, host: '', admin_credentials_file: a, projects: [p]}\n",
                "host is empty",
            ),
            (
                "instances:\n  a: {engine: mysql, host: h, admin_credentials_file: a, projects: []}\n",
                "projects must list",
            ),
            (
                "instances:\n  a: {engine: mysql, host: h, admin_credentials_file: a}\n",
                "not a valid targets file",
            ),
            (
                "instances:\n  a: {engine: mysql, host: h, admin_credentials_file: a, projects: [p], tls: {mode: require, ca_file: ca.pem}}\n",
                "only with tls.mode verify-full",
            ),
        ] {
            let e = TargetsFile::parse(text, Path::new("/"))
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn load_checks_the_administrator_file_is_private_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let targets = dir.path().join("targets.yaml");
        std::fs::write(&targets, FILE.replace("/abs/admin.yaml", "admin.yaml")).unwrap();
        let admin = dir.path().join("admin.yaml");
        let e = TargetsFile::load(&targets).unwrap_err().to_string();
        assert!(e.contains("admin.yaml") && e.contains("rds-1"), "{e}");
        write_private(&admin, "username: admin\npassword: s3cret-admin-pw\n");
        TargetsFile::load(&targets).unwrap();
        std::fs::set_permissions(&admin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = TargetsFile::load(&targets).unwrap_err().to_string();
        assert!(e.contains("readable by group or others"), "{e}");
        write_private(&admin, "username: admin\n");
        let e = TargetsFile::load(&targets).unwrap_err().to_string();
        assert!(e.contains("not YAML {username, password}"), "{e}");
        write_private(
            &admin,
            "username: admin\npassword: s3cret-admin-pw\nextra: 1\n",
        );
        let e = TargetsFile::load(&targets).unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn resolves_by_instance_and_project_and_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        write_private(
            &dir.path().join("admin.yaml"),
            "username: admin\npassword: s3cret-admin-pw\n",
        );
        let f = TargetsFile::parse(FILE, dir.path()).unwrap();
        let ok = secret(
            "db",
            "RDS-FG",
            r#"{"InstanceId":"rds-1","SecretSubType":"SingleUser"}"#,
        );
        let t = f.resolve("p1", &ok).unwrap();
        assert!(t.describe().contains("rds-1"), "{}", t.describe());
        for (project, s, code) in [
            ("p2", ok.clone(), "CSMS.0906"),
            (
                "p1",
                secret(
                    "db",
                    "RDS-FG",
                    r#"{"InstanceId":"rds-9","SecretSubType":"SingleUser"}"#,
                ),
                "CSMS.0906",
            ),
            (
                "p1",
                secret("db", "RDS-FG", r#"{"SecretSubType":"SingleUser"}"#),
                "CSMS.0906",
            ),
            (
                "p1",
                secret(
                    "db",
                    "GaussDB-FG",
                    r#"{"InstanceId":"rds-1","SecretSubType":"SingleUser"}"#,
                ),
                "CSMS.0002",
            ),
        ] {
            let e = f.resolve(project, &s).err().unwrap();
            assert_eq!((e.status(), e.code()), (400, code), "{e}");
            assert!(e.to_string().contains("db"), "{e}");
        }
        // Another project's instance is answered like an unknown one.
        let other = f.resolve("p2", &ok).err().unwrap().to_string();
        assert!(
            other.contains("holds no database instance \"rds-1\" for project p2"),
            "{other}"
        );
        // GaussDB-FG on the MySQL instance is found for any project; its administrator file is missing,
        // which is the server's problem (500), named with the instance.
        let taurus = secret(
            "t",
            "GaussDB-FG",
            r#"{"InstanceId":"taurus-1","SecretSubType":"SingleUser"}"#,
        );
        let e = f.resolve("any", &taurus).err().unwrap();
        assert_eq!((e.status(), e.code()), (500, "CSMS.0500"), "{e}");
        assert!(
            e.to_string().contains("taurus-1") && e.to_string().contains("/abs/admin.yaml"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn the_guard_refuses_the_administrator_superusers_and_other_accounts() {
        let inner = Arc::new(secret_rotator_store::changer::MemoryChanger::default());
        let g = GuardedTarget {
            inner: inner.clone(),
            instance: "rds-1".into(),
            admin_user: "dba".into(),
            accounts: vec!["app_*".into()],
        };
        let pw = SecretValue::from_str_value("new-password-0123");
        for user in ["dba", "DBA", "postgres", "root", "other"] {
            let e = g.set_password(user, &pw, None).await.unwrap_err();
            assert_eq!(e.code, "FORBIDDEN", "{user}");
            assert!(e.message.contains(user), "{}", e.message);
            assert_eq!(g.test_login(user, &pw).await.unwrap_err().code, "FORBIDDEN");
            assert!(inner.password(user).is_none());
        }
        g.set_password("app_orders", &pw, None).await.unwrap();
        g.test_login("app_orders", &pw).await.unwrap();
    }
}
