//! Outbound notifications: CloudEvents 1.0 (structured mode, `application/cloudevents+json`)
//! posted to HTTP(S) sinks for `Rotated`, `RotationFailed` (from the `--notify-failure-threshold`th
//! consecutive failure on), `RestartTriggered` and `SecretRejected`.
//!
//! Off the reconcile's path, like the Kubernetes events: a reconcile builds the event and puts it in each
//! sink's bounded queue without waiting (a full queue drops it and counts it); one task per sink posts its
//! queue in order, signs every attempt ([`signature`]) and retries with capped exponential backoff up to
//! `--notify-max-attempts`. A sink that is down or slow never slows a rotation, nor another sink.

pub mod delivery;
pub mod event;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::note::Note;
pub use delivery::Counters;
use delivery::{Deliverer, Queued, Sink};
pub use event::About;

/// The shortest HMAC key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// Why the notifications cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A sink URL is not an absolute http(s) URL.
    #[error("--notify-url {url}: {reason}")]
    Url {
        /// The URL, without credentials or query.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HMAC key is too short.
    #[error(
        "the notification HMAC key has {0} bytes; at least {MIN_KEY_LEN} are needed (for example `openssl rand -hex 32`)"
    )]
    ShortKey(usize),
    /// The extra CA is not PEM.
    #[error("--notify-ca-file: {0}")]
    Ca(String),
    /// The HTTP client could not be built.
    #[error("building the notification HTTP client: {0}")]
    Client(String),
}

/// How the notifications are configured (from `--notify-*`).
pub struct NotifyConfig {
    /// The sinks' URLs, as given.
    pub urls: Vec<String>,
    /// The HMAC key.
    pub key: Zeroizing<Vec<u8>>,
    /// A rotation failure is notified from this many consecutive failures on (at least 1).
    pub failure_threshold: u32,
    /// Attempts per event and sink (at least 1).
    pub max_attempts: u32,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Events waiting per sink, at most.
    pub queue: usize,
    /// An extra PEM CA bundle trusted for https sinks.
    pub ca_pem: Option<Vec<u8>>,
}

