//! Store errors, each with the HTTP status and CSMS-style error code the API answers with.
//! No message ever carries a secret value.

/// Error codes, in the CSMS.xxxx family. Where DEW's published error-code table names a condition, its
/// code is used (CSMS.0002 to CSMS.0107, listed in [`codes::TABLE`]); the project's own conditions use
/// numbers the table does not give: 04xx and 05xx after the HTTP status they come with, CSMS.0510.<step>
/// for a database step of a rotation, and 09xx for the rest.
pub mod codes {
    /// Table: the value of a parameter is invalid (an unknown secret type included).
    pub const INVALID_PARAMETER: &str = "CSMS.0002";
    /// RotateSecret does not support COMMON secrets: the secret's type is an invalid value for the call
    /// (table: the value of a parameter is invalid).
    pub const ROTATE_UNSUPPORTED: &str = "CSMS.0002";
    /// Table: the request is invalid (URL): a path that is not an API path, bad percent-encoding, a
    /// malformed query string.
    pub const INVALID_URL: &str = "CSMS.0003";
    /// Table: the request body format is wrong (not JSON, unknown fields, wrong types).
    pub const MALFORMED_BODY: &str = "CSMS.0004";
    /// Table: the resource does not exist.
    pub const NOT_FOUND: &str = "CSMS.0005";
    /// Table: the secret is in the scheduled-deletion state and cannot be used.
    pub const SCHEDULED_DELETION: &str = "CSMS.0103";
    /// Table: a system stage (SYSCURRENT, SYSPENDING) cannot be deleted.
    pub const SYSTEM_STAGE: &str = "CSMS.0105";
    /// Table: the secret name does not exist (the real service answers it with 400; this project's
    /// server answers a missing secret with 404 CSMS.0005).
    pub const SECRET_NAME_NOT_FOUND: &str = "CSMS.0106";
    /// Table: the secret is pending deletion (this server: a second DeleteSecretForSchedule of it).
    pub const PENDING_DELETION: &str = "CSMS.0107";
    /// Table: the secret is not pending deletion (RestoreSecret of a secret that is not).
    pub const NOT_PENDING_DELETION: &str = "CSMS.0108";

    /// Own: no credentials, or bad ones (401).
    pub const UNAUTHORIZED: &str = "CSMS.0401";
    /// Own: valid credentials without access to the project (403).
    pub const FORBIDDEN: &str = "CSMS.0403";
    /// Own: the method is not allowed on this path (405).
    pub const METHOD_NOT_ALLOWED: &str = "CSMS.0405";
    /// Own: a client took too long to send its request (408).
    pub const REQUEST_TIMEOUT: &str = "CSMS.0408";
    /// Own: the request body is larger than the server accepts (400).
    pub const BODY_TOO_LARGE: &str = "CSMS.0413";
    /// Own: an internal failure (storage, encryption) (500).
    pub const INTERNAL: &str = "CSMS.0500";
    /// Own: the database or an upstream CSMS failed (502).
    pub const UPSTREAM: &str = "CSMS.0502";
    /// Own: the database or an upstream CSMS did not answer in time (504).
    pub const UPSTREAM_TIMEOUT: &str = "CSMS.0504";
    /// Own: the database refused the new password or the login test; the task's code is
    /// `CSMS.0510.<step>`.
    pub const TARGET_FAILED: &str = "CSMS.0510";
    /// Own: the secret is disabled (400).
    pub const SECRET_DISABLED: &str = "CSMS.0901";
    /// Own: the secret already exists (400).
    pub const ALREADY_EXISTS: &str = "CSMS.0902";
    /// Own: another rotation of the secret is in progress (400).
    pub const ROTATION_IN_PROGRESS: &str = "CSMS.0903";
    /// Own: a stage rule would be broken, other than deleting a system stage (for example SYSPENDING
    /// moved while a rotation finished) (400).
    pub const STAGE_CONSTRAINT: &str = "CSMS.0904";
    /// Own: `serve` was started without a way to reach databases (neither `--targets-file` nor
    /// `--simulated-databases`), so it cannot rotate a database secret (400).
    pub const NO_DATABASE_TARGETS: &str = "CSMS.0905";
    /// Own: the secret's `rotation_config` names an `InstanceId` the targets file does not hold for the
    /// secret's project (400).
    pub const UNKNOWN_INSTANCE: &str = "CSMS.0906";

