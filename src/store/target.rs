//! The database side of a rotation: set a password, then prove it logs in.

use async_trait::async_trait;

use crate::secret_value::SecretValue;

/// Why a database step failed. Messages never contain a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TargetError {
    /// A short code: `CONNECT`, `AUTH`, `SET_PASSWORD`, `LOGIN_TEST`, `TLS`, `TIMEOUT`, `CONFIG`,
    /// `INSECURE_AUTH` (the server asked for a method that sends the password, and is not verified).
    pub code: String,
    /// What failed.
    pub message: String,
}

impl TargetError {
    /// Builds an error.
    pub fn new(code: &str, message: impl Into<String>) -> TargetError {
        TargetError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// A connection failure during a login test, as the test's failure: `LOGIN_TEST`, except a refusal to
/// authenticate insecurely (`INSECURE_AUTH`), which keeps its code because it says what to change.
pub fn login_failure(e: TargetError) -> TargetError {
    if e.code == "INSECURE_AUTH" {
        e
    } else {
        TargetError::new("LOGIN_TEST", e.message)
    }
}

/// A database account store: the database issue implements it for PostgreSQL and MySQL.
#[async_trait]
pub trait PasswordTarget: Send + Sync {
    /// Sets `user`'s password to `new`. `current` is that account's password as the store knows it, for
    /// targets that log in as the account itself (no administrator).
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), TargetError>;

    /// Opens a fresh connection as `user` with `password` and runs a trivial query.
    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), TargetError>;

    /// A description for logs (engine, host, port), never a credential.
    fn describe(&self) -> String;
}

/// An in-memory target for tests of pure store logic: a map of accounts to passwords.
#[derive(Default)]
pub struct MemoryTarget {
    accounts: std::sync::Mutex<std::collections::BTreeMap<String, SecretValue>>,
    /// When set, `set_password` fails with this code.
    pub fail_set: std::sync::Mutex<Option<String>>,
}

impl MemoryTarget {
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
impl PasswordTarget for MemoryTarget {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        _current: Option<&SecretValue>,
    ) -> Result<(), TargetError> {
        if let Some(code) = self.fail_set.lock().ok().and_then(|f| f.clone()) {
            return Err(TargetError::new(&code, "injected failure"));
        }
        self.set(user, new.clone());
        Ok(())
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), TargetError> {
        match self.password(user) {
            Some(p) if &p == password => Ok(()),
            _ => Err(TargetError::new(
                "LOGIN_TEST",
                format!("login as {user} refused"),
            )),
        }
    }

    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// Finds the database target of a secret, for rotations that arrive over the API.
pub trait TargetResolver: Send + Sync {
    /// The target, or `None` when the server knows no database for this secret.
    fn resolve(
        &self,
        project: &str,
        secret: &crate::store::model::Secret,
    ) -> Option<std::sync::Arc<dyn PasswordTarget>>;
}

/// Simulated databases (`serve --simulated-databases`): every database secret gets an in-memory account
/// table. An account it has not seen yet holds whatever password it is first shown (the one the store
/// holds); after that it behaves like a database. For trying the API and the SDKs without a database;
/// never for production.
#[derive(Default)]
pub struct SimulatedTargets {
    targets: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<SimulatedDatabase>>>,
}

/// One simulated database of [`SimulatedTargets`].
#[derive(Default)]
pub struct SimulatedDatabase(MemoryTarget);

#[async_trait]
impl PasswordTarget for SimulatedDatabase {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), TargetError> {
        self.0.set_password(user, new, current).await
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), TargetError> {
        if self.0.password(user).is_none() {
            self.0.set(user, password.clone());
        }
        self.0.test_login(user, password).await
    }

    fn describe(&self) -> String {
        "simulated database".into()
    }
}

impl TargetResolver for SimulatedTargets {
    fn resolve(
        &self,
        project: &str,
        secret: &crate::store::model::Secret,
    ) -> Option<std::sync::Arc<dyn PasswordTarget>> {
        let mut map = self.targets.lock().ok()?;
        let t = map
            .entry(format!("{project}/{}", secret.name))
            .or_insert_with(|| std::sync::Arc::new(SimulatedDatabase::default()))
            .clone();
        Some(t)
    }
}
