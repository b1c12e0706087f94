//! Act: carry out the planner's decision. A missing store secret is created; a rotation of a database
//! secret goes through the store's RotateSecret with the password changer, a COMMON secret gets a
//! generated value as a new version; a rollback moves SYSCURRENT back.

use std::time::Instant;

use k8s_openapi::api::core::v1::Secret;
use tracing::info;

use super::observe::{Current, Observed, read_current};
use super::publish::StatusWriter;
use super::scoped::ScopedStore;
use super::{Run, changer, rollback};
use crate::api::{ANNOTATION_ADOPT, PendingRotateNowStatus, RollbackResult, RollbackStatus};
use crate::controller::claim;
use crate::controller::error::ActError;
use crate::controller::failure::Failure;
use crate::controller::status::with_intent;
use crate::metrics::ResultLabel;
use crate::validation::{Database, ValidatedSpec};
use secret_rotator_core::planner::{self, Action, Creation, Plan};
use secret_rotator_store::model::*;
use secret_rotator_store::{RotateOptions, StoreError};

/// What acting did.
pub struct Acted {
    /// The plan acted on; its schedule stands unless SYSCURRENT moved.
    pub plan: Plan,
    /// SYSCURRENT after acting.
    pub current: Current,
    /// The store secret was created in this reconcile, holding this.
    pub created: Option<Creation>,
    /// The rotate-now intent recorded in the status before rotating.
    pub intent: Option<PendingRotateNowStatus>,
    /// The rotation's task id (empty for COMMON), when a rotation succeeded.
    pub rotated_task: Option<String>,
    /// The rotate-now value handled by a rotation, or found handled in the store.
    pub rotate_now_done: Option<String>,
    /// This attempt's failure (a rotation's, or the store secret's creation).
    pub failure: Option<Failure>,
    /// A rollback request handled in this reconcile, and how it went.
    pub rollback: Option<RollbackStatus>,
    /// The ROLLBACK task (empty when the store records none), when a rollback moved SYSCURRENT.
    pub rolled_back_task: Option<String>,
    /// The accounts the store secret rotates, as the store records them.
    pub store_accounts: Vec<String>,
    /// The Secret at the synced Secret's name as observe saw it (the operator may write it).
    pub synced_seen: Option<std::sync::Arc<Secret>>,
    /// A request that waits for the minimum gap, and until when.
    pub waits: Option<(&'static str, jiff::Timestamp)>,
}

impl Acted {
    /// Whether SYSCURRENT moved: a rotation or a rollback.
    pub fn moved(&self) -> bool {
        self.rotated_task.is_some() || self.rolled_back_task.is_some()
    }