    /// The codes of DEW's published error-code table (CSMS-API.md), whatever this project uses of them.
    pub const TABLE: &[&str] = &[
        "CSMS.0002",
        "CSMS.0003",
        "CSMS.0004",
        "CSMS.0005",
        "CSMS.0103",
        "CSMS.0105",
        "CSMS.0106",
        "CSMS.0107",
        "CSMS.0108",
        "CSMS.0202",
        "CSMS.0203",
    ];

    /// The project's own codes: none may be a number of [`TABLE`].
    pub const OWN: &[&str] = &[
        UNAUTHORIZED,
        FORBIDDEN,
        METHOD_NOT_ALLOWED,
        REQUEST_TIMEOUT,
        BODY_TOO_LARGE,
        INTERNAL,
        UPSTREAM,
        UPSTREAM_TIMEOUT,
        TARGET_FAILED,
        SECRET_DISABLED,
        ALREADY_EXISTS,
        ROTATION_IN_PROGRESS,
        STAGE_CONSTRAINT,
        NO_DATABASE_TARGETS,
        UNKNOWN_INSTANCE,
    ];
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
    /// until the deletion is cancelled. The csms client's error for both codes; the embedded store's for a
    /// second DeleteSecretForSchedule (CSMS.0107).
    #[error(
        "secret {name} is pending deletion in CSMS: it cannot be read or rotated until its scheduled deletion is cancelled"
    )]
    PendingDeletion {
        /// The secret.
        name: String,
    },
    /// The embedded store's secret is scheduled for deletion (CSMS.0103): its values, versions and stages
    /// cannot be used, nor its metadata changed, until RestoreSecret; after `delete_time` it is gone.
    #[error(
        "secret {name} is scheduled for deletion at {delete_time} and cannot be used; RestoreSecret (POST .../scheduled-deleted-tasks/cancel) makes it usable again"
    )]
    ScheduledForDeletion {
        /// The secret.
        name: String,
        /// When it will be deleted (RFC 3339).
        delete_time: String,
    },
    /// RestoreSecret of a secret that is not scheduled for deletion (CSMS.0108).
    #[error("secret {name} is not scheduled for deletion: there is nothing to restore")]
    NotPendingDeletion {
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
    /// A system stage (SYSCURRENT, SYSPENDING) cannot be deleted.
    #[error("stage {stage} of {name} is a system stage and cannot be deleted")]
    SystemStage {
        /// The secret.
        name: String,
        /// The stage.
        stage: String,
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
            | StoreError::ScheduledForDeletion { .. }
            | StoreError::NotPendingDeletion { .. }
            | StoreError::Disabled { .. }
            | StoreError::RotationInProgress { .. }
            | StoreError::SystemStage { .. }
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
            StoreError::ScheduledForDeletion { .. } => codes::SCHEDULED_DELETION,
            StoreError::NotPendingDeletion { .. } => codes::NOT_PENDING_DELETION,
            StoreError::RotationInProgress { .. } => codes::ROTATION_IN_PROGRESS,
            StoreError::SystemStage { .. } => codes::SYSTEM_STAGE,
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

    /// A request field that is not acceptable (CSMS.0002-style), naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::InvalidParameter {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::codes;

    /// The project's own codes never reuse a number DEW's table gives another meaning; the codes taken
    /// from the table are the table's.
    #[test]
    fn own_codes_collide_with_none_of_the_table() {
        let number = |c: &str| c.split('.').nth(1).map(str::to_owned);
        for own in codes::OWN {
            assert!(
                !codes::TABLE.iter().any(|t| number(t) == number(own)),
                "{own} is a number of the table"
            );
        }
        for taken in [
            codes::INVALID_PARAMETER,
            codes::ROTATE_UNSUPPORTED,
            codes::INVALID_URL,
            codes::MALFORMED_BODY,
            codes::NOT_FOUND,
            codes::SCHEDULED_DELETION,
            codes::SYSTEM_STAGE,
            codes::SECRET_NAME_NOT_FOUND,
            codes::PENDING_DELETION,
            codes::NOT_PENDING_DELETION,
        ] {
            assert!(codes::TABLE.contains(&taken), "{taken}");
        }
        let mut own = codes::OWN.to_vec();
        own.sort_unstable();
        own.dedup();
        assert_eq!(
            own.len(),
            codes::OWN.len(),
            "two conditions share an own code"
        );
    }
}
