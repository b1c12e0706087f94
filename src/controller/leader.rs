//! Leader election on a `coordination.k8s.io/v1` Lease: one replica rotates; another takes over once the
//! lease expires. Updates carry the lease's resourceVersion, so two candidates can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{debug, info, warn};

/// Election settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity.
    pub identity: String,
    /// How long a lease lasts without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// This candidate holds the lease now.
    Leading,
    /// Another candidate holds a live lease.
    Following,
}

fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let Some(renew) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renew
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .map(|end| end < now)
        .unwrap_or(true)
}

/// One try to take or renew the lease.
pub async fn try_acquire(client: &Client, cfg: &LeaderConfig) -> Result<Attempt, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let now = jiff::Timestamp::now();
    let secs = i32::try_from(cfg.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(cfg.name.clone()),
                    namespace: Some(cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let mine = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
            if !mine
                && !expired(&spec, now)
                && spec
                    .holder_identity
                    .as_deref()
                    .is_some_and(|h| !h.is_empty())
            {
                return Ok(Attempt::Following);
            }
            let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
            lease.spec = Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: if mine {
                    spec.acquire_time.clone()
                } else {
                    Some(MicroTime(now))
                },
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(transitions),
                ..spec
            });
            // replace() sends metadata.resourceVersion: a concurrent change makes this a 409.
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::Following),
                Err(e) => Err(e),
            }
        }
    }
}

/// Waits until this candidate leads.
pub async fn acquire(client: &Client, cfg: &LeaderConfig) {
    let mut logged = false;
    loop {
        match try_acquire(client, cfg).await {
            Ok(Attempt::Leading) => {
                info!(lease = %cfg.name, identity = %cfg.identity, "became the leader");
                return;
            }
            Ok(Attempt::Following) => {
                if !logged {
                    info!(lease = %cfg.name, "another replica leads; waiting");
                    logged = true;
                }
            }
            Err(e) => warn!(lease = %cfg.name, error = %e, "leader election failed; retrying"),
        }
        tokio::time::sleep(cfg.renew_every).await;
    }
}

/// Renews the lease until it is lost; returns then. Renewal errors are retried until the lease would
/// have expired.
pub async fn hold(client: &Client, cfg: &LeaderConfig) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew_every).await;
        match try_acquire(client, cfg).await {
            Ok(Attempt::Leading) => {
                debug!(lease = %cfg.name, "renewed the lease");
                last_ok = tokio::time::Instant::now();
            }
            Ok(Attempt::Following) => {
                warn!(lease = %cfg.name, "lost the lease to another replica");
                return;
            }
            Err(e) => {
                warn!(lease = %cfg.name, error = %e, "renewing the lease failed");
                // Stop before the lease can expire, so another replica never overlaps.
                if last_ok.elapsed() + cfg.renew_every >= cfg.lease_duration {
                    warn!(lease = %cfg.name, "could not renew the lease in time; stepping down");
                    return;
                }
            }
        }
    }
}

/// Gives the lease up (on shutdown), so another replica takes over at once.
pub async fn release(client: &Client, cfg: &LeaderConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    if let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await
        && let Some(spec) = lease.spec.as_mut()
        && spec.holder_identity.as_deref() == Some(cfg.identity.as_str())
    {
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
            warn!(error = %e, "releasing the lease failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let now: jiff::Timestamp = "2026-11-27T12:00:00Z".parse().unwrap();
        let spec = |renew: &str, secs: i32| LeaseSpec {
            renew_time: Some(MicroTime(renew.parse().unwrap())),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        };
        assert!(!expired(&spec("2026-11-27T11:59:50Z", 15), now));
        assert!(expired(&spec("2026-11-27T11:59:40Z", 15), now));
        assert!(expired(&LeaseSpec::default(), now));
    }
}
