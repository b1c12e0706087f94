//! The typed spec that validation returns: every later step of a reconcile reads this, never the raw
//! `SecretRotationSpec`, so nothing is parsed twice and nothing unchecked reaches a store or a database.

use std::collections::BTreeMap;

pub use super::server::Server;
use crate::api::{DatabaseMode, DeletionPolicy, RestartKind, SecretType, ServerRef};
use secret_rotator_core::names::SecretName;
use secret_rotator_core::password::PasswordPolicy;
use secret_rotator_core::planner::Timing;
use secret_rotator_core::planner::window::MaintenanceWindow;
use secret_rotator_core::template::Template;

/// A SecretRotation whose every rule holds. Validation gives it with the database request (`D =
/// DatabaseRequest`); the gate resolves the request's server into a [`Database`].
#[derive(Debug, Clone)]
pub struct ValidatedSpec<D = Database> {
    /// The store secret.
    pub store_secret: SecretName,
    /// `spec.projectId`; the operator's default project when absent.
    pub project: Option<String>,
    /// The CSMS secret type.
    pub secret_type: SecretType,
    /// When rotations fall due.
    pub timing: Timing,
    /// `spec.rotation.maintenanceWindow`, read in the rotation's time zone.
    pub maintenance: Option<MaintenanceWindow>,
    /// `spec.rotation.rotateOnCreate`.
    pub rotate_on_create: bool,
    /// `spec.suspend`.
    pub suspend: bool,
    /// The `rotate-now` annotation.
    pub rotate_now: Option<String>,
    /// The database, for database secret types (and only for them).
    pub database: Option<D>,
    /// How generated values are made.
    pub password: PasswordPolicy,
    /// The Kubernetes Secret kept in sync.
    pub synced: SyncedSecretSpec,
    /// Workloads restarted when the synced value changes.
    pub restart_targets: Vec<Restarts>,
}

/// Workloads of one kind restarted when the synced value changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarts {
    /// Their kind.
    pub kind: RestartKind,
    /// Which ones.
    pub pick: Pick,
}

/// Which workloads of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// The one with this name.
    Name(String),
    /// Those whose labels match this selector (in the apiserver's `labelSelector` syntax).
    Selector(String),
}

/// The account a database secret rotates and the server it names, as the resource asks.
#[derive(Debug, Clone)]
pub struct DatabaseRequest {
    /// The server.
    pub server_ref: ServerRef,
    /// `spec.database.database`.
    pub database: Option<String>,
    /// The rotated account or accounts.
    pub accounts: Accounts,
}

/// The account a database secret rotates, on the server the gate resolved and allowed.
#[derive(Debug, Clone)]
pub struct Database {
    /// The server as the resource names it.
    pub server_ref: ServerRef,
    /// The server.
    pub server: Server,
    /// The database the operator connects to: the resource's, else the server's.
    pub database: Option<String>,
    /// The rotated account or accounts.
    pub accounts: Accounts,
}

impl Database {
    /// `host:port`, the instance id the store records.
    pub fn instance_id(&self) -> String {
        format!("{}:{}", self.server.host, self.server.port)
    }
}

impl<D> ValidatedSpec<D> {
    /// The same spec with its database request turned into `E` by `f`.
    pub fn resolve<E, F: FnOnce(D) -> Result<E, X>, X>(self, f: F) -> Result<ValidatedSpec<E>, X> {
        let database = match self.database {
            Some(d) => Some(f(d)?),
            None => None,
        };
        Ok(ValidatedSpec {
            store_secret: self.store_secret,
            project: self.project,
            secret_type: self.secret_type,
            timing: self.timing,
            maintenance: self.maintenance,
            rotate_on_create: self.rotate_on_create,
            suspend: self.suspend,
            rotate_now: self.rotate_now,
            database,
            password: self.password,
            synced: self.synced,
            restart_targets: self.restart_targets,
        })
    }
}

/// The rotated account or accounts of a database secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accounts {
    /// One account whose password each rotation resets.
    SingleUser(String),
    /// Two accounts; a rotation resets the one not in use, then makes it current.
    MultiUser([String; 2]),
}

impl Accounts {
    /// The account of the first version.
    pub fn first(&self) -> &str {
        match self {
            Accounts::SingleUser(u) => u,
            Accounts::MultiUser([a, _]) => a,
        }
    }

    /// The CSMS SecretSubType.
    pub fn mode(&self) -> DatabaseMode {
        match self {
            Accounts::SingleUser(_) => DatabaseMode::SingleUser,
            Accounts::MultiUser(_) => DatabaseMode::MultiUser,
        }
    }

    /// Every rotated account.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        match self {
            Accounts::SingleUser(u) => std::slice::from_ref(u).iter(),
            Accounts::MultiUser(pair) => pair.iter(),
        }
        .map(String::as_str)
    }

    /// The two accounts of MultiUser; none for SingleUser (as the store's rotation config records it).
    pub fn alternating(&self) -> Vec<String> {
        match self {
            Accounts::SingleUser(_) => Vec::new(),
            Accounts::MultiUser(pair) => pair.to_vec(),
        }
    }
}

/// The synced Secret: its name, how its data is laid out, and its metadata.
#[derive(Debug, Clone)]
pub struct SyncedSecretSpec {
    /// The Secret's name, in the resource's namespace.
    pub name: String,
    /// Parsed templates by key; empty means the default keys of the secret type.
    pub templates: Vec<(String, Template)>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Extra annotations.
    pub annotations: BTreeMap<String, String>,
    /// Whether the Secret goes with the resource.
    pub deletion_policy: DeletionPolicy,
}

impl SyncedSecretSpec {
    /// Whether a template uses the previous version (so the store's SYSPREVIOUS must be read).
    pub fn uses_previous(&self) -> bool {
        self.templates.iter().any(|(_, t)| t.uses_previous())
    }
}
