//! Store errors, each with the HTTP status and CSMS-style error code the API answers with.
//! No message ever carries a secret value.

/// Error codes of this project, in the CSMS.xxxx family.
pub mod codes {
    /// A parameter is missing or malformed.
    pub const INVALID_PARAMETER: &str = "CSMS.0001";
    /// RotateSecret does not support COMMON secrets.
    pub const ROTATE_UNSUPPORTED: &str = "CSMS.0002";
    /// The secret is disabled.
    pub const SECRET_DISABLED: &str = "CSMS.0003";
    /// The resource already exists.
    pub const ALREADY_EXISTS: &str = "CSMS.0004";
    /// The resource does not exist.
    pub const NOT_FOUND: &str = "CSMS.0005";
    /// Another rotation of the secret is in progress.
    pub const ROTATION_IN_PROGRESS: &str = "CSMS.0006";
    /// A stage rule would be broken (for example removing SYSCURRENT).
    pub const STAGE_CONSTRAINT: &str = "CSMS.0007";
    /// The request body is too large.
    pub const BODY_TOO_LARGE: &str = "CSMS.0008";
    /// The method is not allowed on this path.
    pub const METHOD_NOT_ALLOWED: &str = "CSMS.0009";
    /// A client took too long to send its request.
    pub const REQUEST_TIMEOUT: &str = "CSMS.0408";
    /// No credentials, or bad ones.
    pub const UNAUTHORIZED: &str = "CSMS.0401";
    /// Valid credentials without access to the project.
    pub const FORBIDDEN: &str = "CSMS.0403";
    /// An internal failure (storage, encryption).
    pub const INTERNAL: &str = "CSMS.0500";
    /// The database or an upstream CSMS failed.
    pub const UPSTREAM: &str = "CSMS.0502";
    /// The database or an upstream CSMS did not answer in time.
    pub const UPSTREAM_TIMEOUT: &str = "CSMS.0504";
    /// The database refused the new password or the login test.
    pub const TARGET_FAILED: &str = "CSMS.0510";
    /// CSMS: the secret name does not exist (a "not found" of the real service, status 400).
    pub const SECRET_NAME_NOT_FOUND: &str = "CSMS.0106";
    /// CSMS: the secret is in the scheduled-deletion state and cannot be used.
    pub const SCHEDULED_DELETION: &str = "CSMS.0103";
    /// CSMS: the secret is pending deletion.
    pub const PENDING_DELETION: &str = "CSMS.0107";
}

