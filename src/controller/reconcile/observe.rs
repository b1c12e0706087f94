//! Observe: what the store holds for the resource (its SYSCURRENT), creating the store secret on the
//! embedded store when it is missing.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use tracing::info;

use super::{Blocked, Failure, Halt, Run, Then};
use crate::api::ANNOTATION_ADOPT;
use crate::controller::Error;
use crate::controller::claim::{self, Claim};
use crate::controller::reasons::Reason;
use crate::controller::status::from_millis;
use crate::controller::synced::may_write;
use crate::metrics::ResultLabel;
use crate::validation::ValidatedSpec;
use secret_rotator_store::model::*;
use secret_rotator_store::{StoreError, StoreResult};

/// The store's SYSCURRENT, as the reconcile sees it.
pub enum Current {
    /// A value the synced Secret can hold.
    Usable(Version),
    /// A database secret whose password is not known yet (created for an administrator to set).
    Unknown,
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

/// What the store holds, and what this reconcile did to make it hold something.
pub struct Observed {
    /// SYSCURRENT.
    pub current: Current,
    /// The value was adopted from an existing synced Secret (it predates the resource).
    pub adopted: bool,
    /// The store secret was created with a generated value.
    pub bootstrapped: bool,
    /// Creating the store secret failed.
    pub failure: Option<Failure>,
}

/// Checks that the synced Secret may be written; reads SYSCURRENT; creates the store secret when missing
/// and allowed.
pub async fn observe(run: &Run<'_>, spec: &ValidatedSpec) -> Result<Observed, Halt> {
    let existing = run.synced_secret(spec).await?;
    if let Some(s) = &existing
        && !may_write(run.sr, s)
    {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::SecretNotOwned,
            message: format!(
                "Secret {}/{} exists and was not created by secret-rotator for this SecretRotation: nothing is written. Its owner can annotate it {ANNOTATION_ADOPT}=true to hand it over, or set spec.target.name to another name",
                run.ns, spec.sync_target.name
            ),
            announce: true,
            then: Then::Requeue(std::time::Duration::from_secs(30)),
        }));
    }
    let current = read_current(run, spec)
        .await
        .map_err(|e| unreadable(run, spec, e))?;
    if !matches!(current, Current::Missing) {
        check_store_secret(run, spec, &current).await?;
        return Ok(Observed {
            current,
            adopted: false,
            bootstrapped: false,
            failure: None,
        });
    }
    if !run.ctx.creates_missing {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::SecretNotFound,
            message: format!(
                "the secret {} does not exist in CSMS project {}: create it there first (the csms backend never creates secrets)",
                spec.store_secret,
                run.project(spec)
            ),
            announce: true,
            then: Then::Requeue(std::time::Duration::from_secs(60)),
        }));
    }
    if spec.suspend {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::Suspended,
            message: "suspended before the store secret was created".into(),
            announce: false,
            then: Then::AwaitChange,
        }));
    }
    let adopted = match bootstrap(run, spec, existing.as_deref()).await {
        Ok(adopted) => adopted,
        Err(f) => {
            return Ok(Observed {
                current,
                adopted: false,
                bootstrapped: false,
                failure: Some(f),
            });
        }
    };
    let current = read_current(run, spec)
        .await
        .map_err(|e| reading(spec, e))?;
    let bootstrapped = matches!(current, Current::Usable(_)) && !adopted;
    if bootstrapped {
        run.ctx
            .metrics
            .rotations
            .get_or_create(&ResultLabel {
                result: "success",
                reason: "bootstrap",
            })
            .inc();
    }
    Ok(Observed {
        current,
        adopted,
        bootstrapped,
        failure: None,
    })
}

/// The store secret belongs to this resource (claiming it when nobody has) and is still what the spec
/// describes.
async fn check_store_secret(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    current: &Current,
) -> Result<(), Halt> {
    let project = run.project(spec);
    let name = spec.store_secret.as_str();
    let secret = run
        .timed("show_secret", run.ctx.store.show_secret(&project, name))
        .await
        .map_err(|e| unreadable(run, spec, e))?;
    let uid = run.sr.metadata.uid.as_deref().unwrap_or_default();
    let claim = match claim::claim(&secret, uid) {
        Claim::Ours => None,
        Claim::Unclaimed => Some(None),
        Claim::Other(owner) if run.ctx.policy.adopts_store_secrets(&run.ns) => Some(Some(owner)),
        Claim::Other(owner) => {
            return Err(Halt::Blocked(Blocked {
                reason: Reason::StoreSecretClaimed,
                message: format!(
                    "store secret {name} belongs to another SecretRotation (uid {owner}); a resource deleted with its namespace leaves its store secret behind. Delete the store secret, address another one with spec.secretName, or let the operator's policy allow this namespace to adopt it (adoptStoreSecrets)"
                ),
                announce: true,
                then: Then::AwaitChange,
            }));
        }
    };
    let current_credential = match current {
        Current::Usable(v) => DatabaseCredential::from_value(&v.value),
        _ => None,
    };
    if let Some(why) = claim::mismatch(spec, &secret, current_credential.as_ref()) {
        return Err(Halt::Blocked(Blocked {
            reason: Reason::StoreSecretMismatch,
            message: why,
            announce: true,
            then: Then::AwaitChange,
        }));
    }
    if let Some(previous) = claim {
        let req = UpdateSecret {
            description: Some(claim::description(&run.ns, &run.name, uid)),
            ..UpdateSecret::default()
        };
        run.timed(
            "update_secret",
            run.ctx.store.update_secret(&project, name, req),
        )
        .await
        .map_err(|e| unreadable(run, spec, e))?;
        info!(secret = %name, previous_owner = previous.unwrap_or("none"), "claimed the store secret");
    }
    Ok(())
}

