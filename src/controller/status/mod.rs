//! The status of a SecretRotation, as a pure function: from the status the apiserver holds and what one
//! reconcile did, the new status and the events to publish. No I/O; tested on fixtures.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

mod notes;

use super::failure::Failure;
use super::synced::SyncedState;
use crate::api::{
    CONDITION_READY, CONDITION_ROTATING, PendingRotateNowStatus, RollbackStatus, RotationFailure,
    SecretRotationStatus, VersionStatus,
};
use crate::note::Note;
use crate::reasons::Reason;
use secret_rotator_core::planner::Creation;

/// One condition as a reconcile decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `True` or `False`.
    pub ok: bool,
    /// Why.
    pub reason: Reason,
    /// What a person reads; empty means the reason says it all.
    pub message: String,
}

impl Verdict {
    /// A condition that is true.
    pub fn yes(reason: Reason, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: true,
            reason,
            message: message.into(),
        }
    }

    /// A condition that is false.
    pub fn no(reason: Reason, message: impl Into<String>) -> Verdict {
        Verdict {
            ok: false,
            reason,
            message: message.into(),
        }
    }

    /// Rotating=False, Idle.
    pub fn idle() -> Verdict {
        Verdict::no(Reason::Idle, String::new())
    }
}

/// A status time. The apiserver keeps whole seconds; a finer time would never compare equal to the
/// stored one, and every reconcile would write the status again.
pub fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

/// A store time in milliseconds, as a timestamp.
pub fn from_millis(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A condition, keeping the previous transition time while its status holds.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    verdict: Verdict,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if verdict.ok { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    // An empty message is serialized as null, which the CRD schema refuses: always say something.
    let message = if verdict.message.is_empty() {
        match verdict.reason {
            Reason::Idle => "no rotation in progress".to_owned(),
            other => other.as_str().to_owned(),
        }
    } else {
        verdict.message.chars().take(1024).collect()
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: verdict.reason.as_str().to_owned(),
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
    ready: Verdict,
    rotating: Verdict,
) {
    status.conditions = vec![
        condition(previous, CONDITION_READY, ready, generation, now),
        condition(previous, CONDITION_ROTATING, rotating, generation, now),
    ];
}

/// The status to write (none when the apiserver already holds it) and the events to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    /// The new status, when it differs from the one the apiserver holds.
    pub status: Option<SecretRotationStatus>,
    /// Events, in order.
    pub notes: Vec<Note>,
}

/// The fixed facts of one reconcile that every status it writes carries.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    /// The status as the resource was read (transition times come from it).
    pub previous: &'a SecretRotationStatus,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Now.
    pub now: Timestamp,
    /// The store secret's name.
    pub store_secret: &'a str,
    /// The resource's namespace.
    pub namespace: &'a str,
}

impl Frame<'_> {
    /// The previous status with this reconcile's generation and store secret.
    pub fn base(&self) -> SecretRotationStatus {
        let mut st = self.previous.clone();
        st.observed_generation = self.generation;
        st.secret_name = Some(self.store_secret.to_owned());
        st
    }

    fn conditions(&self, st: &mut SecretRotationStatus, ready: Verdict, rotating: Verdict) {
        set_conditions(
            st,
            &self.previous.conditions,
            self.generation,
            &seconds(self.now),
            ready,
            rotating,
        );
    }
}

/// A reconcile that stops before any rotation: the spec is invalid or forbidden, the store secret is
/// missing or unreadable, or the resource is suspended before its first value. `announce` publishes the
/// reason as a warning when the status changes.
pub fn blocked(
    frame: &Frame<'_>,
    written: &SecretRotationStatus,
    ready: Verdict,
    announce: bool,
) -> Settled {
    let mut st = frame.base();
    let note = Note::warning(ready.reason, ready.message.clone());
    frame.conditions(&mut st, ready, Verdict::idle());
    let changed = st != *written;
    Settled {
        status: changed.then_some(st),
        notes: if changed && announce {
            vec![note]
        } else {
            vec![]
        },
    }
}

