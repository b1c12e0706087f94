//! Prometheus metrics (prometheus-client). Every label is bounded: results, error categories and store
//! operations are fixed sets; the per-resource gauge is labelled by namespace and name only.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// success or failure.
    pub result: &'static str,
    /// The trigger: bootstrap, on-create, rotate-now, scheduled.
    pub reason: &'static str,
}

/// `category` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabel {
    /// A fixed error category.
    pub category: &'static str,
}

/// `operation` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// A store operation.
    pub operation: &'static str,
}

/// Per-resource label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// Namespace.
    pub namespace: String,
    /// SecretRotation name.
    pub name: String,
}

/// `version` label of the build info.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// Crate version.
    pub version: &'static str,
}

/// The operator's metrics.
pub struct Metrics {
    /// Registry for encoding.
    pub registry: Registry,
    /// Rotations by result and reason.
    pub rotations: Family<ResultLabel, Counter>,
    /// Rotation duration.
    pub rotation_duration: Histogram,
    /// Reconcile errors by category.
    pub reconcile_errors: Family<CategoryLabel, Counter>,
    /// Reconciles.
    pub reconciles: Counter,
    /// Reconciles running now (bounded by `--concurrency`).
    pub reconciles_in_flight: Gauge,
    /// Events dropped because the publishing queue was full.
    pub events_dropped: Counter,
    /// Times the leader lease was lost (the replica stops reconciling and rejoins the election).
    pub leadership_lost: Counter,
    /// 1 while this replica leads (holds the Lease and reconciles; always 1 without leader election).
    pub leader: Gauge,
    /// Synced Secrets the apiserver refused (400/403/409/422), counted per attempt.
    pub synced_secret_rejections: Counter,
    /// Notifications a sink accepted (2xx), per sink.
    pub notifications_delivered: Counter,
    /// Notifications given up (attempts exhausted, or refused by the sink), per sink.
    pub notifications_failed: Counter,
    /// Notifications dropped because a sink's queue was full, per sink.
    pub notifications_dropped: Counter,
    /// Store request latency by operation.
    pub store_latency: Family<OperationLabel, Histogram>,
    /// Next rotation, Unix seconds, per resource.
    pub next_rotation: Family<ResourceLabel, Gauge<i64, AtomicI64Compat>>,
    /// Build information (always 1).
    pub build_info: Family<BuildLabel, Gauge>,
}

/// The atomic type of the next-rotation gauge.
pub type AtomicI64Compat = std::sync::atomic::AtomicI64;

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Registers `metric` under `name` and hands it back, for the struct that keeps it.
fn register<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Registers every metric under the `secret_rotator` prefix.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("secret_rotator");
        let build_info = register(
            &mut r,
            "build_info",
            "Build information",
            Family::<BuildLabel, Gauge>::default(),
        );
        build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Metrics {
            rotations: register(
                &mut r,
                "rotations",
                "Rotations by result and reason",
                Family::default(),
            ),
            rotation_duration: register(
                &mut r,
                "rotation_duration_seconds",
                "Time to complete a rotation",
                Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            ),
            reconcile_errors: register(
                &mut r,
                "reconcile_errors",
                "Reconcile errors by category",
                Family::default(),
            ),
            reconciles: register(&mut r, "reconciles", "Reconciles run", Counter::default()),
            reconciles_in_flight: register(
                &mut r,
                "reconciles_in_flight",
                "Reconciles running now (at most --concurrency)",
                Gauge::default(),
            ),
            events_dropped: register(
                &mut r,
                "events_dropped",
                "Events dropped because the publishing queue was full (the apiserver is slow or away)",
                Counter::default(),
            ),
            leadership_lost: register(
                &mut r,
                "leadership_lost",
                "Times the leader lease was lost; the replica stopped reconciling and rejoined the election",
                Counter::default(),
            ),
            leader: register(
                &mut r,
                "leader",
                "1 while this replica leads and reconciles (always 1 without leader election), else 0",
                Gauge::default(),
            ),
            synced_secret_rejections: register(
                &mut r,
                "synced_secret_rejections",
                "Synced Secrets the apiserver refused (400, 403, 409, 422), per attempt",
                Counter::default(),
            ),
            notifications_delivered: register(
                &mut r,
                "notifications_delivered",
                "Notifications (CloudEvents) a sink accepted with a 2xx, counted per sink",
                Counter::default(),
            ),
            notifications_failed: register(
                &mut r,
                "notifications_failed",
                "Notifications given up after --notify-max-attempts, or refused by the sink (4xx), counted per sink",
                Counter::default(),
            ),
            notifications_dropped: register(
                &mut r,
                "notifications_dropped",
                "Notifications dropped because a sink's queue (--notify-queue-size) was full, counted per sink",
                Counter::default(),
            ),
            store_latency: register(
                &mut r,
                "store_request_duration_seconds",
                "Backing store request latency by operation",
                Family::new_with_constructor(|| {
                    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
                }),
            ),
            next_rotation: register(
                &mut r,
                "next_rotation_timestamp_seconds",
                "When each SecretRotation next rotates (Unix seconds)",
                Family::default(),
            ),
            build_info,
            registry: r,
        }
    }

    /// The counters of the notification sinks.
    pub fn notify_counters(&self) -> crate::notify::Counters {
        crate::notify::Counters {
            delivered: self.notifications_delivered.clone(),
            failed: self.notifications_failed.clone(),
            dropped: self.notifications_dropped.clone(),
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family() {
        let m = Metrics::new();
        m.rotations
            .get_or_create(&ResultLabel {
                result: "success",
                reason: "scheduled",
            })
            .inc();
        m.next_rotation
            .get_or_create(&ResourceLabel {
                namespace: "ns".into(),
                name: "n".into(),
            })
            .set(1_800_000_000);
        m.store_latency
            .get_or_create(&OperationLabel {
                operation: "rotate",
            })
            .observe(0.01);
        let text = m.encode();
        for name in [
            "secret_rotator_rotations_total{result=\"success\",reason=\"scheduled\"} 1",
            "secret_rotator_next_rotation_timestamp_seconds{namespace=\"ns\",name=\"n\"} 1800000000",
            "secret_rotator_build_info{version=",
            "secret_rotator_store_request_duration_seconds_bucket",
            "secret_rotator_rotation_duration_seconds",
            "secret_rotator_notifications_delivered_total 0",
            "secret_rotator_notifications_failed_total 0",
            "secret_rotator_notifications_dropped_total 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
