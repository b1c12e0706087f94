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
    /// What the event is about beyond its reason (a version, a workload): events with the same reason but
    /// another subject are distinct events, not a repeat counted in one event's series.
    pub subject: Option<String>,
    /// What a notification says besides the reason and the message (never a value).
    pub facts: Facts,
}

/// The structured facts of a [`Note`], for outbound notifications: identifiers only, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The store version the note is about (a rotation's new version, the version a restart is for).
    pub version_id: Option<String>,
    /// The rotation task (a rotation's, or the failed one's).
    pub task_id: Option<String>,
    /// The synced Secret's name, when the note is about a write of it.
    pub secret: Option<String>,
    /// Consecutive failed attempts, this one included (a failure).
    pub failed_attempts: Option<u32>,
    /// The failure's code (a failure).
    pub error_code: Option<String>,
    /// The restarted workload (a restart).
    pub workload: Option<(RestartKind, String)>,
}

impl Note {
    fn warning(reason: Reason, message: String) -> Note {
        Note {
            warning: true,
            reason,
            message,
            subject: None,
            facts: Facts::default(),
        }
    }

    fn normal(reason: Reason, message: String) -> Note {
        Note {
            warning: false,
            reason,
            message,
            subject: None,
            facts: Facts::default(),
        }
    }

    fn about(self, subject: impl Into<String>) -> Note {
        Note {
            subject: Some(subject.into()),
            ..self
        }
    }

    fn with(self, facts: Facts) -> Note {
        Note { facts, ..self }
    }

