//! Rollback: the `secretrotator.dev/rollback-to` annotation asks the store to move SYSCURRENT back to an
//! earlier version it holds (for a database secret, with that version's password set on the database
//! through the rotation's steps). The planner decides whether a request is carried out or refused; each
//! request is handled once, and a refused or failed one is recorded in `status.lastRollback` and an event,
//! and changes nothing else.

use tracing::{info, warn};

use super::Run;
use super::act::{Acted, read_back, refuse_store_accounts};
use super::changer::password_changer;
use super::scoped::ScopedStore;
use crate::api::{RollbackResult, RollbackStatus};
use crate::controller::error::ActError;
use crate::controller::status::{from_millis, seconds};
use crate::validation::ValidatedSpec;
use secret_rotator_core::planner::RollbackRequest;
use secret_rotator_store::RotateOptions;

/// The status record of a handled request (bounded, as the schema requires).
pub fn record(
    run: &Run<'_>,
    request: &RollbackRequest,
    result: RollbackResult,
    message: String,
    task_id: Option<String>,
) -> RollbackStatus {
    RollbackStatus {
        request: request.request.chars().take(128).collect(),
        version_id: request.version.chars().take(64).collect(),
        result,
        message: message.chars().take(1024).collect(),
        time: seconds(run.now),
        task_id,
    }
}

/// Carries out the request: `acted` gets the new SYSCURRENT and the task when it was done.
pub async fn roll_back(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    request: RollbackRequest,
    acted: &mut Acted,
) -> Result<(), ActError> {
    let version = request.version.as_str();
    let current = acted.current.version().map(|(id, _)| id.to_owned());
    if let Some(why) = too_old(run, store, version).await {
        info!(secret = %store.name, version = %version, "rollback refused: {why}");
        acted.rollback = Some(record(run, &request, RollbackResult::Refused, why, None));
        return Ok(());
    }
    let changer = match &spec.database {
        Some(db) if store.changes_databases => {
            match refuse_store_accounts(db, &acted.store_accounts) {
                Ok(()) => Some(password_changer(run, db).await),
                Err(f) => Some(Err(f)),
            }
        }
        _ => None,
    };
    let opts = match changer {
        Some(changer) => match changer {
            Ok(changer) => RotateOptions {
                changer: Some(changer),
                policy: None,
            },
            Err(f) => {
                let message = format!("{}: {}", f.code(), f.message());
                acted.rollback = Some(record(run, &request, RollbackResult::Failed, message, None));
                return Ok(());
            }
        },
        None => RotateOptions::default(),
    };
    let name = store.name;
    match store.rollback(version, opts).await {
        Ok(r) => {
            info!(secret = %name, version = %version, task = %r.rotation_task_id, "rolled back");
            let task = (!r.rotation_task_id.is_empty()).then(|| r.rotation_task_id.clone());
            let message = format!(
                "SYSCURRENT of {name} moved back to {version}{}",
                current.map(|c| format!(" from {c}")).unwrap_or_default()
            );
            acted.rollback = Some(record(
                run,
                &request,
                RollbackResult::Done,
                message,
                task.clone(),
            ));
            acted.rolled_back_task = Some(task.unwrap_or_default());
            acted.current = read_back(spec, store, "rolling it back").await?;
        }
        Err(e) if e.status() == 404 => {
            let message = format!("the store does not hold version {version} of {name}");
            acted.rollback = Some(record(
                run,
                &request,
                RollbackResult::Refused,
                message,
                None,
            ));
        }
        Err(e) => {
            warn!(secret = %name, version = %version, error = %e, "rollback failed");
            let message = format!("{}: {e}; SYSCURRENT unchanged", e.code());
            acted.rollback = Some(record(run, &request, RollbackResult::Failed, message, None));
        }
    }
    Ok(())
}

/// Why `version` is too old to go back to, if it is: created longer than `--max-rollback-age` ago. A
/// version the store does not list is left to the store's own answer.
async fn too_old(run: &Run<'_>, store: &ScopedStore<'_>, version: &str) -> Option<String> {
    let page = store.versions(100).await.ok()?;
    let v = page
        .version_metadatas
        .into_iter()
        .find(|v| v.id == version)?;
    let created = from_millis(v.create_time);
    let max = run.ctx.max_rollback_age;
    let age = run.now.duration_since(created);
    (age.as_secs() > i64::try_from(max.as_secs()).unwrap_or(i64::MAX)).then(|| {
        format!(
            "{version} was created at {}, longer ago than the operator's --max-rollback-age ({}d): an old password may be one that leaked; rotate instead",
            seconds(created).0,
            max.as_secs() / 86_400
        )
    })
}
