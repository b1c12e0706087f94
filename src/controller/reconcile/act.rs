//! Act: carry out the planner's decision. A rotation of a database secret goes through the store's
//! RotateSecret with the database connection; a COMMON secret gets a generated value as a new version.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use super::observe::{Current, Observed, read_current, reading};
use super::{Failure, Run};
use crate::controller::Error;
use crate::controller::status::with_intent;
use crate::metrics::ResultLabel;
use crate::validation::{Database, ValidatedSpec};
use secret_rotator_core::planner::{self, Action, Plan};
use secret_rotator_store::changer::PasswordChanger;
use secret_rotator_store::database;
use secret_rotator_store::model::*;

/// What acting did.
pub struct Acted {
    /// SYSCURRENT after acting.
    pub current: Current,
    /// The rotation's task id (empty for COMMON), when a rotation succeeded.
    pub rotated_task: Option<String>,
    /// The rotate-now value handled by a rotation, or found handled in the store.
    pub rotate_now_done: Option<String>,
    /// This attempt's failure (a rotation's, or the store secret's creation).
    pub failure: Option<Failure>,
    /// A rollback request handled in this reconcile, and how it went.
    pub rollback: Option<crate::api::RollbackStatus>,
    /// The ROLLBACK task (empty when the store records none), when a rollback moved SYSCURRENT.
    pub rolled_back_task: Option<String>,
}

/// Carries out `plan.action`. A rotate-now is recorded in the status before it rotates.
pub async fn act(
    run: &mut Run<'_>,
    spec: &ValidatedSpec,
    plan: &Plan,
    observed: Observed,
) -> Result<Acted, Error> {
    let mut acted = Acted {
        current: observed.current,
        rotated_task: None,
        rotate_now_done: None,
        failure: observed.failure,
        rollback: None,
        rolled_back_task: None,
    };
    // A rollback request comes before the plan: a person asked for it.
    if acted.failure.is_none()
        && let Some(request) = super::rollback::pending(run)
    {
        super::rollback::handle(run, spec, request, &mut acted).await?;
        return Ok(acted);
    }
    let reason = match &plan.action {
        Action::Rotate(reason) => reason,
        Action::CompleteRotateNow(v) => {
            acted.rotate_now_done = Some(v.clone());
            return Ok(acted);
        }
        Action::Sync | Action::Backoff => return Ok(acted),
    };
    if let planner::Reason::RotateNow(v) = reason
        && run.previous.pending_rotate_now.as_ref().map(|p| &p.value) != Some(v)
    {
        let from = acted.current.version().map(|(id, _)| id.to_owned());
        let intent = with_intent(&run.frame(spec), run.status.clone(), v, from.as_deref());
        run.write_status(intent).await?;
    }
    let started = Instant::now();
    info!(secret = %spec.store_secret, reason = reason.as_str(), "rotating");
    let result = rotate(run, spec).await;
    let outcome = if result.is_ok() { "success" } else { "failure" };
    run.ctx
        .metrics
        .rotations
        .get_or_create(&ResultLabel {
            result: outcome,
            reason: reason.as_str(),
        })
        .inc();
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
            if let planner::Reason::RotateNow(v) = reason {
                acted.rotate_now_done = Some(v.clone());
            }
            acted.current = read_current(run, spec)
                .await
                .map_err(|e| reading(spec, e))?;
        }
        Err(f) => acted.failure = Some(f),
    }
    Ok(acted)
}

/// Carries out one rotation; returns the task id (empty for COMMON).
async fn rotate(run: &Run<'_>, spec: &ValidatedSpec) -> Result<String, Failure> {
    let project = run.project(spec);
    let name = spec.store_secret.as_str();
    if let Some(db) = &spec.database {
        let target = if run.ctx.store.changes_databases() {
            Some(connection(run, db).await?)
        } else {
            None
        };
        let opts = RotateOptions {
            target,
            policy: Some(spec.password.clone()),
        };
        let r = run
            .timed("rotate", run.ctx.store.rotate(&project, name, opts))
            .await?;
        Ok(r.rotation_task_id)
    } else {
        let v = secret_rotator_core::password::generate(&spec.password)
            .map_err(|e| Failure::ConfigurationMissing(e.to_string()))?;
        let req = CreateVersion {
            secret_string: Some(v),
            ..CreateVersion::default()
        };
        run.timed(
            "create_version",
            run.ctx.store.create_version(&project, name, req),
        )
        .await?;
        Ok(String::new())
    }
}

/// The database connection, with the administrator's credentials and the CA read from Secrets.
pub(super) async fn connection(
    run: &Run<'_>,
    db: &Database,
) -> Result<Arc<dyn PasswordChanger>, Failure> {
    let admin = match &db.admin_secret_ref {
        None => None,
        Some(r) => {
            let missing = |what: &str| {
                Failure::ConfigurationMissing(format!(
                    "adminSecretRef: Secret {}/{} has no key {what}",
                    run.ns, r.name
                ))
            };
            let user = run
                .secret_value(&r.name, &r.username_key)
                .await?
                .ok_or_else(|| missing(&r.username_key))?;
            let pw = run
                .secret_value(&r.name, &r.password_key)
                .await?
                .ok_or_else(|| missing(&r.password_key))?;
            let user = user.expose_str().unwrap_or_default().to_owned();
            if db.accounts.names().any(|a| a == user) {
                return Err(Failure::Forbidden(format!(
                    "adminSecretRef: Secret {}/{} holds the credentials of {user}, an account this resource rotates; the operator never rotates the administrator's own account",
                    run.ns, r.name
                )));
            }
            Some((user, pw))
        }
    };
    let ca_pem = match &db.ca_secret_ref {
        None => None,
        Some(r) => Some(
            run.secret_value(&r.name, &r.key)
                .await?
                .ok_or_else(|| {
                    Failure::ConfigurationMissing(format!(
                        "tls.caSecretRef: Secret {}/{} has no key {}",
                        run.ns, r.name, r.key
                    ))
                })?
                .expose()
                .to_vec(),
        ),
    };
    let conn = database::Connection {
        engine: db.engine,
        host: db.host.clone(),
        port: db.port,
        database: db.database.clone(),
        tls: db.tls_mode,
        ca_pem,
        admin,
    };
    Ok(database::changer_in(conn, run.ctx.admin_pool.clone()))
}
