//! Events, published off the reconcile's path: a reconcile queues its event and goes on; one task publishes
//! them in order. A rotation is never slowed down (or failed) by an event. When the queue is full (the
//! apiserver is away or slow), events are dropped and counted.
//!
//! The same event again within six minutes (same object, type, reason and action) is counted in the first
//! one's `series` instead of making a new Event, as kube's `Recorder` does. That recorder keeps a whole
//! copy of every Event it published for those six minutes; at 10,000 resources rotating together that was
//! about 28 MiB. The series here keeps what a later patch needs: a hash of the key, the Event's name and
//! namespace, its count and when it was last seen.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::warn;

/// Events waiting to be published, at most.
pub const QUEUE: usize = 4096;

/// How long an event is counted in the series of the first one (as kube's recorder and client-go do).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Where reconciles put their events.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<(ObjectReference, Event)>,
    dropped: Counter,
}

impl EventSink {
    /// Starts the publishing task; it ends once every sink is dropped and the queue is drained.
    pub fn start(
        client: Client,
        reporter: Reporter,
        dropped: Counter,
    ) -> (EventSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<(ObjectReference, Event)>(QUEUE);
        let task = tokio::spawn(async move {
            let mut series = Series::default();
            while let Some((reference, ev)) = rx.recv().await {
                if let Err(e) = publish(&client, &reporter, &mut series, &ev, &reference).await {
                    warn!(
                        namespace = reference.namespace.as_deref().unwrap_or_default(),
                        name = reference.name.as_deref().unwrap_or_default(),
                        reason = %ev.reason,
                        error = %e,
                        "publishing an event failed"
                    );
                }
            }
        });
        (EventSink { tx, dropped }, task)
    }

    /// A sink whose events go to the returned receiver instead of the apiserver.
    #[cfg(test)]
    pub(crate) fn capture() -> (EventSink, mpsc::Receiver<(ObjectReference, Event)>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            EventSink {
                tx,
                dropped: Counter::default(),
            },
            rx,
        )
    }

    /// Queues an event about `reference`; never waits.
    pub fn publish(&self, reference: ObjectReference, ev: Event) {
        if self.tx.try_send((reference, ev)).is_err() {
            self.dropped.inc();
        }
    }
}

/// What to do with an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// A new Event.
    Create,
    /// Count it in the Event `name` (in the referenced object's namespace), whose series reaches `count`.
    Repeat {
        /// The first Event's name.
        name: String,
        /// The series' new count.
        count: i32,
    },
}

struct Entry {
    name: String,
    count: i32,
    last: Timestamp,
}

/// The recent events by key, oldest first for expiry. Pure: the caller gives the time.
pub struct Series {
    hasher: RandomState,
    entries: HashMap<u64, Entry>,
    /// (first seen, key), in the order of insertion; an entry seen again stays until its own last time
    /// is past the window.
    order: VecDeque<(Timestamp, u64)>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            hasher: RandomState::new(),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl Series {
    /// The key of an event: the object (kind, namespace, name, uid), type, reason, action and related object.
    pub fn key(&self, ev: &Event, regarding: &ObjectReference) -> u64 {
        let mut h = self.hasher.build_hasher();
        for r in std::iter::once(regarding).chain(ev.secondary.as_ref()) {
            (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(&mut h);
        }
        (ev.type_ == EventType::Warning, &ev.reason, &ev.action).hash(&mut h);
        h.finish()
    }

    /// Whether the event with `key` is new or repeats one seen within [`SERIES_WINDOW`] of `now`.
    pub fn decide(&mut self, key: u64, now: Timestamp) -> Decision {
        self.expire(now);
        match self.entries.get_mut(&key) {
            Some(e) => {
                e.count = e.count.saturating_add(1);
                e.last = now;
                Decision::Repeat {
                    name: e.name.clone(),
                    count: e.count,
                }
            }
            None => Decision::Create,
        }
    }

    /// Records the Event `name` just created for `key`.
    pub fn created(&mut self, key: u64, name: String, now: Timestamp) {
        self.entries.insert(
            key,
            Entry {
                name,
                count: 1,
                last: now,
            },
        );
        self.order.push_back((now, key));
    }

    /// Forgets a key (its Event could not be patched: the next one starts a new Event).
    pub fn forget(&mut self, key: u64) {
        self.entries.remove(&key);
    }

    /// Events remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(first, key)) = self.order.front() {
            if first + SERIES_WINDOW > now {
                break;
            }
            self.order.pop_front();
            match self.entries.get(&key) {
                // Seen again since: it stays until its last time is past the window.
                Some(e) if e.last + SERIES_WINDOW > now => self.order.push_back((e.last, key)),
                Some(_) => {
                    self.entries.remove(&key);
                }
                None => {}
            }
        }
    }
}