/// What went wrong in a store operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A resource is missing.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// secret, version, stage or task.
        kind: &'static str,
        /// Its name (secret name, or secret/version).
        name: String,
    },
    /// The secret already exists.
    #[error("secret {name} already exists")]
    AlreadyExists {
        /// The secret.
        name: String,
    },
    /// A parameter is wrong.
    #[error("invalid parameter {field}: {message}")]
    InvalidParameter {
        /// The parameter.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// COMMON secrets are not rotated by RotateSecret.
    #[error("RotateSecret does not support COMMON secrets ({name}); create a new version instead")]
    RotateUnsupported {
        /// The secret.
        name: String,
    },
    /// The secret is scheduled for deletion (CSMS.0103, CSMS.0107): it can be neither read nor rotated
    /// until the deletion is cancelled.
    #[error(
        "secret {name} is pending deletion in CSMS: it cannot be read or rotated until its scheduled deletion is cancelled"
    )]
    PendingDeletion {
        /// The secret.
        name: String,
    },
    /// The secret is disabled.
    #[error("secret {name} is disabled")]
    Disabled {
        /// The secret.
        name: String,
    },
    /// A concurrent rotation holds the secret.
    #[error("secret {name} is being rotated by another request")]
    RotationInProgress {
        /// The secret.
        name: String,
    },
    /// A stage operation would break a rule.
    #[error("stage rule on {name}: {message}")]
    StageConstraint {
        /// The secret.
        name: String,
        /// Which rule.
        message: String,
    },
    /// The database step of a rotation failed; the pending version is kept and the next rotate resumes it.
    #[error("rotation of {name} failed (task {task_id}): {message}")]
    RotationFailed {
        /// The secret.
        name: String,
        /// The task, now FAILED.
        task_id: String,
        /// The task error code.
        code: String,
        /// What failed.
        message: String,
    },
    /// Opening the store with a master key that does not match its key check value.
    #[error(
        "the master key does not match the store {path}: it was created with another key; nothing was changed"
    )]
    WrongMasterKey {
        /// The store file.
        path: String,
    },
    /// A master key file is unusable.
    #[error("master key {path}: {message}")]
    MasterKey {
        /// The key file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The store file is damaged or not a store.
    #[error("store {path} is damaged or not a secret-rotator store: {message}")]
    Corrupt {
        /// The store file.
        path: String,
        /// What was found.
        message: String,
    },
    /// A storage or encryption failure.
    #[error("{operation} failed: {message}")]
    Internal {
        /// What was being done.
        operation: String,
        /// The cause.
        message: String,
    },
    /// An upstream (CSMS over HTTP) answered with an error.
    #[error("CSMS answered {status} {code}: {message}")]
    Upstream {
        /// HTTP status.
        status: u16,
        /// CSMS error code.
        code: String,
        /// CSMS error message.
        message: String,
    },
    /// An upstream did not answer in time.
    #[error("{operation} timed out")]
    Timeout {
        /// What was being done.
        operation: String,
    },
    /// An upstream could not be reached.
    #[error("{operation}: cannot reach CSMS: {message}")]
    Unreachable {
        /// What was being done.
        operation: String,
        /// The cause.
        message: String,
    },
}

impl StoreError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            StoreError::NotFound { .. } => 404,
            StoreError::AlreadyExists { .. }
            | StoreError::InvalidParameter { .. }
            | StoreError::RotateUnsupported { .. }
            | StoreError::PendingDeletion { .. }
            | StoreError::Disabled { .. }
            | StoreError::RotationInProgress { .. }
            | StoreError::StageConstraint { .. } => 400,
            StoreError::RotationFailed { .. } | StoreError::Unreachable { .. } => 502,
            StoreError::Timeout { .. } => 504,
            StoreError::Upstream { status, .. } => *status,
            StoreError::WrongMasterKey { .. }
            | StoreError::MasterKey { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Internal { .. } => 500,
        }
    }

    /// The CSMS-style error code.
    pub fn code(&self) -> &str {
        match self {
            StoreError::NotFound { .. } => codes::NOT_FOUND,
            StoreError::AlreadyExists { .. } => codes::ALREADY_EXISTS,
            StoreError::InvalidParameter { .. } => codes::INVALID_PARAMETER,
            StoreError::RotateUnsupported { .. } => codes::ROTATE_UNSUPPORTED,
            StoreError::Disabled { .. } => codes::SECRET_DISABLED,
            StoreError::PendingDeletion { .. } => codes::PENDING_DELETION,
            StoreError::RotationInProgress { .. } => codes::ROTATION_IN_PROGRESS,
            StoreError::StageConstraint { .. } => codes::STAGE_CONSTRAINT,
            StoreError::RotationFailed { .. } => codes::UPSTREAM,
            StoreError::Unreachable { .. } => codes::UPSTREAM,
            StoreError::Timeout { .. } => codes::UPSTREAM_TIMEOUT,
            StoreError::Upstream { code, .. } => code,
            StoreError::WrongMasterKey { .. }
            | StoreError::MasterKey { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Internal { .. } => codes::INTERNAL,
        }
    }

    /// Whether trying again later may succeed (used by retries and backoff).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::RotationFailed { .. }
            | StoreError::RotationInProgress { .. }
            | StoreError::Timeout { .. }
            | StoreError::Unreachable { .. } => true,
            StoreError::Upstream { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    pub(crate) fn internal(operation: impl Into<String>, e: impl std::fmt::Display) -> StoreError {
        StoreError::Internal {
            operation: operation.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::InvalidParameter {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}
