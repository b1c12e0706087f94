//! The event publisher against a real apiserver: the same event again is counted in the first Event's
//! `series` (a merge patch the apiserver's validation accepts), another action is another Event, and an
//! Event deleted meanwhile is created anew.

use crate::support::{TestNamespace, client};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::{Event, EventType, Reporter};
use secret_rotator::controller::events::EventSink;

fn reference(ns: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("secretrotator.dev/v1alpha1".into()),
        kind: Some("SecretRotation".into()),
        namespace: Some(ns.into()),
        name: Some("events-test".into()),
        uid: Some("0b9c2f5e-1111-4c3d-9e2a-000000000001".into()),
        ..ObjectReference::default()
    }
}

fn event(action: &str, note: &str) -> Event {
    Event {
        type_: EventType::Normal,
        reason: "Rotated".into(),
        note: Some(note.into()),
        action: action.into(),
        secondary: None,
    }
}

fn sink(c: &kube::Client) -> (EventSink, tokio::task::JoinHandle<()>) {
    EventSink::start(
        c.clone(),
        Reporter {
            controller: "secret-rotator-test".into(),
            instance: None,
        },
        Default::default(),
    )
}

/// Publishes `events` through a fresh sink and waits until all went out.
async fn publish_all(c: &kube::Client, ns: &str, events: Vec<Event>) {
    let (sink, task) = sink(c);
    for ev in events {
        sink.publish(reference(ns), ev);
    }
    drop(sink);
    task.await.expect("the publishing task");
}

async fn events_in(c: &kube::Client, ns: &str) -> Vec<K8sEvent> {
    let api: Api<K8sEvent> = Api::namespaced(c.clone(), ns);
    let mut list = api
        .list(&ListParams::default())
        .await
        .expect("listing events")
        .items;
    list.sort_by_key(|e| e.action.clone());
    list
}

#[tokio::test]
async fn a_repeated_event_counts_in_the_first_ones_series() {
    let c = client().await;
    let ns = TestNamespace::new(&c, "events").await;
    publish_all(
        &c,
        &ns.name,
        vec![
            event("Rotate/v2", "rotated to v2"),
            event("Rotate/v2", "rotated to v2"),
            event("Rotate/v2", "rotated to v2"),
            event("Rotate/v3", "rotated to v3"),
        ],
    )
    .await;
    let events = events_in(&c, &ns.name).await;
    assert_eq!(events.len(), 2, "one Event per action: {events:?}");
    let v2 = &events[0];
    assert_eq!(v2.action.as_deref(), Some("Rotate/v2"));
    assert_eq!(v2.note.as_deref(), Some("rotated to v2"));
    let series = v2.series.as_ref().expect("a series on the repeated event");
    assert_eq!(series.count, 3);
    assert_eq!(
        v2.reporting_controller.as_deref(),
        Some("secret-rotator-test")
    );
    assert_eq!(
        v2.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("events-test")
    );
    let v3 = &events[1];
    assert_eq!(v3.action.as_deref(), Some("Rotate/v3"));
    assert!(v3.series.is_none(), "seen once: {v3:?}");
}

#[tokio::test]
async fn an_event_deleted_meanwhile_is_created_again() {
    let c = client().await;
    let ns = TestNamespace::new(&c, "events").await;
    let api: Api<K8sEvent> = Api::namespaced(c.clone(), &ns.name);
    let (sink, task) = sink(&c);
    sink.publish(reference(&ns.name), event("Sync", "synced"));
    // Until it is there; then it goes away (as events expire).
    let first = loop {
        if let Some(e) = events_in(&c, &ns.name).await.into_iter().next() {
            break e;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let first_name = first.metadata.name.clone().expect("a name");
    api.delete(&first_name, &DeleteParams::default())
        .await
        .expect("deleting the event");
    sink.publish(reference(&ns.name), event("Sync", "synced"));
    drop(sink);
    task.await.expect("the publishing task");
    let events = events_in(&c, &ns.name).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_ne!(
        events[0].metadata.name.as_deref(),
        Some(first_name.as_str())
    );
    assert!(events[0].series.is_none());
}
