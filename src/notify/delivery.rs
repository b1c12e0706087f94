//! Delivery to one sink: a task that posts the queued events in order, each signed afresh per attempt, and
//! retries a failed attempt with capped exponential backoff up to a bounded number of attempts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::event::CONTENT_TYPE;
use super::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// The delay before the second attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The delay after `failures` failed attempts (1 or more): `BACKOFF_BASE * 2^(failures-1)`, capped at
/// `BACKOFF_CAP`, then scaled by a jitter factor in [0.8, 1.2) taken from `jitter` in [0, 1).
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exp = BACKOFF_BASE.saturating_mul(1u32 << (failures - 1).min(20));
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 0.999_999);
    exp.min(BACKOFF_CAP).mul_f64(factor)
}

/// The delays between the attempts of one event, without jitter: `max_attempts - 1` of them.
pub fn schedule(max_attempts: u32) -> Vec<Duration> {
    (1..max_attempts.max(1))
        .map(|failures| retry_delay(failures, 0.5))
        .collect()
}

/// What a sink's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: delivered.
    Delivered,
    /// 408, 429, 5xx: the sink may take it later; retried.
    Retry,
    /// Any other status (a 3xx is not followed: the signed body goes nowhere else): retrying the same
    /// request cannot help.
    Refused,
}

/// How a status code is taken.
pub fn answer(status: u16) -> Answer {
    match status {
        200..=299 => Answer::Delivered,
        408 | 429 | 500..=599 => Answer::Retry,
        _ => Answer::Refused,
    }
}

/// One event, serialized once for every sink.
#[derive(Debug)]
pub struct Queued {
    /// The CloudEvent id.
    pub id: String,
    /// The CloudEvent type.
    pub type_: &'static str,
    /// `namespace/name` of the SecretRotation, for logs.
    pub object: String,
    /// The exact body.
    pub body: Bytes,
}

/// The metrics a sink's task counts.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Deliveries a sink accepted.
    pub delivered: Counter,
    /// Deliveries given up (attempts exhausted, or refused).
    pub failed: Counter,
    /// Deliveries dropped because the sink's queue was full.
    pub dropped: Counter,
}

/// What every sink's task shares.
pub struct Deliverer {
    /// The HTTP client (timeouts, no redirects).
    pub http: reqwest::Client,
    /// The HMAC key.
    pub key: Arc<Zeroizing<Vec<u8>>>,
    /// Attempts per event and sink, at least 1.
    pub max_attempts: u32,
    /// Counters.
    pub counters: Counters,
}

/// A sink: where to post, and how to name it in logs.
#[derive(Debug, Clone)]
pub struct Sink {
    /// The URL.
    pub url: reqwest::Url,
    /// The URL without credentials, query or fragment.
    pub label: String,
}

/// Posts every event the queue hands over until every sender is gone.
pub async fn run(sink: Sink, mut rx: mpsc::Receiver<Arc<Queued>>, d: Arc<Deliverer>) {
    while let Some(ev) = rx.recv().await {
        deliver(&sink, &ev, &d).await;
    }
}

/// How one attempt ended.
enum Attempt {
    Done,
    Retry(String),
    Refused(String),
}

async fn attempt(sink: &Sink, ev: &Queued, d: &Deliverer) -> Attempt {
    let timestamp = jiff::Timestamp::now().as_second();
    let request = d
        .http
        .post(sink.url.clone())
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, sign(&d.key, timestamp, &ev.body))
        .body(ev.body.clone());
    match request.send().await {
        Ok(resp) => {
            let status = resp.status();
            match answer(status.as_u16()) {
                Answer::Delivered => Attempt::Done,
                Answer::Retry => Attempt::Retry(format!("HTTP {status}")),
                Answer::Refused => Attempt::Refused(format!("HTTP {status}")),
            }
        }
        // The error names the URL; reqwest strips nothing, so only its kind is kept.
        Err(e) => Attempt::Retry(describe(&e)),
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_request() {
        "request failed"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {cause}")
    }
}

async fn deliver(sink: &Sink, ev: &Queued, d: &Deliverer) {
    let max = d.max_attempts.max(1);
    for n in 1..=max {
        let why = match attempt(sink, ev, d).await {
            Attempt::Done => {
                d.counters.delivered.inc();
                debug!(sink = %sink.label, id = %ev.id, r#type = ev.type_, object = %ev.object, attempt = n, "notification delivered");
                return;
            }
            Attempt::Refused(why) => {
                d.counters.failed.inc();
                warn!(sink = %sink.label, id = %ev.id, r#type = ev.type_, object = %ev.object, attempt = n, error = %why, "the sink refused a notification; not retried");
                return;
            }
            Attempt::Retry(why) => why,
        };
        if n == max {
            d.counters.failed.inc();
            warn!(sink = %sink.label, id = %ev.id, r#type = ev.type_, object = %ev.object, attempts = n, error = %why, "gave up delivering a notification");
            return;
        }
        let delay = retry_delay(n, rand::random::<f64>());
        debug!(sink = %sink.label, id = %ev.id, attempt = n, error = %why, delay_ms = delay.as_millis() as u64, "notification attempt failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_then_caps_with_bounded_jitter() {
        let s = |secs: &[u64]| {
            secs.iter()
                .map(|s| Duration::from_secs(*s))
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(1), s(&[]));
        assert_eq!(schedule(6), s(&[1, 2, 4, 8, 16]));
        assert_eq!(schedule(9), s(&[1, 2, 4, 8, 16, 32, 60, 60]));
        assert_eq!(retry_delay(0, 0.5), Duration::ZERO);
        assert_eq!(retry_delay(1, 0.0), Duration::from_millis(800));
        assert!(retry_delay(1, 0.999_999_9) < Duration::from_millis(1200));
        assert!(retry_delay(u32::MAX, 1.0) < BACKOFF_CAP.mul_f64(1.2));
        assert!(retry_delay(u32::MAX, 0.0) >= BACKOFF_CAP.mul_f64(0.8));
    }

    #[test]
    fn answers() {
        for (status, a) in [
            (200, Answer::Delivered),
            (202, Answer::Delivered),
            (204, Answer::Delivered),
            (301, Answer::Refused),
            (400, Answer::Refused),
            (401, Answer::Refused),
            (404, Answer::Refused),
            (408, Answer::Retry),
            (413, Answer::Refused),
            (429, Answer::Retry),
            (500, Answer::Retry),
            (503, Answer::Retry),
        ] {
            assert_eq!(answer(status), a, "{status}");
        }
    }
}
