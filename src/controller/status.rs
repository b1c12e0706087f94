//! Conditions and the status write (server-side apply, only when something changed).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{CONDITION_READY, CONDITION_ROTATING, SecretRotationStatus};

/// Reasons of the Ready condition. Each names something a person can act on.
pub mod reasons {
    /// The synced Secret holds the store's current version.
    pub const SYNCED: &str = "Synced";
    /// The spec breaks a rule the schema cannot hold.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The store secret is outside the namespace's allowed names.
    pub const FORBIDDEN: &str = "Forbidden";
    /// The csms backend has no such secret.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The store could not be read or written.
    pub const STORE_UNAVAILABLE: &str = "StoreUnavailable";
    /// The last rotation failed.
    pub const ROTATION_FAILED: &str = "RotationFailed";
    /// The apiserver refused the synced Secret (too large, immutable, a forbidden namespace, ...).
    pub const SECRET_REJECTED: &str = "SecretRejected";
    /// The database credentials or CA cannot be read.
    pub const CONFIG_MISSING: &str = "ConfigurationMissing";
    /// A database secret without an administrator needs its current password.
    pub const NEEDS_INITIAL_PASSWORD: &str = "NeedsInitialPassword";
    /// Rotations are suspended and the store has no usable value yet.
    pub const SUSPENDED: &str = "Suspended";
    /// Rotating: no rotation in progress.
    pub const IDLE: &str = "Idle";
    /// Rotating: a rotation is under way or will be retried.
    pub const IN_PROGRESS: &str = "InProgress";
    /// Rotating: the last attempt failed; a retry follows after a backoff.
    pub const RETRYING: &str = "Retrying";
}

/// A condition, keeping the previous transition time when status, reason and message are unchanged.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    // An empty message is serialized as null, which the CRD schema refuses: always say something.
    let message = if message.is_empty() {
        match reason {
            reasons::IDLE => "no rotation in progress".to_owned(),
            other => other.to_owned(),
        }
    } else {
        message.chars().take(1024).collect()
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// Sets Ready and Rotating on a status.
pub fn set_conditions(
    status: &mut SecretRotationStatus,
    previous: &[Condition],
    generation: Option<i64>,
    now: &Time,
    ready: (bool, &str, String),
    rotating: (bool, &str, String),
) {
    status.conditions = vec![
        condition(
            previous,
            CONDITION_READY,
            ready.0,
            ready.1,
            ready.2,
            generation,
            now,
        ),
        condition(
            previous,
            CONDITION_ROTATING,
            rotating.0,
            rotating.1,
            rotating.2,
            generation,
            now,
        ),
    ];
}

/// Whether two statuses say the same thing.
pub fn same(a: &SecretRotationStatus, b: &SecretRotationStatus) -> bool {
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t1 = Time("2026-11-27T10:00:00Z".parse().unwrap());
        let t2 = Time("2026-11-27T11:00:00Z".parse().unwrap());
        let c1 = condition(&[], "Ready", true, "Synced", "m".into(), Some(1), &t1);
        let c2 = condition(
            std::slice::from_ref(&c1),
            "Ready",
            true,
            "Synced",
            "other".into(),
            Some(2),
            &t2,
        );
        assert_eq!(c2.last_transition_time, t1);
        let c3 = condition(
            &[c2],
            "Ready",
            false,
            "RotationFailed",
            "x".into(),
            Some(2),
            &t2,
        );
        assert_eq!(c3.last_transition_time, t2);
        assert_eq!(c3.status, "False");
    }
}
