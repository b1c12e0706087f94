//! Observe: what the store holds for the resource (its SYSCURRENT), whether the synced Secret may be
//! written, and whether the store secret belongs to this resource. Observing changes nothing but the
//! store secret's ownership claim, for a store secret nobody had claimed.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tracing::info;

use super::Run;
use super::scoped::ScopedStore;
use crate::api::ANNOTATION_ADOPT;
use crate::controller::claim::{self, Claim};
use crate::controller::error::ObserveError;
use crate::controller::failure::{Blocked, Halt, Then};
use crate::controller::status::from_millis;
use crate::controller::synced::may_write;
use crate::reasons::Reason;
use crate::validation::ValidatedSpec;
use secret_rotator_store::model::*;
use secret_rotator_store::{StoreError, StoreResult};

/// The store's SYSCURRENT, as the reconcile sees it.
pub enum Current {
    /// A value the synced Secret can hold.
    Usable(Version),
    /// A database secret whose password is not known yet (created for an administrator to set), for
    /// this account.
    Unknown {
        /// The account the store secret holds.
        username: String,
    },
    /// No such secret.
    Missing,
}

impl Current {
    /// The usable version's id and creation time.
    pub fn version(&self) -> Option<(&str, Timestamp)> {
        match self {
            Current::Usable(v) => Some((
                v.version_metadata.id.as_str(),
                from_millis(v.version_metadata.create_time),
            )),
            _ => None,
        }
    }
}

/// What the store and the apiserver hold for the resource.
pub struct Observed {
    /// SYSCURRENT.
    pub current: Current,
    /// The Secret named like the synced Secret, when one exists (the operator may write it).
    pub synced: Option<Arc<Secret>>,
    /// The accounts the store secret rotates, as the store records them (none before it exists).
    pub store_accounts: Vec<String>,
}

/// Checks that the synced Secret may be written; reads SYSCURRENT; checks the store secret's claim.
pub async fn observe(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
) -> Result<Observed, Halt> {
    let synced = synced_secret(run, spec).await?;
    if let Some(s) = &synced
        && !may_write(run.sr, s)
    {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::SecretNotOwned,
            message: format!(
                "Secret {}/{} exists and was not created by secret-rotator for this SecretRotation: nothing is written. Its owner can annotate it {ANNOTATION_ADOPT}=true to hand it over, or set spec.target.name to another name",
                run.ns, spec.synced.name
            ),
            announce: true,
            then: Then::Requeue(Duration::from_secs(30)),
        }));
    }
    let current = read_current(spec, store)
        .await
        .map_err(|e| unreadable(store, e))?;
    match current {
        Current::Missing if !run.ctx.creates_missing => Err(Halt::Blocked(Blocked {
            reason: Reason::SecretNotFound,
            message: format!(
                "the secret {} does not exist in CSMS project {}: create it there first (the csms backend never creates secrets)",
                spec.store_secret, store.project
            ),
            announce: true,
            then: Then::Requeue(Duration::from_secs(60)),
        })),
        Current::Missing if spec.suspend => Err(Halt::Blocked(Blocked {
            reason: Reason::Suspended,
            message: "suspended before the store secret was created".into(),
            announce: false,
            then: Then::AwaitChange,
        })),
        Current::Missing => Ok(Observed {
            current,
            synced,
            store_accounts: Vec::new(),
        }),
        _ => {
            let store_accounts = check_store_secret(run, spec, store, &current).await?;
            Ok(Observed {
                current,
                synced,
                store_accounts,
            })
        }
    }
}

/// The Secret named like the synced Secret: from the watch cache (or the operator's own newer apply);
/// when those have none, from the apiserver, since the cache holds only the operator's Secrets.
async fn synced_secret(
    run: &Run<'_>,
    spec: &ValidatedSpec,
) -> Result<Option<Arc<Secret>>, ObserveError> {
    let name = &spec.synced.name;
    let cached = run.ctx.secrets.get(&run.ns, name).await;
    if let Some(s) = run.ctx.freshness.secret_view(&run.ns, name, cached) {
        return Ok(Some(s));
    }
    let api: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| ObserveError::ReadSecret {
            object: format!("{}/{name}", run.ns),
            source,
        })?;
    Ok(found.map(Arc::new))
}