/// The status recorded before a rotate-now rotates: after a restart, the store tells whether it happened.
pub fn with_intent(
    frame: &Frame<'_>,
    mut st: SecretRotationStatus,
    intent: &PendingRotateNowStatus,
) -> SecretRotationStatus {
    st.observed_generation = frame.generation;
    st.secret_name = Some(frame.store_secret.to_owned());
    st.pending_rotate_now = Some(intent.clone());
    let was_ready = frame
        .previous
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_READY && c.status == "True");
    let ready = Verdict {
        ok: was_ready,
        reason: Reason::Synced,
        message: "rotating".into(),
    };
    let rotating = Verdict::yes(
        Reason::InProgress,
        format!("rotating for rotate-now {}", intent.value),
    );
    frame.conditions(&mut st, ready, rotating);
    st
}

/// What one reconcile did, for [`settle`].
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The rotate-now intent recorded before rotating.
    pub intent: Option<&'a PendingRotateNowStatus>,
    /// The store secret was created in this reconcile, holding this.
    pub created: Option<Creation>,
    /// A rotation succeeded.
    pub rotated: bool,
    /// The rotate-now value handled by a rotation, or found handled in the store.
    pub rotate_now_done: Option<&'a str>,
    /// This attempt's failure.
    pub failure: Option<&'a Failure>,
    /// The synced Secret.
    pub synced: &'a SyncedState,
    /// The versions the store holds, when they were read again.
    pub versions: Option<Vec<VersionStatus>>,
    /// The next scheduled rotation.
    pub next_rotation: Option<Timestamp>,
    /// A due rotation waits for the maintenance window opening then.
    pub waiting_for_window: Option<Timestamp>,
    /// A person's request (rotate-now, rollback-to) waits for the minimum gap, until then.
    pub request_waits: Option<(&'static str, Timestamp)>,
    /// A rollback request handled in this reconcile.
    pub rollback: Option<&'a RollbackStatus>,
}

/// The status after a reconcile that got past the gate, from the status as read (`frame.previous`), what
/// the apiserver holds now (`written`) and what the reconcile did.
pub fn settle(frame: &Frame<'_>, written: &SecretRotationStatus, outcome: &Outcome<'_>) -> Settled {
    let mut st = frame.base();
    let mut notes = Vec::new();
    record(&mut st, outcome);
    if let Some(f) = outcome.failure {
        st.failed_attempts = frame.previous.failed_attempts.saturating_add(1);
        st.last_failure = Some(RotationFailure {
            time: seconds(frame.now),
            error_code: f.code().chars().take(64).collect(),
            message: f.message().chars().take(1024).collect(),
        });
        notes.push(notes::failure(f, &st));
    }
    if let Some(r) = outcome.rollback {
        notes.push(notes::rollback(r));
    }
    st.next_rotation_time = outcome.next_rotation.map(seconds);
    let mut ready = Verdict::no(Reason::Suspended, String::new());
    match outcome.synced {
        SyncedState::Rejected(msg) | SyncedState::Taken(msg) => {
            let reason = match outcome.synced {
                SyncedState::Taken(_) => Reason::SecretNotOwned,
                _ => Reason::SecretRejected,
            };
            frame.conditions(&mut st, Verdict::no(reason, msg.clone()), Verdict::idle());
            let changed = st != *written;
            if changed {
                notes.push(Note::warning(reason, msg.clone()));
            }
            return Settled {
                status: changed.then_some(st),
                notes,
            };
        }
        SyncedState::NoValue => {}
        SyncedState::Holds(held) => {
            notes.extend(notes::held(frame, outcome, held));
            st.version_id = Some(held.version_id.clone());
            st.rotation_task_id = (!held.task_id.is_empty()).then(|| held.task_id.clone());
            st.last_rotation_time = Some(seconds(held.created));
            st.current_user = held.current_user.clone();
            st.data_hmac = Some(held.data_hmac.clone());
            if held.restarted_version.is_some() {
                st.restarted_version = held.restarted_version.clone();
            }
            ready = Verdict::yes(
                Reason::Synced,
                format!(
                    "Secret {} holds {} {}",
                    held.secret, frame.store_secret, held.version_id
                ),
            );
        }
    }
    if let Some(failing) = standing_failure(&st, outcome) {
        ready = failing;
    }
    let rotating = rotating(&st, outcome);
    frame.conditions(&mut st, ready, rotating);
    let changed = st != *written;
    Settled {
        status: changed.then_some(st),
        notes,
    }
}