/// A URL for logs: scheme, host, port and path; never credentials, query or fragment.
pub fn redact(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{}://{host}:{p}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// Parses a sink URL: absolute, http or https, with a host.
pub fn parse_sink(text: &str) -> Result<Sink, NotifyError> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| NotifyError::Url {
        url: text.split(['?', '#']).next().unwrap_or_default().to_owned(),
        reason: e.to_string(),
    })?;
    let label = redact(&url);
    if !matches!(url.scheme(), "http" | "https") {
        return Err(NotifyError::Url {
            url: label,
            reason: "only http and https are supported".into(),
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(NotifyError::Url {
            url: label,
            reason: "no host".into(),
        });
    }
    Ok(Sink { url, label })
}

/// Where reconciles hand their notes; does nothing when no sink is configured.
#[derive(Clone, Default)]
pub struct Notifier {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    queues: Vec<(String, mpsc::Sender<Arc<Queued>>)>,
    threshold: u32,
    dropped: prometheus_client::metrics::counter::Counter,
}

/// The sinks' tasks, to wait for at shutdown.
pub struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Workers {
    /// No task.
    pub fn none() -> Workers {
        Workers(Vec::new())
    }

    /// Waits (at most `within`) for the queued events to be delivered or given up; call once every
    /// [`Notifier`] is dropped, else the tasks wait for more.
    pub async fn drain(self, within: Duration) {
        if self.0.is_empty() {
            return;
        }
        let all = futures::future::join_all(self.0);
        if tokio::time::timeout(within, all).await.is_err() {
            warn!(
                "notifications still queued or being retried at shutdown were not delivered within {within:?}"
            );
        }
    }
}

impl Notifier {
    /// No sinks: notes are not notified.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Starts one delivery task per sink (on the current Tokio runtime).
    pub fn start(
        config: NotifyConfig,
        counters: Counters,
    ) -> Result<(Notifier, Workers), NotifyError> {
        if config.urls.is_empty() {
            return Ok((Notifier::disabled(), Workers(Vec::new())));
        }
        if config.key.len() < MIN_KEY_LEN {
            return Err(NotifyError::ShortKey(config.key.len()));
        }
        let sinks = config
            .urls
            .iter()
            .map(|u| parse_sink(u))
            .collect::<Result<Vec<_>, _>>()?;
        secret_rotator_store::tls::install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            // A redirect would send the signed body somewhere else: a 3xx is a refusal.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("secret-rotator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| NotifyError::Ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(NotifyError::Ca("no certificate in the file".into()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| NotifyError::Client(e.to_string()))?;
        let deliverer = Arc::new(Deliverer {
            http,
            key: Arc::new(config.key),
            max_attempts: config.max_attempts.max(1),
            counters: counters.clone(),
        });
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for sink in sinks {
            let (tx, rx) = mpsc::channel(config.queue.max(1));
            info!(sink = %sink.label, "posting notifications (CloudEvents) to this sink");
            queues.push((sink.label.clone(), tx));
            tasks.push(tokio::spawn(delivery::run(sink, rx, deliverer.clone())));
        }
        let inner = Inner {
            queues,
            threshold: config.failure_threshold.max(1),
            dropped: counters.dropped,
        };
        Ok((
            Notifier {
                inner: Some(Arc::new(inner)),
            },
            Workers(tasks),
        ))
    }

    /// Whether any sink is configured.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues the note's event for every sink, if the note is notified; never waits.
    pub fn notify(&self, about: &About<'_>, note: &Note) {
        let Some(inner) = &self.inner else {
            return;
        };
        let id = uuid::Uuid::new_v4().to_string();
        let Some(ev) = event::build(about, note, inner.threshold, jiff::Timestamp::now(), id)
        else {
            return;
        };
        let body = match serde_json::to_vec(&ev) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                warn!(error = %e, "serializing a notification failed");
                return;
            }
        };
        let queued = Arc::new(Queued {
            id: ev.id,
            type_: ev.type_,
            object: format!("{}/{}", about.namespace, about.name),
            body,
        });
        for (label, tx) in &inner.queues {
            if tx.try_send(queued.clone()).is_err() {
                inner.dropped.inc();
                warn!(sink = %label, id = %queued.id, r#type = queued.type_, object = %queued.object, "the sink's notification queue is full; dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_urls_are_checked_and_redacted() {
        let s = parse_sink("https://user:pw@hooks.example.com:8443/in/abc?token=t#f").unwrap();
        assert_eq!(s.label, "https://hooks.example.com:8443/in/abc");
        assert_eq!(
            parse_sink("http://127.0.0.1:9/").unwrap().label,
            "http://127.0.0.1:9/"
        );
        for bad in ["ftp://x/", "hooks.example.com/in", "http://", "unix:/run/x"] {
            let e = parse_sink(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(!e.to_string().contains("token"), "{e}");
        }
        let e = parse_sink("ftp://u:secret@x/?token=t").err().unwrap();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[tokio::test]
    async fn no_sink_means_no_task_and_a_short_key_is_refused() {
        let cfg = |urls: Vec<String>, key: &[u8]| NotifyConfig {
            urls,
            key: Zeroizing::new(key.to_vec()),
            failure_threshold: 3,
            max_attempts: 3,
            timeout: Duration::from_secs(1),
            queue: 4,
            ca_pem: None,
        };
        let (n, w) = Notifier::start(cfg(vec![], b""), Counters::default()).unwrap();
        assert!(!n.enabled());
        assert!(w.0.is_empty());
        let e = Notifier::start(
            cfg(vec!["http://127.0.0.1:9/".into()], b"short"),
            Counters::default(),
        )
        .err()
        .unwrap();
        assert!(matches!(e, NotifyError::ShortKey(5)), "{e}");
        let (n, w) = Notifier::start(
            cfg(vec!["http://127.0.0.1:9/".into()], &[7u8; 32]),
            Counters::default(),
        )
        .unwrap();
        assert!(n.enabled());
        drop(n);
        w.drain(Duration::from_secs(1)).await;
    }
}