/// The store secret belongs to this resource (claiming it when nobody has) and is still what the spec
/// describes; returns the accounts it rotates.
async fn check_store_secret(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    current: &Current,
) -> Result<Vec<String>, Halt> {
    let secret = store.secret().await.map_err(|e| unreadable(store, e))?;
    let uid = run.sr.metadata.uid.as_deref().unwrap_or_default();
    let claim = match claim::claim(&secret, uid) {
        Claim::Ours => None,
        Claim::Unclaimed => Some(None),
        Claim::Other(owner) if run.ctx.policy.adopts_store_secrets(&run.ns) => Some(Some(owner)),
        Claim::Other(owner) => {
            return Err(Halt::Blocked(Blocked {
                reason: Reason::StoreSecretClaimed,
                message: format!(
                    "store secret {} belongs to another SecretRotation (uid {owner}); a resource deleted with its namespace leaves its store secret behind. Delete the store secret, address another one with spec.secretName, or let the operator's policy allow this namespace to adopt it (adoptStoreSecrets)",
                    store.name
                ),
                announce: true,
                then: Then::AwaitChange,
            }));
        }
    };
    // The account is known even while its password is not: the mismatch check never skips it.
    let current_credential = match current {
        Current::Usable(v) => DatabaseCredential::from_value(&v.value),
        Current::Unknown { username } => Some(DatabaseCredential {
            username: username.clone(),
            password: String::new(),
        }),
        Current::Missing => None,
    };
    let store_accounts = claim::rotated_accounts(&secret, current_credential.as_ref());
    if let Some(why) = claim::mismatch(spec, &secret, current_credential.as_ref()) {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::StoreSecretMismatch,
            message: why,
            announce: true,
            then: Then::AwaitChange,
        }));
    }
    if let Some(previous) = claim {
        store
            .describe(claim::description(&run.ns, &run.name, uid))
            .await
            .map_err(|e| unreadable(store, e))?;
        info!(secret = %store.name, previous_owner = previous.unwrap_or("none"), "claimed the store secret");
    }
    Ok(store_accounts)
}

/// Why the store secret could not be read: pending deletion (a condition of its own, looked at again every
/// five minutes), the store unavailable (a condition, and a retry with backoff), or an unexpected error.
fn unreadable(store: &ScopedStore<'_>, e: StoreError) -> Halt {
    match e {
        StoreError::PendingDeletion { .. } | StoreError::ScheduledForDeletion { .. } => {
            Halt::Blocked(Blocked {
                reason: Reason::StoreSecretPendingDeletion,
                message: format!(
                    "{e} (CSMS project {}): cancel its deletion in CSMS to keep it, or address another store secret with spec.secretName",
                    store.project
                ),
                announce: true,
                then: Then::Requeue(Duration::from_secs(300)),
            })
        }
        e if e.is_transient() || e.status() >= 500 => Halt::Failed {
            shown: Some((
                Reason::StoreUnavailable,
                format!("the store could not be read: {e}"),
            )),
            error: Box::new(reading(store, e).into()),
        },
        e => reading(store, e).into(),
    }
}

/// A store read that failed unexpectedly.
fn reading(store: &ScopedStore<'_>, source: StoreError) -> ObserveError {
    ObserveError::ReadStore {
        object: store.name.to_owned(),
        source,
    }
}

/// The store's SYSCURRENT.
pub async fn read_current(spec: &ValidatedSpec, store: &ScopedStore<'_>) -> StoreResult<Current> {
    match store.version_at(SYSCURRENT).await {
        Ok(v) => match DatabaseCredential::from_value(&v.value) {
            Some(c) if spec.secret_type.is_database() && c.password.is_empty() => {
                Ok(Current::Unknown {
                    username: c.username.clone(),
                })
            }
            _ => Ok(Current::Usable(v)),
        },
        Err(e) if e.status() == 404 => Ok(Current::Missing),
        Err(e) => Err(e),
    }
}