    /// The task that moved SYSCURRENT.
    pub fn moved_task(&self) -> Option<&str> {
        self.rotated_task
            .as_deref()
            .or(self.rolled_back_task.as_deref())
    }
}

/// Carries out `plan.action`. A rotate-now is recorded in the status before it rotates.
pub async fn act(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    writer: &mut StatusWriter,
    plan: Plan,
    observed: Observed,
) -> Result<Acted, ActError> {
    let action = plan.action.clone();
    let mut acted = Acted {
        plan,
        current: observed.current,
        created: None,
        intent: None,
        rotated_task: None,
        rotate_now_done: None,
        failure: None,
        rollback: None,
        rolled_back_task: None,
        store_accounts: observed.store_accounts,
        synced_seen: observed.synced.clone(),
        waits: None,
    };
    match action {
        Action::Create { then } => {
            match create(run, spec, store, observed.synced.as_deref()).await {
                Ok(creation) => {
                    acted.current = read_back(spec, store, "creating it").await?;
                    if let Some(db) = &spec.database {
                        acted.store_accounts = db.accounts.names().map(str::to_owned).collect();
                    }
                    acted.created = Some(creation);
                    if creation == Creation::Generated {
                        count_rotation(run, "success", "bootstrap");
                    }
                    let value_unknown = matches!(acted.current, Current::Unknown { .. });
                    match then {
                        Some(planner::RotationReason::Bootstrap) if !value_unknown => {}
                        Some(reason) => {
                            rotate(run, spec, store, writer, reason, &mut acted).await?
                        }
                        None => {}
                    }
                }
                Err(f) => acted.failure = Some(f),
            }
        }
        Action::Rollback(request) => {
            rollback::roll_back(run, spec, store, request, &mut acted).await?
        }
        Action::RefuseRollback { request, message } => {
            info!(secret = %spec.store_secret, request = %request.request, "rollback refused: {message}");
            acted.rollback = Some(rollback::record(
                run,
                &request,
                RollbackResult::Refused,
                message,
                None,
            ));
        }
        Action::Rotate(reason) => rotate(run, spec, store, writer, reason, &mut acted).await?,
        Action::CompleteRotateNow(v) => acted.rotate_now_done = Some(v),
        Action::Wait { request, until } => acted.waits = Some((request, until)),
        Action::Sync | Action::Backoff => {}
    }
    Ok(acted)
}

/// SYSCURRENT after an action changed it.
pub async fn read_back(
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    action: &'static str,
) -> Result<Current, ActError> {
    read_current(spec, store)
        .await
        .map_err(|source| ActError::ReadBack {
            object: store.name.to_owned(),
            action,
            source,
        })
}

fn count_rotation(run: &Run<'_>, result: &'static str, reason: &'static str) {
    run.ctx
        .metrics
        .rotations
        .get_or_create(&ResultLabel { result, reason })
        .inc();
}

/// One rotation for `reason`; `acted` gets its task, the new SYSCURRENT, or the failure.
async fn rotate(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    writer: &mut StatusWriter,
    reason: planner::RotationReason,
    acted: &mut Acted,
) -> Result<(), ActError> {
    if let planner::RotationReason::RotateNow(v) = &reason
        && run.previous.pending_rotate_now.as_ref().map(|p| &p.value) != Some(v)
    {
        let from = acted.current.version().map(|(id, _)| id.to_owned());
        let intent = PendingRotateNowStatus {
            value: v.clone(),
            from_version: from.unwrap_or_default(),
        };
        let status = with_intent(&run.frame(spec), writer.written().clone(), &intent);
        writer.write(run, status).await.map_err(ActError::Intent)?;
        acted.intent = Some(intent);
    }
    let started = Instant::now();
    info!(secret = %spec.store_secret, reason = reason.as_str(), "rotating");
    let result = rotation(run, spec, store, &acted.store_accounts).await;
    count_rotation(
        run,
        if result.is_ok() { "success" } else { "failure" },
        reason.as_str(),
    );
    match result {
        Ok(task) => {
            #[cfg(feature = "test-failpoints")]
            if std::env::var("SECRET_ROTATOR_TEST_FAILPOINT").as_deref()
                == Ok("abort-after-store-rotation")
            {
                tracing::warn!("failpoint abort-after-store-rotation: aborting");
                std::process::abort();
            }
            run.ctx
                .metrics
                .rotation_duration
                .observe(started.elapsed().as_secs_f64());
            acted.rotated_task = Some(task);
            if let planner::RotationReason::RotateNow(v) = reason {
                acted.rotate_now_done = Some(v);
            }
            acted.current = read_back(spec, store, "rotating it").await?;
        }
        Err(f) => acted.failure = Some(f),
    }
    Ok(())
}

/// Carries out one rotation; returns the task id (empty for COMMON).
async fn rotation(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    store_accounts: &[String],
) -> Result<String, Failure> {
    if let Some(db) = &spec.database {
        refuse_store_accounts(db, store_accounts)?;
        let changer = if store.changes_databases {
            Some(changer::password_changer(run, db).await?)
        } else {
            None
        };
        let opts = RotateOptions {
            changer,
            policy: Some(spec.password.clone()),
        };
        Ok(store.rotate(opts).await?.rotation_task_id)
    } else {
        let v = secret_rotator_core::password::generate(&spec.password)
            .map_err(|e| Failure::ConfigurationMissing(e.to_string()))?;
        let req = CreateVersion {
            secret_string: Some(v),
            ..CreateVersion::default()
        };
        store.create_version(req).await?;
        Ok(String::new())
    }
}

/// The accounts the store will rotate, checked against the server again on every rotation: the spec was
/// checked by the gate, but the store may hold another account than the spec names.
pub fn refuse_store_accounts(db: &Database, store_accounts: &[String]) -> Result<(), Failure> {
    match store_accounts
        .iter()
        .find_map(|a| db.server.refuses_account(a))
    {
        Some(why) => Err(Failure::Forbidden(format!(
            "the store secret rotates {why}"
        ))),
        None => Ok(()),
    }
}

/// Creates the store secret (embedded store); returns what it holds.
async fn create(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    synced: Option<&Secret>,
) -> Result<Creation, Failure> {
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
    let creation = match &spec.database {
        None => {
            let v = secret_rotator_core::password::generate(&spec.password)
                .map_err(|e| Failure::ConfigurationMissing(e.to_string()))?;
            req.secret_string = Some(v);
            Creation::Generated
        }
        Some(db) => {
            let first = db.accounts.first().to_owned();
            let (password, creation) = if db.server.admin.is_some() {
                // Unknown: the first rotation sets it through the administrator. The administrator's own
                // account is refused before anything is stored, so no later edit can build on it.
                changer::admin(run, db).await?;
                (String::new(), Creation::Unknown)
            } else {
                (
                    adopted_password(run, spec, &first, synced)?,
                    Creation::Adopted,
                )
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
            creation
        }
    };
    match store.create(req).await {
        Ok(_) => {
            info!(secret = %spec.store_secret, "created the store secret");
            Ok(creation)
        }
        // Created by a previous attempt that lost its answer: what it holds is read back.
        Err(StoreError::AlreadyExists { .. }) => Ok(creation),
        Err(e) => Err(e.into()),
    }
}

/// The account's current password, from a Secret the operator may write (made by it, or handed over
/// with the adopt annotation): the observe step refused any other.
fn adopted_password(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    account: &str,
    synced: Option<&Secret>,
) -> Result<String, Failure> {
    synced
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("password"))
        .and_then(|b| std::str::from_utf8(&b.0).ok())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Failure::NeedsInitialPassword(format!(
            "without adminSecretRef the operator needs {account}'s current password: put it under the key password of a Secret {}/{} annotated {ANNOTATION_ADOPT}=true, or set adminSecretRef",
            run.ns, spec.synced.name
        )))
}
