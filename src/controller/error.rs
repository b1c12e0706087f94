//! The errors a reconcile is retried for, one type per step, each with a [`ErrorKind`] that decides how
//! long the controller waits before the next attempt. Expected problems are conditions instead (see
//! [`super::failure`]).

use std::time::Duration;

use secret_rotator_core::planner::backoff;
use secret_rotator_store::StoreError;

/// What an error is, for the retry delay and the metrics' `category` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The apiserver refused or did not answer.
    Kube,
    /// A write lost a race with another writer: the next attempt reads again.
    KubeConflict,
    /// The store did not answer or asked to be tried again.
    StoreTransient,
    /// The store answered with an error.
    Store,
}

impl ErrorKind {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Kube => "kube",
            ErrorKind::KubeConflict => "kube_conflict",
            ErrorKind::StoreTransient => "store_transient",
            ErrorKind::Store => "store",
        }
    }

    /// The delay before attempt `attempts + 1`: the planner's backoff from a base of this kind's own (a
    /// conflict resolves on the next read; an unreachable peer is looked at again soon, then less often;
    /// an answered error waits as long as a failed rotation).
    pub fn delay(self, attempts: u32, jitter: f64) -> Duration {
        let base = match self {
            ErrorKind::KubeConflict => Duration::from_secs(1),
            ErrorKind::Kube | ErrorKind::StoreTransient => Duration::from_secs(2),
            ErrorKind::Store => backoff::BASE,
        };
        backoff::delay_from(base, attempts, jitter)
    }

    fn of_kube(e: &kube::Error) -> ErrorKind {
        match e {
            kube::Error::Api(ae) if ae.code == 409 => ErrorKind::KubeConflict,
            _ => ErrorKind::Kube,
        }
    }

    fn of_store(e: &StoreError) -> ErrorKind {
        if e.is_transient() {
            ErrorKind::StoreTransient
        } else {
            ErrorKind::Store
        }
    }
}

/// Observing what the store and the apiserver hold failed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// Reading the Secret named like the synced Secret.
    #[error("reading Secret {object}: {source}")]
    ReadSecret {
        /// `namespace/name`.
        object: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Reading the store secret.
    #[error("reading store secret {object}: {source}")]
    ReadStore {
        /// The store secret.
        object: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// Acting on the plan failed in a way that is not a failed attempt (those are conditions).
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// Recording the rotate-now intent before rotating.
    #[error("recording the rotate-now intent: {0}")]
    Intent(#[source] StatusError),
    /// Reading the store secret's new SYSCURRENT after the action.
    #[error("reading store secret {object} after {action}: {source}")]
    ReadBack {
        /// The store secret.
        object: String,
        /// What was done.
        action: &'static str,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

/// Bringing the synced Secret to SYSCURRENT failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The Secret's data could not be built from the store's value.
    #[error("building Secret {object} from store secret {store_secret}: {source}")]
    Build {
        /// `namespace/name` of the synced Secret.
        object: String,
        /// The store secret.
        store_secret: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Reading SYSPREVIOUS for a template that uses it.
    #[error("reading SYSPREVIOUS of store secret {store_secret}: {source}")]
    ReadPrevious {
        /// The store secret.
        store_secret: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Writing the synced Secret.
    #[error("applying Secret {object}: {source}")]
    Apply {
        /// `namespace/name`.
        object: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Writing the status failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the status of {object}: {source}")]
pub struct StatusError {
    /// `namespace/name` of the SecretRotation.
    pub object: String,
    /// The cause.
    #[source]
    pub source: kube::Error,
}

/// A reconcile failure that is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The observe step.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// The act step.
    #[error(transparent)]
    Act(#[from] ActError),
    /// The sync step.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The status write.
    #[error(transparent)]
    Status(#[from] StatusError),
}

impl Error {
    /// What kind of error it is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Observe(ObserveError::ReadSecret { source, .. })
            | Error::Sync(SyncError::Apply { source, .. })
            | Error::Act(ActError::Intent(StatusError { source, .. }))
            | Error::Status(StatusError { source, .. }) => ErrorKind::of_kube(source),
            Error::Observe(ObserveError::ReadStore { source, .. })
            | Error::Act(ActError::ReadBack { source, .. })
            | Error::Sync(SyncError::Build { source, .. })
            | Error::Sync(SyncError::ReadPrevious { source, .. }) => ErrorKind::of_store(source),
        }
    }

    /// The metrics label.
    pub fn category(&self) -> &'static str {
        self.kind().as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("the object has been modified", "Conflict")
                .with_code(409)
                .boxed(),
        )
    }

    #[test]
    fn kinds_follow_the_cause() {
        let status = |source| {
            Error::Status(StatusError {
                object: "shop/db".into(),
                source,
            })
        };
        assert_eq!(status(conflict()).kind(), ErrorKind::KubeConflict);
        let read = |source| {
            Error::Observe(ObserveError::ReadStore {
                object: "shop.db".into(),
                source,
            })
        };
        assert_eq!(
            read(StoreError::Timeout {
                operation: "show_version".into()
            })
            .kind(),
            ErrorKind::StoreTransient
        );
        assert_eq!(
            read(StoreError::NotFound {
                kind: "secret",
                name: "shop.db".into()
            })
            .kind(),
            ErrorKind::Store
        );
        assert_eq!(status(conflict()).category(), "kube_conflict");
    }

    #[test]
    fn each_kind_backs_off_from_its_own_base_and_grows() {
        for kind in [
            ErrorKind::Kube,
            ErrorKind::KubeConflict,
            ErrorKind::StoreTransient,
            ErrorKind::Store,
        ] {
            let first = kind.delay(1, 0.5);
            let third = kind.delay(3, 0.5);
            assert!(third > first, "{kind:?}: {first:?} then {third:?}");
            assert!(kind.delay(40, 0.999) <= backoff::CAP.mul_f64(1.2));
        }
        assert!(ErrorKind::KubeConflict.delay(1, 0.0) < ErrorKind::Store.delay(1, 0.0));
    }
}
