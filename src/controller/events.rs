//! Events, published off the reconcile's path: a reconcile queues its event and goes on; one task publishes
//! them in order through a single [`Recorder`]. A rotation is never slowed down (or failed) by an event.
//! When the queue is full (the apiserver is away or slow), events are dropped and counted.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::warn;

/// Events waiting to be published, at most.
pub const QUEUE: usize = 4096;

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
            let recorder = Recorder::new(client, reporter);
            while let Some((reference, ev)) = rx.recv().await {
                if let Err(e) = recorder.publish(&ev, &reference).await {
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

    /// Queues an event about `reference`; never waits.
    pub fn publish(&self, reference: ObjectReference, ev: Event) {
        if self.tx.try_send((reference, ev)).is_err() {
            self.dropped.inc();
        }
    }
}