fn new_event(
    ev: &Event,
    reference: &ObjectReference,
    reporter: &Reporter,
    now: Timestamp,
) -> K8sEvent {
    K8sEvent {
        action: Some(ev.action.clone()),
        reason: Some(ev.reason.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(reference.clone()),
        note: ev.note.clone(),
        metadata: ObjectMeta {
            namespace: reference.namespace.clone(),
            name: Some(format!(
                "{}.{:x}",
                reference.name.as_deref().unwrap_or(&reporter.controller),
                now.as_nanosecond()
            )),
            ..ObjectMeta::default()
        },
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        type_: Some(match ev.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        related: ev.secondary.clone(),
        ..K8sEvent::default()
    }
}

async fn publish(
    client: &Client,
    reporter: &Reporter,
    series: &mut Series,
    ev: &Event,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    let now = Timestamp::now();
    let key = series.key(ev, reference);
    let events: Api<K8sEvent> = Api::namespaced(
        client.clone(),
        reference.namespace.as_deref().unwrap_or("default"),
    );
    if let Decision::Repeat { name, count } = series.decide(key, now) {
        let patch = serde_json::json!({
            "series": {"count": count, "lastObservedTime": MicroTime(now)},
        });
        match events
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            // Gone (expired or deleted): start a new Event below.
            Err(kube::Error::Api(ae)) if ae.code == 404 => series.forget(key),
            Err(e) => return Err(e),
        }
    }
    let event = new_event(ev, reference, reporter, now);
    let name = event.metadata.name.clone().unwrap_or_default();
    events.create(&PostParams::default(), &event).await?;
    series.created(key, name, now);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("secretrotator.dev/v1alpha1".into()),
            kind: Some("SecretRotation".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str, action: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some("a note".into()),
            action: action.into(),
            secondary: None,
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn the_same_event_within_the_window_counts_in_the_first_ones_series() {
        let mut s = Series::default();
        let k = s.key(&event("Rotated", "Rotate/v2"), &reference("a"));
        assert_eq!(s.decide(k, at(0)), Decision::Create);
        s.created(k, "a.1".into(), at(0));
        assert_eq!(
            s.decide(k, at(60)),
            Decision::Repeat {
                name: "a.1".into(),
                count: 2
            }
        );
        // Seen again at 60 s: it is still counted at 60 + 359 s, past its first time's window.
        assert_eq!(
            s.decide(k, at(419)),
            Decision::Repeat {
                name: "a.1".into(),
                count: 3
            }
        );
        // Six minutes after the last one, a new Event.
        assert_eq!(s.decide(k, at(419 + 360)), Decision::Create);
        assert!(s.is_empty());
    }

    #[test]
    fn other_objects_reasons_and_actions_are_other_events() {
        let s = Series::default();
        let base = s.key(&event("Rotated", "Rotate/v2"), &reference("a"));
        assert_ne!(base, s.key(&event("Rotated", "Rotate/v2"), &reference("b")));
        assert_ne!(base, s.key(&event("Failed", "Rotate/v2"), &reference("a")));
        assert_ne!(base, s.key(&event("Rotated", "Rotate/v3"), &reference("a")));
        let mut warning = event("Rotated", "Rotate/v2");
        warning.type_ = EventType::Warning;
        assert_ne!(base, s.key(&warning, &reference("a")));
        assert_eq!(base, s.key(&event("Rotated", "Rotate/v2"), &reference("a")));
    }

    #[test]
    fn expired_events_are_forgotten_without_a_scan() {
        let mut s = Series::default();
        for i in 0..1000 {
            let k = s.key(&event("Synced", "Sync"), &reference(&format!("r{i}")));
            assert_eq!(s.decide(k, at(i / 10)), Decision::Create);
            s.created(k, format!("r{i}.1"), at(i / 10));
        }
        assert_eq!(s.len(), 1000);
        // At 360 + 50 s, the 510 first seen at 0 to 50 s have expired.
        let k = s.key(&event("Synced", "Sync"), &reference("late"));
        assert_eq!(s.decide(k, at(410)), Decision::Create);
        assert_eq!(s.len(), 490);
    }
}