/// Why the store secret could not be read: pending deletion (a condition of its own, looked at again every
/// five minutes), the store unavailable (a condition, and a retry with backoff), or an unexpected error.
fn unreadable(run: &Run<'_>, spec: &ValidatedSpec, e: StoreError) -> Halt {
    match e {
        StoreError::PendingDeletion { .. } | StoreError::ScheduledForDeletion { .. } => {
            Halt::Blocked(Blocked {
                reason: Reason::StoreSecretPendingDeletion,
                message: format!(
                    "{e} (CSMS project {}): cancel its deletion in CSMS to keep it, or address another store secret with spec.secretName",
                    run.project(spec)
                ),
                announce: true,
                then: Then::Requeue(std::time::Duration::from_secs(300)),
            })
        }
        e if e.is_transient() || e.status() >= 500 => Halt::Blocked(Blocked {
            reason: Reason::StoreUnavailable,
            message: format!("the store could not be read: {e}"),
            announce: false,
            then: Then::Fail(Box::new(reading(spec, e))),
        }),
        e => Halt::Failed(Box::new(reading(spec, e))),
    }
}

/// A store read that failed unexpectedly.
pub fn reading(spec: &ValidatedSpec, source: StoreError) -> Error {
    Error::Store {
        action: "reading",
        object: spec.store_secret.to_string(),
        source,
    }
}

/// The store's SYSCURRENT.
pub async fn read_current(run: &Run<'_>, spec: &ValidatedSpec) -> StoreResult<Current> {
    let project = run.project(spec);
    let read =
        run.ctx
            .store
            .show_version_by_stage(&project, spec.store_secret.as_str(), SYSCURRENT);
    match run.timed("show_version", read).await {
        Ok(v) => {
            if spec.secret_type.is_database()
                && DatabaseCredential::from_value(&v.value).is_some_and(|c| c.password.is_empty())
            {
                Ok(Current::Unknown)
            } else {
                Ok(Current::Usable(v))
            }
        }
        Err(e) if e.status() == 404 => Ok(Current::Missing),
        Err(e) => Err(e),
    }
}

/// Creates the store secret (embedded store). `Ok(true)` when the value was adopted from an existing
/// synced Secret (the caller then honours rotateOnCreate).
async fn bootstrap(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    synced: Option<&Secret>,
) -> Result<bool, Failure> {
    let mut req = CreateSecret {
        name: spec.store_secret.to_string(),
        secret_type: Some(spec.secret_type.as_str().to_owned()),
        description: Some(claim::description(
            &run.ns,
            &run.name,
            run.sr.metadata.uid.as_deref().unwrap_or_default(),
        )),
        ..CreateSecret::default()
    };
    let mut adopted = false;
    match &spec.database {
        None => {
            let v = secret_rotator_core::password::generate(&spec.password)
                .map_err(|e| Failure::ConfigurationMissing(e.to_string()))?;
            req.secret_string = Some(v);
        }
        Some(db) => {
            let first = db.accounts.first().to_owned();
            let password = if db.admin_secret_ref.is_some() {
                // Unknown: the first rotation sets it through the administrator.
                String::new()
            } else {
                // Read only from a Secret the operator may write (made by it, or opted in): the observe
                // step refused any other.
                adopted = true;
                let target = &spec.sync_target.name;
                synced
                    .and_then(|s| s.data.as_ref())
                    .and_then(|d| d.get("password"))
                    .and_then(|b| std::str::from_utf8(&b.0).ok())
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| Failure::NeedsInitialPassword(format!(
                        "without adminSecretRef the operator needs {first}'s current password: put it under the key password of a Secret {}/{target} annotated {ANNOTATION_ADOPT}=true, or set adminSecretRef",
                        run.ns
                    )))?
            };
            req.secret_string = Some(
                DatabaseCredential {
                    username: first,
                    password,
                }
                .to_value(),
            );
            let cfg = RotationConfig {
                instance_id: db.instance_id(),
                secret_sub_type: format!("{:?}", db.accounts.mode()),
                usernames: db.accounts.alternating(),
            };
            req.rotation_config = serde_json::to_string(&cfg).ok();
        }
    }
    let project = run.project(spec);
    match run
        .timed("create_secret", run.ctx.store.create_secret(&project, req))
        .await
    {
        Ok(_) => {
            info!(secret = %spec.store_secret, "created the store secret");
            Ok(adopted)
        }
        // Created by a previous attempt that lost its answer.
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The task that produced the current version, for a status catching up after a restart.
pub async fn latest_task(run: &Run<'_>, spec: &ValidatedSpec) -> Option<String> {
    let filter = TaskFilter {
        secret_name: Some(spec.store_secret.to_string()),
        status: Some(TaskStatus::Success),
        limit: Some(1),
        ..TaskFilter::default()
    };
    let project = run.project(spec);
    let page = run
        .timed("list_tasks", run.ctx.store.list_tasks(&project, filter))
        .await
        .ok()?;
    page.tasks.into_iter().next().map(|t| t.task_id)
}
