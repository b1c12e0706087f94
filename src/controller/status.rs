//! The status of a SecretRotation, as a pure function: from the status the apiserver holds and what one
//! reconcile did, the new status and the events to publish. No I/O; tested on fixtures.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::failure::Failure;
use super::reasons::Reason;
use crate::api::{
    CONDITION_READY, CONDITION_ROTATING, PendingRotateNowStatus, RestartKind, RotationFailure,
    SecretRotationStatus,
};

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

/// An event to publish about the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// A warning (something to act on) or a normal event.
    pub warning: bool,
    /// The reason.
    pub reason: Reason,
    /// The message; never a value.
    pub message: String,
}

impl Note {
    fn warning(reason: Reason, message: String) -> Note {
        Note {
            warning: true,
            reason,
            message,
        }
    }

    fn normal(reason: Reason, message: String) -> Note {
        Note {
            warning: false,
            reason,
            message,
        }
    }
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
    value: &str,
    from_version: Option<&str>,
) -> SecretRotationStatus {
    st.pending_rotate_now = Some(PendingRotateNowStatus {
        value: value.to_owned(),
        from_version: from_version.unwrap_or_default().to_owned(),
    });
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
        format!("rotating for rotate-now {value}"),
    );
    frame.conditions(&mut st, ready, rotating);
    st
}

/// How a restart target's restart went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartResult {
    /// The pod template was annotated.
    Done,
    /// No such workload.
    Missing,
    /// The patch failed; why.
    Failed(String),
}

/// One restart target and how its restart went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// The workload kind.
    pub kind: RestartKind,
    /// The workload name.
    pub name: String,
    /// How it went.
    pub result: RestartResult,
}

/// The version the synced Secret holds after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The synced Secret's name.
    pub secret: String,
    /// The store version.
    pub version_id: String,
    /// The task that made it (empty for COMMON).
    pub task_id: String,
    /// When the store made it.
    pub created: Timestamp,
    /// The account it holds (database secrets).
    pub current_user: Option<String>,
    /// HMAC of the synced data.
    pub data_hmac: String,
    /// Whether this reconcile wrote the Secret.
    pub applied: bool,
    /// Restarts this reconcile made.
    pub restarts: Vec<Restart>,
}

/// Where the synced Secret stands after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncedState {
    /// The store has no usable value (a database password not known yet, or nothing created).
    NoValue,
    /// The apiserver refused the Secret; the message says why (never a value).
    Rejected(String),
    /// The Secret holds a version.
    Holds(Held),
}

/// What one reconcile did, for [`settle`].
#[derive(Debug)]
pub struct Outcome<'a> {
    /// How the store secret came to be, if this reconcile created it with a generated value.
    pub bootstrapped: bool,
    /// A rotation succeeded.
    pub rotated: bool,
    /// This attempt's failure.
    pub failure: Option<&'a Failure>,
    /// The synced Secret.
    pub synced: &'a SyncedState,
    /// The next scheduled rotation.
    pub next_rotation: Option<Timestamp>,
}

/// Records what acting did: a successful rotation clears the failures, a handled rotate-now is done. The
/// planner's second look (the next due time after a rotation) reads this status.
pub fn record_action(st: &mut SecretRotationStatus, rotated: bool, rotate_now_done: Option<&str>) {
    if let Some(v) = rotate_now_done {
        st.last_rotate_now = Some(v.to_owned());
        st.pending_rotate_now = None;
    }
    if rotated {
        st.failed_attempts = 0;
        st.last_failure = None;
    }
}

