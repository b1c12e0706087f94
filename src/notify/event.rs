//! CloudEvents 1.0 in structured mode (JSON) from the notes a reconcile publishes: a pure function, tested
//! on fixtures. An event carries identifiers and the note's message (both value-free), never a value.

use jiff::Timestamp;
use serde::Serialize;

use crate::api::RestartKind;
use crate::note::Note;
use crate::reasons::Reason;

/// `specversion`.
pub const SPEC_VERSION: &str = "1.0";
/// The request's `Content-Type` (structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// `datacontenttype`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// A rotation made a new version and the synced Secret holds it (the first value included).
pub const TYPE_ROTATED: &str = "dev.secretrotator.rotated";
/// A rotation failed `--notify-failure-threshold` times in a row, or more.
pub const TYPE_ROTATION_FAILED: &str = "dev.secretrotator.rotation_failed";
/// A restart target's pod template was annotated for a new version.
pub const TYPE_RESTART_TRIGGERED: &str = "dev.secretrotator.restart_triggered";
/// The apiserver refused the synced Secret.
pub const TYPE_SECRET_REJECTED: &str = "dev.secretrotator.secret_rejected";

/// The longest message an event carries, in characters.
const MESSAGE_LIMIT: usize = 1024;

/// The SecretRotation a note is about, as the reconcile knows it.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// The store secret.
    pub store_secret: &'a str,
    /// The synced Secret's name, once the spec is valid.
    pub secret: Option<&'a str>,
    /// The version the synced Secret holds (after this reconcile).
    pub version_id: Option<&'a str>,
    /// The rotation task of that version.
    pub task_id: Option<&'a str>,
}

/// A CloudEvent, in the attribute order of the specification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudEvent {
    /// Always "1.0".
    pub specversion: &'static str,
    /// Unique per event (a UUID); the same on every delivery attempt of that event.
    pub id: String,
    /// `/secret-rotator/<namespace>/<name>`.
    pub source: String,
    /// One of the `TYPE_*` constants.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// When the operator saw it happen (RFC 3339, UTC).
    pub time: String,
    /// What in the source it is about: the new version, the workload, the store secret or the Secret.
    pub subject: String,
    /// Always "application/json".
    pub datacontenttype: &'static str,
    /// The facts.
    pub data: EventData,
}

/// The event's `data`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    /// The SecretRotation's namespace.
    pub namespace: String,
    /// The SecretRotation's name.
    pub name: String,
    /// The store secret.
    pub store_secret: String,
    /// The synced Secret's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// The version: the new one (rotated), the one restarted for, or the one the synced Secret still
    /// holds (rotation_failed, secret_rejected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The rotation task (database secrets): the one that made the version, or the one that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The Kubernetes event reason (Rotated, RotationFailed, RestartTriggered, SecretRejected).
    pub reason: &'static str,
    /// The Kubernetes event message.
    pub message: String,
    /// rotation_failed: consecutive failed attempts, this one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<u32>,
    /// rotation_failed: the error code (as in `status.lastFailure.errorCode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// restart_triggered: the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
}

/// A restarted workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Deployment, StatefulSet, DaemonSet or Rollout.
    pub kind: String,
    /// Its name.
    pub name: String,
}

fn kind_name(kind: RestartKind) -> &'static str {
    match kind {
        RestartKind::Deployment => "Deployment",
        RestartKind::StatefulSet => "StatefulSet",
        RestartKind::DaemonSet => "DaemonSet",
        RestartKind::Rollout => "Rollout",
    }
}

/// The event type of a note, if it is notified: rotation failures only from the `threshold`th
/// consecutive one on (every further failure is notified again, with its count).
pub fn event_type(note: &Note, threshold: u32) -> Option<&'static str> {
    match note.reason {
        Reason::Rotated => Some(TYPE_ROTATED),
        Reason::RestartTriggered => Some(TYPE_RESTART_TRIGGERED),
        Reason::SecretRejected => Some(TYPE_SECRET_REJECTED),
        Reason::RotationFailed if note.facts.failed_attempts.unwrap_or(1) >= threshold.max(1) => {
            Some(TYPE_ROTATION_FAILED)
        }
        _ => None,
    }
}

