//! The status function on fixtures: YAML statuses as the apiserver hands them over.

use super::*;
use crate::api::RestartKind;
use crate::controller::synced::{Held, Restart, RestartResult};
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
        intent: None,
        created: None,
        rotate_now_done: None,
        versions: None,
        rotated: false,
        failure: None,
        synced: &synced,
        next_rotation: Some(opens),
        waiting_for_window: Some(opens),
        request_waits: None,
        rollback: None,
    };
    let st = settle(&f, &previous, &outcome).status.unwrap();
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
                    "CSMS.0510.CONNECT: rotation of shop.api failed (task t1): the database server could not be reached; the synced Secret still holds v1",
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
        let outcome = Outcome {
            intent: None,
            created: None,
            rotate_now_done: None,
            versions: None,
            rotated: case.rotated,
            failure: case.failure,
            synced: &case.synced,
            next_rotation: Some("2026-12-27T12:00:00Z".parse().unwrap()),
            waiting_for_window: None,
            request_waits: None,
            rollback: None,
        };
        let settled = settle(&f, &previous, &outcome);
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
        intent: None,
        created: None,
        rotate_now_done: None,
        versions: None,
        rotated: true,
        failure: None,
        synced: &synced,
        next_rotation: None,
        waiting_for_window: None,
        request_waits: None,
        rollback: None,
    };
    let notes = settle(&f, &previous, &outcome).notes;
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
    let notes = settle(&f, &failed, &outcome).notes;
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
    let pending = PendingRotateNowStatus {
        value: "once".into(),
        from_version: "v1".into(),
    };
    let intent = with_intent(&f, previous.clone(), &pending);
    assert_eq!(intent.pending_rotate_now.as_ref(), Some(&pending));
    assert_eq!(
        ready(&intent).0,
        "True",
        "the Secret is still usable while rotating"
    );
    assert_eq!(rotating(&intent), ("True", "InProgress"));
    let synced = held("v2", true, vec![]);
    let outcome = Outcome {
        intent: Some(&pending),
        created: None,
        rotate_now_done: Some("once"),
        versions: None,
        rotated: true,
        failure: None,
        synced: &synced,
        waiting_for_window: None,
        request_waits: None,
        rollback: None,
        next_rotation: None,
    };
    let settled = settle(&f, &intent, &outcome);
    let st = settled.status.unwrap();
    assert_eq!(st.version_id.as_deref(), Some("v2"));
    assert!(st.pending_rotate_now.is_none());
    assert_eq!(st.last_rotate_now.as_deref(), Some("once"));
    // A failed rotation keeps the intent, so that the next reconcile (or a restarted operator) retries it.
    let failure = Failure::Store(StoreError::RotationFailed {
        name: "shop.api".into(),
        task_id: "t1".into(),
        code: "DB.CONNECT".into(),
        message: "refused".into(),
    });
    let unchanged = held("v1", false, vec![]);
    let kept = settle(
        &f,
        &intent,
        &Outcome {
            rotated: false,
            rotate_now_done: None,
            failure: Some(&failure),
            synced: &unchanged,
            ..outcome
        },
    )
    .status
    .unwrap();
    assert_eq!(kept.pending_rotate_now.as_ref(), Some(&pending));
    assert_eq!(kept.failed_attempts, 1);
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
