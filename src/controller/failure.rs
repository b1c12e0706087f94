//! Expected problems of a reconcile, as one type: each becomes a condition (and, where a rotation was
//! due, a failed attempt with backoff), never a retry loop. Unexpected ones are [`super::error::Error`].

use std::time::Duration;

use crate::reasons::Reason;
use secret_rotator_store::StoreError;
use secret_rotator_store::error::codes;

/// The error code recorded for a configuration problem (`status.lastFailure.errorCode`).
pub const CONFIG_CODE: &str = "CONFIG";
/// The error code recorded when the operator refuses what the resource asks of it.
pub const FORBIDDEN_CODE: &str = "FORBIDDEN";

/// A failure of one attempt that becomes `lastFailure` and a condition.
#[derive(Debug)]
pub enum Failure {
    /// The database credentials, the CA or the password policy cannot be used.
    ConfigurationMissing(String),
    /// Without an administrator, the operator needs the account's current password.
    NeedsInitialPassword(String),
    /// The resource asks for something the operator refuses to do with its privileges (for example to
    /// rotate the administrator's own account).
    Forbidden(String),
    /// A store call failed (a rotation included).
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

impl Failure {
    /// The code recorded in the status: the store's (CSMS-style) code, or the operator's own.
    pub fn code(&self) -> String {
        match self {
            Failure::ConfigurationMissing(_) => CONFIG_CODE.to_owned(),
            Failure::NeedsInitialPassword(_) => Reason::NeedsInitialPassword.as_str().to_owned(),
            Failure::Forbidden(_) => FORBIDDEN_CODE.to_owned(),
            Failure::Store(StoreError::RotationFailed { code, .. }) => code.clone(),
            Failure::Store(e) => e.code().to_owned(),
        }
    }

    /// What failed, for a person; never a value. A database's own words stay in the operator's log: the
    /// status and events say which step failed, so that neither becomes a port scanner or an oracle of
    /// which roles exist. Other peers' text is escaped and bounded.
    pub fn message(&self) -> String {
        match self {
            Failure::ConfigurationMissing(m)
            | Failure::NeedsInitialPassword(m)
            | Failure::Forbidden(m) => m.clone(),
            Failure::Store(StoreError::RotationFailed {
                name,
                code,
                task_id,
                ..
            }) => format!(
                "rotation of {name} failed (task {task_id}): {}",
                database_step(code.rsplit('.').next().unwrap_or_default())
            ),
            Failure::Store(e) => crate::sanitize::text(&e.to_string(), 512),
        }
    }

    /// The rotation task that failed, when the store ran one.
    pub fn task_id(&self) -> Option<&str> {
        match self {
            Failure::Store(StoreError::RotationFailed { task_id, .. }) if !task_id.is_empty() => {
                Some(task_id)
            }
            _ => None,
        }
    }

    /// The Ready reason of this failure.
    pub fn reason(&self) -> Reason {
        Failure::reason_of_code(&self.code())
    }

    /// The Ready reason of a failure recorded in the status by its code.
    pub fn reason_of_code(code: &str) -> Reason {
        if code == CONFIG_CODE {
            Reason::ConfigurationMissing
        } else if code == FORBIDDEN_CODE {
            Reason::Forbidden
        } else if code == Reason::NeedsInitialPassword.as_str() {
            Reason::NeedsInitialPassword
        } else if code == codes::PENDING_DELETION || code == codes::SCHEDULED_DELETION {
            Reason::StoreSecretPendingDeletion
        } else {
            Reason::RotationFailed
        }
    }
}

/// What a database step's failure code says, in the operator's words.
fn database_step(code: &str) -> &'static str {
    match code {
        "CONNECT" => "the database server could not be reached",
        "TIMEOUT" => "the database server did not answer in time",
        "TLS" => "the TLS handshake with the database server failed",
        "INSECURE_AUTH" => {
            "the database server asked for an authentication method that would send the password over a connection that is not verified; use tls.mode verify-full"
        }
        "AUTH" => "the database server refused the login",
        "PRECHECK" => "the account's current password does not log in, so nothing was changed",
        "SET_PASSWORD" => "the database server refused to set the password",
        "LOGIN_TEST" => "the new password did not log in; the previous one was put back",
        "CONFIG" => "the database connection settings cannot be used",
        _ => "a database step failed",
    }
}

/// What a reconcile does after it stops early.
#[derive(Debug)]
pub enum Then {
    /// Nothing until the resource changes.
    AwaitChange,
    /// Look again after a while.
    Requeue(Duration),
}

/// A reconcile that stops before rotating: the condition to show and what comes next.
#[derive(Debug)]
pub struct Blocked {
    /// The Ready reason.
    pub reason: Reason,
    /// The Ready message.
    pub message: String,
    /// Publish a warning event when the status changes.
    pub announce: bool,
    /// What comes next.
    pub then: Then,
}

/// Why a reconcile step stopped the reconcile.
#[derive(Debug)]
pub enum Halt {
    /// An expected stop, shown as a condition.
    Blocked(Blocked),
    /// An error, retried with backoff by its kind. `shown` is the condition to show until then (the store
    /// is unavailable, say); without one the status is left alone.
    Failed {
        /// The error.
        error: Box<super::Error>,
        /// The Ready reason and message to show meanwhile.
        shown: Option<(Reason, String)>,
    },
}

impl<E: Into<super::Error>> From<E> for Halt {
    fn from(e: E) -> Halt {
        Halt::Failed {
            error: Box::new(e.into()),
            shown: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_codes() {
        let cases = [
            (
                Failure::ConfigurationMissing("x".into()),
                "CONFIG",
                Reason::ConfigurationMissing,
            ),
            (
                Failure::NeedsInitialPassword("x".into()),
                "NeedsInitialPassword",
                Reason::NeedsInitialPassword,
            ),
            (
                Failure::Store(StoreError::RotationFailed {
                    name: "shop.db".into(),
                    task_id: "t".into(),
                    code: "CSMS.0510.TEST".into(),
                    message: "m".into(),
                }),
                "CSMS.0510.TEST",
                Reason::RotationFailed,
            ),
            (
                Failure::Store(StoreError::PendingDeletion {
                    name: "shop.db".into(),
                }),
                "CSMS.0107",
                Reason::StoreSecretPendingDeletion,
            ),
        ];
        // A code recorded from the real service's other pending-deletion answer.
        assert_eq!(
            Failure::reason_of_code("CSMS.0103"),
            Reason::StoreSecretPendingDeletion
        );
        for (f, code, reason) in cases {
            assert_eq!(f.code(), code);
            assert_eq!(f.reason(), reason);
            assert_eq!(Failure::reason_of_code(code), reason);
        }
    }
}
