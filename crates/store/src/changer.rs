//! The database side of a rotation: set a password, then prove it logs in.

use async_trait::async_trait;

use secret_rotator_core::password::PasswordPolicy;
use secret_rotator_core::secret_value::SecretValue;

/// Why a database step failed. Messages never contain a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ChangeError {
    /// A short code: `CONNECT`, `AUTH`, `SET_PASSWORD`, `LOGIN_TEST`, `TLS`, `TIMEOUT`, `CONFIG`,
    /// `INSECURE_AUTH` (the server asked for a method that sends the password, and is not verified),
    /// `FORBIDDEN` (`serve`'s targets file does not let this instance rotate the account).
    pub code: String,
    /// What failed.
    pub message: String,
}

impl ChangeError {
    /// Builds an error.
    pub fn new(code: &str, message: impl Into<String>) -> ChangeError {
        ChangeError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// A connection failure during a login test, as the test's failure: `LOGIN_TEST`, except a refusal to
/// authenticate insecurely (`INSECURE_AUTH`), which keeps its code because it says what to change.
pub fn login_failure(e: ChangeError) -> ChangeError {
    if e.code == "INSECURE_AUTH" {
        e
    } else {
        ChangeError::new("LOGIN_TEST", e.message)
    }
}

/// A database account store: the database issue implements it for PostgreSQL and MySQL.
#[async_trait]
pub trait PasswordChanger: Send + Sync {
    /// Sets `user`'s password to `new`. `current` is that account's password as the store knows it, for
    /// targets that log in as the account itself (no administrator).
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError>;

    /// Opens a fresh connection as `user` with `password` and runs a trivial query.
    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError>;

    /// A description for logs (engine, host, port), never a credential.
    fn describe(&self) -> String;
}

/// An in-memory target for tests of pure store logic: a map of accounts to passwords.
#[derive(Default)]
pub struct MemoryChanger {
    accounts: std::sync::Mutex<std::collections::BTreeMap<String, SecretValue>>,
    /// When set, `set_password` fails with this code.
    pub fail_set: std::sync::Mutex<Option<String>>,
}

impl MemoryChanger {
    /// The password an account has now.
    pub fn password(&self, user: &str) -> Option<SecretValue> {
        self.accounts.lock().ok()?.get(user).cloned()
    }

    /// Sets an account's password directly (the database administrator's doing).
    pub fn set(&self, user: &str, password: SecretValue) {
        if let Ok(mut a) = self.accounts.lock() {
            a.insert(user.to_owned(), password);
        }
    }
}

#[async_trait]
impl PasswordChanger for MemoryChanger {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        _current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        if let Some(code) = self.fail_set.lock().ok().and_then(|f| f.clone()) {
            return Err(ChangeError::new(&code, "injected failure"));
        }
        self.set(user, new.clone());
        Ok(())
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        match self.password(user) {
            Some(p) if &p == password => Ok(()),
            _ => Err(ChangeError::new(
                "LOGIN_TEST",
                format!("login as {user} refused"),
            )),
        }
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// Why the server has no database for a secret's rotation. Messages name the secret and the instance,
/// never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The secret's `rotation_config` names no `InstanceId`.
    #[error(
        "secret {secret}: its rotation_config names no InstanceId, so no database can be rotated for it"
    )]
    NoInstance {
        /// The secret.
        secret: String,
    },
    /// The targets file holds no such instance for the secret's project (an instance of another project
    /// answers the same, so that its existence is not told).
    #[error(
        "secret {secret}: the targets file (--targets-file) holds no database instance {instance:?} for project {project}"
    )]
    UnknownInstance {
        /// The secret.
        secret: String,
        /// The InstanceId the secret names.
        instance: String,
        /// The secret's project.
        project: String,
    },
    /// The secret type does not fit the instance's engine (GaussDB-FG speaks MySQL).
    #[error(
        "secret {secret} is a {secret_type} secret, but database instance {instance} is {engine}: GaussDB-FG needs engine mysql"
    )]
    EngineMismatch {
        /// The secret.
        secret: String,
        /// Its type.
        secret_type: String,
        /// The instance.
        instance: String,
        /// The instance's engine.
        engine: String,
    },
    /// The instance's files (administrator credentials, CA) cannot be used now.
    #[error("database instance {instance}: {message}")]
    Config {
        /// The instance.
        instance: String,
        /// What is wrong (a file and why; never its content).
        message: String,
    },
}

impl ResolveError {
    /// The HTTP status of the answer: 400 for the request's secret, 500 for the server's own files.
    pub fn status(&self) -> u16 {
        match self {
            ResolveError::Config { .. } => 500,
            _ => 400,
        }
    }

    /// The CSMS-style code of the answer.
    pub fn code(&self) -> &'static str {
        use crate::error::codes;
        match self {
            ResolveError::NoInstance { .. } | ResolveError::UnknownInstance { .. } => {
                codes::UNKNOWN_INSTANCE
            }
            ResolveError::EngineMismatch { .. } => codes::INVALID_PARAMETER,
            ResolveError::Config { .. } => codes::INTERNAL,
        }
    }
}

/// Finds the database target of a secret, for rotations that arrive over the API.
pub trait ChangerResolver: Send + Sync {
    /// The target of a database secret of `project`, or why there is none.
    fn resolve(
        &self,
        project: &str,
        secret: &crate::model::Secret,
    ) -> Result<std::sync::Arc<dyn PasswordChanger>, ResolveError>;
}

/// Simulated databases (`serve --simulated-databases`): every database secret gets an in-memory account
/// table. An account it has not seen yet holds whatever password it is first shown (the one the store
/// holds); after that it behaves like a database. For trying the API and the SDKs without a database;
/// never for production.
#[derive(Default)]
pub struct SimulatedChangers {
    targets: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<SimulatedDatabase>>>,
}

/// One simulated database of [`SimulatedChangers`].
#[derive(Default)]
pub struct SimulatedDatabase(MemoryChanger);

#[async_trait]
impl PasswordChanger for SimulatedDatabase {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        self.0.set_password(user, new, current).await
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        if self.0.password(user).is_none() {
            self.0.set(user, password.clone());
        }
        self.0.test_login(user, password).await
    }

    fn describe(&self) -> String {
        "simulated database".into()
    }
}

impl ChangerResolver for SimulatedChangers {
    fn resolve(
        &self,
        project: &str,
        secret: &crate::model::Secret,
    ) -> Result<std::sync::Arc<dyn PasswordChanger>, ResolveError> {
        let mut map = self.targets.lock().map_err(|_| ResolveError::Config {
            instance: "simulated".into(),
            message: "the simulated databases' lock is poisoned".into(),
        })?;
        let t = map
            .entry(format!("{project}/{}", secret.name))
            .or_insert_with(|| std::sync::Arc::new(SimulatedDatabase::default()))
            .clone();
        Ok(t)
    }
}

/// Options of a rotation made in process.
#[derive(Clone, Default)]
pub struct RotateOptions {
    /// The password changer of the database; without one, a database secret cannot rotate in this store.
    pub changer: Option<std::sync::Arc<dyn PasswordChanger>>,
    /// Policy for the new password (default policy when absent).
    pub policy: Option<PasswordPolicy>,
}

impl std::fmt::Debug for RotateOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateOptions")
            .field("changer", &self.changer.as_ref().map(|t| t.describe()))
            .field("policy", &self.policy)
            .finish()
    }
}