    /// The event's action: the reason, and the subject when there is one.
    pub fn action(&self) -> String {
        match &self.subject {
            Some(s) => format!("{} {s}", self.reason.as_str())
                .chars()
                .take(128)
                .collect(),
            None => self.reason.as_str().to_owned(),
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
    /// The version the restart targets are known to run with (none while a restart failed).
    pub restarted_version: Option<String>,
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
    /// A due rotation waits for the maintenance window opening then.
    pub waiting_for_window: Option<Timestamp>,
    /// A rollback request handled in this reconcile.
    pub rollback: Option<&'a crate::api::RollbackStatus>,
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
        notes.push(
            Note::warning(
                Reason::RotationFailed,
                format!("{}: {}", f.code(), f.message()),
            )
            .with(Facts {
                version_id: st.version_id.clone(),
                task_id: f.task_id().map(str::to_owned),
                failed_attempts: Some(st.failed_attempts),
                error_code: Some(f.code()),
                ..Facts::default()
            }),
        );
    }
    if let Some(r) = outcome.rollback {
        use crate::api::RollbackResult;
        let note = match r.result {
            RollbackResult::Done => Note::normal(Reason::RolledBack, r.message.clone()),
            RollbackResult::Refused => Note::warning(Reason::RollbackRefused, r.message.clone()),
            RollbackResult::Failed => Note::warning(Reason::RollbackFailed, r.message.clone()),
        };
        notes.push(note.about(r.request.clone()));
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
        let note = if outcome.bootstrapped {
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
        };
        notes.push(note.about(version.as_str()).with(Facts {
            version_id: Some(version.clone()),
            task_id: (!held.task_id.is_empty()).then(|| held.task_id.clone()),
            secret: Some(secret.clone()),
            ..Facts::default()
        }));
    }
    for r in &held.restarts {
        let note = match &r.result {
            RestartResult::Done => Note::normal(
                Reason::RestartTriggered,
                format!("restarted {:?} {} for {version}", r.kind, r.name),
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
        };
        notes.push(note.about(format!("{:?} {}", r.kind, r.name)).with(Facts {
            version_id: Some(version.clone()),
            task_id: (!held.task_id.is_empty()).then(|| held.task_id.clone()),
            secret: Some(secret.clone()),
            workload: Some((r.kind, r.name.clone())),
            ..Facts::default()
        }));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_rotator_store::StoreError;

    const NOW: &str = "2026-11-27T12:00:00Z";

    /// A status from YAML, as the apiserver would hand it over.
    fn fixture(yaml: &str) -> SecretRotationStatus {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn frame(previous: &SecretRotationStatus) -> Frame<'_> {
        Frame {
            previous,
            generation: Some(3),
            now: NOW.parse().unwrap(),
            store_secret: "shop.api",
            namespace: "shop",
        }
    }

    fn ready(st: &SecretRotationStatus) -> (&str, &str, &str) {
        let c = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        (c.status.as_str(), c.reason.as_str(), c.message.as_str())
    }

    fn rotating(st: &SecretRotationStatus) -> (&str, &str) {
        let c = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Rotating")
            .unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    const SYNCED_V1: &str = "
versionId: v1
secretName: shop.api
lastRotationTime: 2026-11-01T00:00:00Z
observedGeneration: 2
dataHmac: aa
conditions:
- {type: Ready, status: 'True', reason: Synced, message: Secret api holds shop.api v1, lastTransitionTime: 2026-11-01T00:00:00Z, observedGeneration: 2}
- {type: Rotating, status: 'False', reason: Idle, message: no rotation in progress, lastTransitionTime: 2026-11-01T00:00:00Z, observedGeneration: 2}
";

    fn held(version: &str, applied: bool, restarts: Vec<Restart>) -> SyncedState {
        SyncedState::Holds(Held {
            secret: "api".into(),
            version_id: version.into(),
            task_id: String::new(),
            created: NOW.parse().unwrap(),
            current_user: None,
            data_hmac: "bb".into(),
            applied,
            restarted_version: Some(version.into()),
            restarts,
        })
    }

    #[test]
    fn transition_time_is_kept_while_the_status_holds() {
        let t1 = Time("2026-11-27T10:00:00Z".parse().unwrap());
        let t2 = Time("2026-11-27T11:00:00Z".parse().unwrap());
        let c1 = condition(
            &[],
            "Ready",
            Verdict::yes(Reason::Synced, "m"),
            Some(1),
            &t1,
        );
        let c2 = condition(
            std::slice::from_ref(&c1),
            "Ready",
            Verdict::yes(Reason::Synced, "other"),
            Some(2),
            &t2,
        );
        assert_eq!(c2.last_transition_time, t1);
        let c3 = condition(
            &[c2],
            "Ready",
            Verdict::no(Reason::RotationFailed, "x"),
            Some(2),
            &t2,
        );
        assert_eq!(c3.last_transition_time, t2);
        assert_eq!(c3.status, "False");
    }

    #[test]
    fn blocked_writes_once_and_announces_once() {
        let previous = fixture("{}");
        let f = frame(&previous);
        let verdict = Verdict::no(
            Reason::InvalidSpec,
            "spec.rotation: neither period nor schedule",
        );
        let first = blocked(&f, &previous, verdict.clone(), true);
        let st = first.status.clone().expect("a new condition is written");
        assert_eq!(
            ready(&st),
            (
                "False",
                "InvalidSpec",
                "spec.rotation: neither period nor schedule"
            )
        );
        assert_eq!(rotating(&st), ("False", "Idle"));
        assert_eq!(st.observed_generation, Some(3));
        assert_eq!(st.secret_name.as_deref(), Some("shop.api"));
        assert_eq!(first.notes.len(), 1);
        assert!(first.notes[0].warning);
        // The same verdict again: the apiserver holds it already; nothing is written or announced.
        let again = blocked(&frame(&st), &st, verdict, true);
        assert_eq!(
            again,
            Settled {
                status: None,
                notes: vec![]
            }
        );
        // Unannounced reasons (StoreUnavailable, Suspended) write the condition but publish nothing.
        let quiet = blocked(
            &f,
            &previous,
            Verdict::no(Reason::StoreUnavailable, "down"),
            false,
        );
        assert!(quiet.status.is_some() && quiet.notes.is_empty());
    }

    /// A due rotation waiting for its maintenance window: Ready stays True, Rotating says it waits and
    /// until when, and the next rotation is the window's opening.
    #[test]
    fn a_rotation_waiting_for_its_window_says_so() {
        let previous = fixture(SYNCED_V1);
        let f = frame(&previous);
        let opens: Timestamp = "2026-11-29T01:00:00Z".parse().unwrap();
        let synced = held("v1", false, vec![]);
        let outcome = Outcome {
            bootstrapped: false,
            rotated: false,
            failure: None,
            synced: &synced,
            next_rotation: Some(opens),
            waiting_for_window: Some(opens),
            rollback: None,
        };
        let st = settle(&f, f.base(), &previous, &outcome).status.unwrap();
        assert_eq!(ready(&st).1, "Synced");
        assert_eq!(rotating(&st), ("False", "WaitingForWindow"));
        let c = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Rotating")
            .unwrap();
        assert!(c.message.contains("2026-11-29T01:00:00Z"), "{}", c.message);
        assert_eq!(st.next_rotation_time.unwrap().0, opens);
    }

    /// Table: a previous status, what the reconcile did, and the Ready/Rotating it must show.
    #[test]
    fn settle_table() {
        let store_down = Failure::Store(StoreError::RotationFailed {
            name: "shop.api".into(),
            task_id: "t1".into(),
            code: "CSMS.0510.CONNECT".into(),
            message: "connection refused".into(),
        });
        let config = Failure::ConfigurationMissing(
            "adminSecretRef: Secret shop/admin has no key password".into(),
        );
        struct Case<'a> {
            name: &'a str,
            previous: &'a str,
            rotated: bool,
            failure: Option<&'a Failure>,
            synced: SyncedState,
            ready: (&'a str, &'a str, &'a str),
            rotating: (&'a str, &'a str),
            failed_attempts: u32,
            notes: &'a [Reason],
        }
        let cases = [
            Case {
                name: "a rotation moves the Secret to v2",
                previous: SYNCED_V1,
                rotated: true,
                failure: None,
                synced: held("v2", true, vec![]),
                ready: ("True", "Synced", "Secret api holds shop.api v2"),
                rotating: ("False", "Idle"),
                failed_attempts: 0,
                notes: &[Reason::Rotated],
            },
            Case {
                name: "drift restored without a rotation",
                previous: SYNCED_V1,
                rotated: false,
                failure: None,
                synced: held("v1", true, vec![]),
                ready: ("True", "Synced", "Secret api holds shop.api v1"),
                rotating: ("False", "Idle"),
                failed_attempts: 0,
                notes: &[Reason::Synced],
            },
            Case {
                name: "a failed rotation keeps v1 and retries",
                previous: SYNCED_V1,
                rotated: false,
                failure: Some(&store_down),
                synced: held("v1", false, vec![]),
                ready: (
                    "False",
                    "RotationFailed",
                    "CSMS.0510.CONNECT: rotation of shop.api failed (task t1): connection refused; the synced Secret still holds v1",
                ),
                rotating: ("True", "Retrying"),
                failed_attempts: 1,
                notes: &[Reason::RotationFailed],
            },
            Case {
                name: "a configuration failure is ConfigurationMissing",
                previous: SYNCED_V1,
                rotated: false,
                failure: Some(&config),
                synced: held("v1", false, vec![]),
                ready: (
                    "False",
                    "ConfigurationMissing",
                    "CONFIG: adminSecretRef: Secret shop/admin has no key password; the synced Secret still holds v1",
                ),
                rotating: ("True", "Retrying"),
                failed_attempts: 1,
                notes: &[Reason::RotationFailed],
            },
            Case {
                name: "a failure still stands while its backoff runs",
                previous: "
versionId: v1
failedAttempts: 2
lastFailure: {time: 2026-11-27T11:59:00Z, errorCode: NeedsInitialPassword, message: put it in the Secret}
",
                rotated: false,
                failure: None,
                synced: held("v1", false, vec![]),
                ready: (
                    "False",
                    "NeedsInitialPassword",
                    "NeedsInitialPassword: put it in the Secret; the synced Secret still holds v1",
                ),
                rotating: ("True", "Retrying"),
                failed_attempts: 2,
                notes: &[],
            },
            Case {
                name: "no usable value yet",
                previous: "{}",
                rotated: false,
                failure: None,
                synced: SyncedState::NoValue,
                ready: ("False", "Suspended", "Suspended"),
                rotating: ("False", "Idle"),
                failed_attempts: 0,
                notes: &[],
            },
            Case {
                name: "the apiserver refuses the Secret",
                previous: SYNCED_V1,
                rotated: false,
                failure: None,
                synced: SyncedState::Rejected("the apiserver refused Secret shop/api (422): immutable".into()),
                ready: (
                    "False",
                    "SecretRejected",
                    "the apiserver refused Secret shop/api (422): immutable",
                ),
                rotating: ("False", "Idle"),
                failed_attempts: 0,
                notes: &[Reason::SecretRejected],
            },
            Case {
                name: "restarts are announced one by one",
                previous: SYNCED_V1,
                rotated: true,
                failure: None,
                synced: held(
                    "v2",
                    true,
                    vec![
                        Restart {
                            kind: RestartKind::Deployment,
                            name: "api".into(),
                            result: RestartResult::Done,
                        },
                        Restart {
                            kind: RestartKind::StatefulSet,
                            name: "gone".into(),
                            result: RestartResult::Missing,
                        },
                    ],
                ),
                ready: ("True", "Synced", "Secret api holds shop.api v2"),
                rotating: ("False", "Idle"),
                failed_attempts: 0,
                notes: &[Reason::Rotated, Reason::RestartTriggered, Reason::RestartTargetMissing],
            },
        ];
        for case in cases {
            let previous = fixture(case.previous);
            let f = frame(&previous);
            let mut st = f.base();
            record_action(&mut st, case.rotated, None);
            let outcome = Outcome {
                bootstrapped: false,
                rotated: case.rotated,
                failure: case.failure,
                synced: &case.synced,
                next_rotation: Some("2026-12-27T12:00:00Z".parse().unwrap()),
                waiting_for_window: None,
                rollback: None,
            };
            let settled = settle(&f, st, &previous, &outcome);
            let st = settled.status.clone().unwrap_or_else(|| previous.clone());
            assert_eq!(ready(&st), case.ready, "{}", case.name);
            assert_eq!(rotating(&st), case.rotating, "{}", case.name);
            assert_eq!(st.failed_attempts, case.failed_attempts, "{}", case.name);
            let reasons: Vec<Reason> = settled.notes.iter().map(|n| n.reason).collect();
            assert_eq!(reasons, case.notes, "{}", case.name);
            assert_eq!(
                st.next_rotation_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .as_deref(),
                Some("2026-12-27T12:00:00Z"),
                "{}",
                case.name
            );
            // Settling the settled status again changes nothing and announces only a new failure.
            let again = settle(
                &frame(&st),
                st.clone(),
                &st,
                &Outcome {
                    failure: None,
                    ..outcome
                },
            );
            assert_eq!(
                again.status, None,
                "{}: a second reconcile writes nothing",
                case.name
            );
        }
    }

    /// The notes carry the identifiers a notification needs: the new version and its Secret, the restarted
    /// workload, the count and code of a failure.
    #[test]
    fn notes_carry_their_facts() {
        let previous = fixture(SYNCED_V1);
        let f = frame(&previous);
        let synced = held(
            "v2",
            true,
            vec![Restart {
                kind: RestartKind::Deployment,
                name: "web".into(),
                result: RestartResult::Done,
            }],
        );
        let outcome = Outcome {
            bootstrapped: false,
            rotated: true,
            failure: None,
            synced: &synced,
            next_rotation: None,
            waiting_for_window: None,
            rollback: None,
        };
        let mut st = f.base();
        record_action(&mut st, true, None);
        let notes = settle(&f, st, &previous, &outcome).notes;
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].facts.version_id.as_deref(), Some("v2"));
        assert_eq!(notes[0].facts.secret.as_deref(), Some("api"));
        assert_eq!(notes[0].facts.task_id, None, "COMMON: no task");
        assert_eq!(
            notes[1].facts.workload,
            Some((RestartKind::Deployment, "web".to_owned()))
        );
        assert_eq!(notes[1].facts.version_id.as_deref(), Some("v2"));

        let failed = fixture(
            "
versionId: v1
failedAttempts: 2
lastFailure: {time: 2026-11-27T11:00:00Z, errorCode: X, message: m}
",
        );
        let f = frame(&failed);
        let down = Failure::Store(StoreError::RotationFailed {
            name: "shop.api".into(),
            task_id: "t9".into(),
            code: "DB.CONNECT".into(),
            message: "connection refused".into(),
        });
        let synced = held("v1", false, vec![]);
        let outcome = Outcome {
            failure: Some(&down),
            rotated: false,
            synced: &synced,
            ..outcome
        };
        let notes = settle(&f, f.base(), &failed, &outcome).notes;
        assert_eq!(notes[0].reason, Reason::RotationFailed);
        let facts = &notes[0].facts;
        assert_eq!(facts.failed_attempts, Some(3));
        assert_eq!(facts.error_code.as_deref(), Some("DB.CONNECT"));
        assert_eq!(facts.task_id.as_deref(), Some("t9"));
        assert_eq!(facts.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn a_rotate_now_is_recorded_before_and_done_after() {
        let previous = fixture(SYNCED_V1);
        let f = frame(&previous);
        let intent = with_intent(&f, f.base(), "once", Some("v1"));
        let pending = intent.pending_rotate_now.clone().unwrap();
        assert_eq!(
            (pending.value.as_str(), pending.from_version.as_str()),
            ("once", "v1")
        );
        assert_eq!(
            ready(&intent).0,
            "True",
            "the Secret is still usable while rotating"
        );
        assert_eq!(rotating(&intent), ("True", "InProgress"));
        let mut st = intent.clone();
        record_action(&mut st, true, Some("once"));
        assert!(st.pending_rotate_now.is_none());
        assert_eq!(st.last_rotate_now.as_deref(), Some("once"));
        let synced = held("v2", true, vec![]);
        let outcome = Outcome {
            bootstrapped: false,
            rotated: true,
            failure: None,
            synced: &synced,
            waiting_for_window: None,
            rollback: None,
            next_rotation: None,
        };
        let settled = settle(&f, st, &intent, &outcome);
        let st = settled.status.unwrap();
        assert_eq!(st.version_id.as_deref(), Some("v2"));
        assert!(st.pending_rotate_now.is_none());
    }

    #[test]
    fn the_merge_patch_deletes_what_is_gone() {
        let old = fixture(SYNCED_V1);
        let mut new = old.clone();
        new.data_hmac = None;
        let patch = merge_patch(&old, &new);
        assert_eq!(patch["dataHmac"], serde_json::Value::Null);
        assert_eq!(patch["versionId"], "v1");
        assert_eq!(changed_fields(&old, &patch), ["dataHmac"]);
    }
}