/// The CloudEvent of a note, or none when the note is not notified.
pub fn build(
    about: &About<'_>,
    note: &Note,
    threshold: u32,
    now: Timestamp,
    id: String,
) -> Option<CloudEvent> {
    let type_ = event_type(note, threshold)?;
    let facts = &note.facts;
    let secret = facts
        .secret
        .clone()
        .or_else(|| about.secret.map(str::to_owned));
    let version_id = facts
        .version_id
        .clone()
        .or_else(|| about.version_id.map(str::to_owned));
    let task_id = match note.reason {
        // A failure names the failed task, or none: the last good version's task would mislead.
        Reason::RotationFailed => facts.task_id.clone(),
        _ => facts
            .task_id
            .clone()
            .or_else(|| about.task_id.map(str::to_owned)),
    }
    .filter(|t| !t.is_empty());
    let workload = facts.workload.as_ref().map(|(kind, name)| Workload {
        kind: kind_name(*kind).to_owned(),
        name: name.clone(),
    });
    let subject = match type_ {
        TYPE_ROTATED => version_id.clone(),
        TYPE_RESTART_TRIGGERED => workload.as_ref().map(|w| format!("{}/{}", w.kind, w.name)),
        TYPE_SECRET_REJECTED => secret.clone(),
        _ => None,
    }
    .unwrap_or_else(|| about.store_secret.to_owned());
    // Milliseconds are plenty, and keep the text short.
    let time = Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
    Some(CloudEvent {
        specversion: SPEC_VERSION,
        id,
        source: format!("/secret-rotator/{}/{}", about.namespace, about.name),
        type_,
        time: time.to_string(),
        subject,
        datacontenttype: DATA_CONTENT_TYPE,
        data: EventData {
            namespace: about.namespace.to_owned(),
            name: about.name.to_owned(),
            store_secret: about.store_secret.to_owned(),
            secret,
            version_id,
            task_id,
            reason: note.reason.as_str(),
            message: note.message.chars().take(MESSAGE_LIMIT).collect(),
            failed_attempts: match note.reason {
                Reason::RotationFailed => facts.failed_attempts,
                _ => None,
            },
            error_code: facts.error_code.clone(),
            workload,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::note::Facts;

    const NOW: &str = "2026-11-27T12:00:00.123456Z";

    fn about() -> About<'static> {
        About {
            namespace: "shop",
            name: "orders-db",
            store_secret: "shop.orders-db",
            secret: Some("orders-db"),
            version_id: Some("v1"),
            task_id: Some("t-old"),
        }
    }

    fn note(reason: Reason, message: &str, facts: Facts) -> Note {
        Note {
            warning: false,
            reason,
            message: message.into(),
            subject: None,
            facts,
        }
    }

    fn json(ev: &CloudEvent) -> serde_json::Value {
        serde_json::to_value(ev).unwrap()
    }

    #[test]
    fn a_rotation_is_a_rotated_event_about_its_new_version() {
        let n = note(
            Reason::Rotated,
            "rotated store secret shop.orders-db to v2; Secret orders-db updated",
            Facts {
                version_id: Some("v2".into()),
                task_id: Some("t-2".into()),
                secret: Some("orders-db".into()),
                ..Facts::default()
            },
        );
        let ev = build(&about(), &n, 3, NOW.parse().unwrap(), "id-1".into()).unwrap();
        assert_eq!(
            json(&ev),
            serde_json::json!({
                "specversion": "1.0",
                "id": "id-1",
                "source": "/secret-rotator/shop/orders-db",
                "type": "dev.secretrotator.rotated",
                "time": "2026-11-27T12:00:00.123Z",
                "subject": "v2",
                "datacontenttype": "application/json",
                "data": {
                    "namespace": "shop",
                    "name": "orders-db",
                    "storeSecret": "shop.orders-db",
                    "secret": "orders-db",
                    "versionId": "v2",
                    "taskId": "t-2",
                    "reason": "Rotated",
                    "message": "rotated store secret shop.orders-db to v2; Secret orders-db updated"
                }
            })
        );
        // The attribute order of the specification, so that a person reading a body finds them.
        let text = serde_json::to_string(&ev).unwrap();
        assert!(
            text.starts_with(r#"{"specversion":"1.0","id":"id-1","source""#),
            "{text}"
        );
    }

    #[test]
    fn failures_are_notified_from_the_threshold_on() {
        let failed = |n: u32| {
            note(
                Reason::RotationFailed,
                "CSMS.0510.CONNECT: connection refused",
                Facts {
                    version_id: Some("v1".into()),
                    task_id: None,
                    failed_attempts: Some(n),
                    error_code: Some("CSMS.0510.CONNECT".into()),
                    ..Facts::default()
                },
            )
        };
        let now: Timestamp = NOW.parse().unwrap();
        assert!(build(&about(), &failed(1), 3, now, "a".into()).is_none());
        assert!(build(&about(), &failed(2), 3, now, "a".into()).is_none());
        for n in [3, 4, 9] {
            let ev = build(&about(), &failed(n), 3, now, "a".into()).unwrap();
            assert_eq!(ev.type_, TYPE_ROTATION_FAILED);
            assert_eq!(ev.subject, "shop.orders-db");
            assert_eq!(ev.data.failed_attempts, Some(n));
            assert_eq!(ev.data.error_code.as_deref(), Some("CSMS.0510.CONNECT"));
            assert_eq!(ev.data.version_id.as_deref(), Some("v1"));
            // Not the task of the version still held.
            assert_eq!(ev.data.task_id, None);
        }
        // A threshold of 1 (or 0, taken as 1) notifies every failure.
        assert!(build(&about(), &failed(1), 1, now, "a".into()).is_some());
        assert!(build(&about(), &failed(1), 0, now, "a".into()).is_some());
    }

    #[test]
    fn restarts_and_rejections_name_what_they_are_about() {
        let now: Timestamp = NOW.parse().unwrap();
        let restart = note(
            Reason::RestartTriggered,
            "restarted Deployment web for v2",
            Facts {
                version_id: Some("v2".into()),
                secret: Some("orders-db".into()),
                workload: Some((RestartKind::Deployment, "web".into())),
                ..Facts::default()
            },
        );
        let ev = build(&about(), &restart, 3, now, "r".into()).unwrap();
        assert_eq!(ev.type_, TYPE_RESTART_TRIGGERED);
        assert_eq!(ev.subject, "Deployment/web");
        assert_eq!(
            json(&ev)["data"]["workload"],
            serde_json::json!({"kind": "Deployment", "name": "web"})
        );
        let rejected = note(
            Reason::SecretRejected,
            "the apiserver refused Secret shop/orders-db (422): field is immutable",
            Facts::default(),
        );
        let ev = build(&about(), &rejected, 3, now, "s".into()).unwrap();
        assert_eq!(ev.type_, TYPE_SECRET_REJECTED);
        assert_eq!(ev.subject, "orders-db");
        assert_eq!(ev.data.version_id.as_deref(), Some("v1"));
        assert!(json(&ev)["data"].get("failedAttempts").is_none());
    }

    #[test]
    fn other_reasons_are_not_notified_and_messages_are_bounded() {
        let now: Timestamp = NOW.parse().unwrap();
        for r in [
            Reason::Synced,
            Reason::InvalidSpec,
            Reason::RestartFailed,
            Reason::RestartTargetMissing,
            Reason::SecretNotOwned,
        ] {
            assert!(
                build(
                    &about(),
                    &note(r, "m", Facts::default()),
                    1,
                    now,
                    "x".into()
                )
                .is_none()
            );
        }
        let long = note(Reason::SecretRejected, &"é".repeat(5000), Facts::default());
        let ev = build(&about(), &long, 1, now, "x".into()).unwrap();
        assert_eq!(ev.data.message.chars().count(), MESSAGE_LIMIT);
    }
}