/// The status after a reconcile that got past the gate: `st` is the status so far (with any rotate-now
/// intent and [`record_action`] applied), `written` what the apiserver holds.
pub fn settle(
    frame: &Frame<'_>,
    mut st: SecretRotationStatus,
    written: &SecretRotationStatus,
    outcome: &Outcome<'_>,
) -> Settled {
    let mut notes = Vec::new();
    if let Some(f) = outcome.failure {
        st.failed_attempts = frame.previous.failed_attempts.saturating_add(1);
        st.last_failure = Some(RotationFailure {
            time: seconds(frame.now),
            error_code: f.code().chars().take(64).collect(),
            message: f.message().chars().take(1024).collect(),
        });
        notes.push(Note::warning(
            Reason::RotationFailed,
            format!("{}: {}", f.code(), f.message()),
        ));
    }
    st.next_rotation_time = outcome.next_rotation.map(seconds);
    let mut ready = Verdict::no(Reason::Suspended, String::new());
    match outcome.synced {
        SyncedState::Rejected(msg) => {
            frame.conditions(
                &mut st,
                Verdict::no(Reason::SecretRejected, msg.clone()),
                Verdict::idle(),
            );
            let changed = st != *written;
            if changed {
                notes.push(Note::warning(Reason::SecretRejected, msg.clone()));
            }
            return Settled {
                status: changed.then_some(st),
                notes,
            };
        }
        SyncedState::NoValue => {}
        SyncedState::Holds(held) => {
            notes.extend(held_notes(frame, outcome, held));
            st.version_id = Some(held.version_id.clone());
            st.rotation_task_id = (!held.task_id.is_empty()).then(|| held.task_id.clone());
            st.last_rotation_time = Some(seconds(held.created));
            st.current_user = held.current_user.clone();
            st.data_hmac = Some(held.data_hmac.clone());
            ready = Verdict::yes(
                Reason::Synced,
                format!(
                    "Secret {} holds {} {}",
                    held.secret, frame.store_secret, held.version_id
                ),
            );
        }
    }
    // A failure of this reconcile, or one still standing while the retry waits for its backoff.
    let standing = match outcome.failure {
        Some(f) => Some((f.code(), f.message())),
        None => st
            .last_failure
            .as_ref()
            .filter(|_| st.failed_attempts > 0)
            .map(|f| (f.error_code.clone(), f.message.clone())),
    };
    if let Some((code, message)) = standing {
        let held = st
            .version_id
            .as_deref()
            .map(|v| format!("; the synced Secret still holds {v}"))
            .unwrap_or_default();
        ready = Verdict::no(
            Failure::reason_of_code(&code),
            format!("{code}: {message}{held}"),
        );
    }
    let rotating = if st.failed_attempts > 0 {
        Verdict::yes(
            Reason::Retrying,
            format!(
                "attempt {} failed; retrying with backoff",
                st.failed_attempts
            ),
        )
    } else {
        Verdict::idle()
    };
    frame.conditions(&mut st, ready, rotating);
    let changed = st != *written;
    Settled {
        status: changed.then_some(st),
        notes,
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

/// The events of a synced Secret written and of the restarts that followed.
fn held_notes(frame: &Frame<'_>, outcome: &Outcome<'_>, held: &Held) -> Vec<Note> {
    let mut notes = Vec::new();
    let (store, version, secret) = (frame.store_secret, &held.version_id, &held.secret);
    if held.applied {
        notes.push(if outcome.bootstrapped {
            Note::normal(
                Reason::Rotated,
                format!(
                    "created store secret {store} with a generated value {version}; Secret {secret} written"
                ),
            )
        } else if outcome.rotated {
            Note::normal(
                Reason::Rotated,
                format!("rotated store secret {store} to {version}; Secret {secret} updated"),
            )
        } else {
            Note::normal(
                Reason::Synced,
                format!("Secret {secret} written from {store} {version}"),
            )
        });
    }
    for r in &held.restarts {
        notes.push(match &r.result {
            RestartResult::Done => Note::normal(
                Reason::RestartTriggered,
                format!("restarted {:?} {}", r.kind, r.name),
            ),
            RestartResult::Missing => Note::warning(
                Reason::RestartTargetMissing,
                format!(
                    "{:?} {} does not exist in {}",
                    r.kind, r.name, frame.namespace
                ),
            ),
            RestartResult::Failed(e) => Note::warning(
                Reason::RestartFailed,
                format!("restarting {:?} {}: {e}", r.kind, r.name),
            ),
        });
    }
    notes
}
