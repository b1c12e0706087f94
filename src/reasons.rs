//! The one list of reasons: those of the `Ready` and `Rotating` conditions and those of events. Each names
//! something a person can act on; the README's troubleshooting table is keyed by them.

/// A condition or event reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Ready: the synced Secret holds the store's current version. Event: the Secret was written without
    /// a rotation (drift restored, or a rotation made elsewhere).
    Synced,
    /// Ready: the spec breaks a rule the schema cannot hold.
    InvalidSpec,
    /// Ready: the resource asks for something the operator's policy or its database server does not allow
    /// (a store secret outside the namespace's names, a namespace or account the server does not serve).
    /// Server: its administrator is an account the operator refuses to use.
    Forbidden,
    /// Ready: the database server the resource names does not exist.
    ServerNotFound,
    /// Ready: the database server the resource names has a spec that cannot be used. Server: its spec is
    /// not usable.
    ServerInvalid,
    /// Server: the administrator logged in.
    LoggedIn,
    /// Server: the administrator's login failed (or its Secret cannot be read).
    LoginFailed,
    /// Ready: the csms backend has no such secret.
    SecretNotFound,
    /// Ready: the store secret is pending (scheduled for) deletion in CSMS: it can be neither read nor
    /// rotated until the deletion is cancelled.
    StoreSecretPendingDeletion,
    /// Ready: the store could not be read or written.
    StoreUnavailable,
    /// Ready: the last rotation failed.
    RotationFailed,
    /// Ready: the apiserver refused the synced Secret (too large, immutable, a forbidden namespace, ...).
    SecretRejected,
    /// Ready: a Secret with the synced Secret's name exists that the operator did not create and whose
    /// owner did not opt in (`secretrotator.dev/adopt: "true"`); nothing is written.
    SecretNotOwned,
    /// Ready: the store secret belongs to another SecretRotation (for example one deleted with its
    /// namespace); nothing is read or rotated.
    StoreSecretClaimed,
    /// Ready: the store secret is not what the spec describes (another secret type, mode or accounts).
    StoreSecretMismatch,
    /// Ready: the database credentials or CA cannot be read.
    ConfigurationMissing,
    /// Ready: a database secret without an administrator needs its current password.
    NeedsInitialPassword,
    /// Ready: rotations are suspended and the store has no usable value yet.
    Suspended,
    /// Rotating: no rotation in progress.
    Idle,
    /// Rotating: a rotation is under way or will be retried.
    InProgress,
    /// Rotating: the last attempt failed; a retry follows after a backoff.
    Retrying,
    /// Rotating: a scheduled rotation is due and waits for its maintenance window.
    WaitingForWindow,
    /// Rotating: a rotate-now or rollback-to request waits: SYSCURRENT changed less than the operator's
    /// `--min-rotation-period` ago.
    RateLimited,
    /// Event: a new version was made and the synced Secret updated.
    Rotated,
    /// Event: a restart target's pod template was annotated.
    RestartTriggered,
    /// Event: a restart target does not exist.
    RestartTargetMissing,
    /// Event: a restart target could not be patched.
    RestartFailed,
    /// Event: SYSCURRENT moved back to the version a rollback asked for.
    RolledBack,
    /// Event: a rollback request was not tried (suspended, a version the store does not hold, malformed).
    RollbackRefused,
    /// Event: a rollback was tried and failed; nothing changed.
    RollbackFailed,
}

impl Reason {
    /// The reason as Kubernetes shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Synced => "Synced",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::Forbidden => "Forbidden",
            Reason::ServerNotFound => "ServerNotFound",
            Reason::ServerInvalid => "ServerInvalid",
            Reason::LoggedIn => "LoggedIn",
            Reason::LoginFailed => "LoginFailed",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::StoreSecretPendingDeletion => "StoreSecretPendingDeletion",
            Reason::StoreUnavailable => "StoreUnavailable",
            Reason::RotationFailed => "RotationFailed",
            Reason::SecretRejected => "SecretRejected",
            Reason::SecretNotOwned => "SecretNotOwned",
            Reason::StoreSecretClaimed => "StoreSecretClaimed",
            Reason::StoreSecretMismatch => "StoreSecretMismatch",
            Reason::ConfigurationMissing => "ConfigurationMissing",
            Reason::NeedsInitialPassword => "NeedsInitialPassword",
            Reason::Suspended => "Suspended",
            Reason::Idle => "Idle",
            Reason::InProgress => "InProgress",
            Reason::Retrying => "Retrying",
            Reason::WaitingForWindow => "WaitingForWindow",
            Reason::RateLimited => "RateLimited",
            Reason::Rotated => "Rotated",
            Reason::RestartTriggered => "RestartTriggered",
            Reason::RestartTargetMissing => "RestartTargetMissing",
            Reason::RestartFailed => "RestartFailed",
            Reason::RolledBack => "RolledBack",
            Reason::RollbackRefused => "RollbackRefused",
            Reason::RollbackFailed => "RollbackFailed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