/// Records what acting did: the rotate-now intent, a successful rotation clears the failures, a handled
/// rotate-now is done, a handled rollback and a new version list are kept.
fn record(st: &mut SecretRotationStatus, outcome: &Outcome<'_>) {
    if let Some(intent) = outcome.intent {
        st.pending_rotate_now = Some(intent.clone());
    }
    if let Some(v) = outcome.rotate_now_done {
        st.last_rotate_now = Some(v.to_owned());
        st.pending_rotate_now = None;
    }
    if outcome.rotated {
        st.failed_attempts = 0;
        st.last_failure = None;
    }
    if let Some(r) = outcome.rollback {
        st.last_rollback = Some(r.clone());
    }
    if let Some(versions) = &outcome.versions {
        st.versions = versions.clone();
    }
}

/// Ready=False for a failure of this reconcile, or one still standing while the retry waits for its
/// backoff.
fn standing_failure(st: &SecretRotationStatus, outcome: &Outcome<'_>) -> Option<Verdict> {
    let (code, message) = match outcome.failure {
        Some(f) => (f.code(), f.message()),
        None => st
            .last_failure
            .as_ref()
            .filter(|_| st.failed_attempts > 0)
            .map(|f| (f.error_code.clone(), f.message.clone()))?,
    };
    let held = st
        .version_id
        .as_deref()
        .map(|v| format!("; the synced Secret still holds {v}"))
        .unwrap_or_default();
    Some(Verdict::no(
        Failure::reason_of_code(&code),
        format!("{code}: {message}{held}"),
    ))
}

/// The Rotating condition: retrying after a failure, waiting for the window, or idle.
fn rotating(st: &SecretRotationStatus, outcome: &Outcome<'_>) -> Verdict {
    if st.failed_attempts > 0 {
        Verdict::yes(
            Reason::Retrying,
            format!(
                "attempt {} failed; retrying with backoff",
                st.failed_attempts
            ),
        )
    } else if let Some((request, until)) = outcome.request_waits {
        Verdict::no(
            Reason::RateLimited,
            format!(
                "the {request} request waits until {}: SYSCURRENT changed less than the operator's --min-rotation-period ago",
                seconds(until).0
            ),
        )
    } else if let Some(opens) = outcome.waiting_for_window {
        Verdict::no(
            Reason::WaitingForWindow,
            format!(
                "a scheduled rotation is due; it waits for the maintenance window, which opens at {}",
                seconds(opens).0
            ),
        )
    } else {
        Verdict::idle()
    }
}

/// The merge patch from `old` to `new`: every field of `new`, and null for each field only `old` has.
pub fn merge_patch(old: &SecretRotationStatus, new: &SecretRotationStatus) -> serde_json::Value {
    let mut patch = serde_json::to_value(new).unwrap_or_default();
    if let (Ok(serde_json::Value::Object(old)), Some(map)) =
        (serde_json::to_value(old), patch.as_object_mut())
    {
        for k in old.keys() {
            if !map.contains_key(k) {
                map.insert(k.clone(), serde_json::Value::Null);
            }
        }
    }
    patch
}

/// The top-level status fields a merge patch changes, for a debug log.
pub fn changed_fields(old: &SecretRotationStatus, patch: &serde_json::Value) -> Vec<String> {
    let old = serde_json::to_value(old).unwrap_or_default();
    patch
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
