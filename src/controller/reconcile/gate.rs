//! The gate: a resource enters the reconcile only as a [`ValidatedSpec`] that the operator's limits and the
//! namespace policy allow.

use std::time::Duration;

use super::{Blocked, Then};
use crate::api::{DatabaseEngine, SecretRotation, SecretType};
use crate::controller::Context;
use crate::controller::policy::Request;
use crate::controller::servers::namespace_labels;
use crate::reasons::Reason;
use crate::validation::server::{Refusal, resolve};
use crate::validation::{ValidatedSpec, validate};
use secret_rotator_core::planner::Timing;

/// The typed spec, or why the resource waits for a change.
pub async fn admit(sr: &SecretRotation, ctx: &Context) -> Result<ValidatedSpec, Blocked> {
    let invalid = |message: String| Blocked {
        reason: Reason::InvalidSpec,
        message,
        announce: true,
        then: Then::AwaitChange,
    };
    let spec = validate(sr).map_err(|e| invalid(e.rules()))?;
    if let Some(gap) = shortest_gap(&spec.timing)
        && gap < ctx.min_period
    {
        return Err(invalid(format!(
            "spec.rotation: rotations {} apart are more often than the operator allows ({}, its --min-rotation-period)",
            human(gap),
            human(ctx.min_period)
        )));
    }
    let namespace = sr.metadata.namespace.as_deref().unwrap_or_default();
    let request = Request {
        namespace,
        store_secret: spec.store_secret.as_str(),
        project: spec.project.as_deref(),
        default_project: &ctx.project,
    };
    ctx.policy.check(&request).map_err(|message| Blocked {
        reason: Reason::Forbidden,
        message,
        announce: true,
        then: Then::AwaitChange,
    })?;
    let server = match &spec.database {
        Some(req) => ctx.servers.get(&req.server_ref, namespace).await,
        None => None,
    };
    let labels = match &server {
        Some(Ok(s)) if s.selects_by_labels() => namespace_labels(&ctx.client, namespace).await,
        _ => Default::default(),
    };
    let spec = spec
        .resolve(|req| resolve(req, server, namespace, &labels))
        .map_err(refused)?;
    if let Some(db) = &spec.database
        && spec.secret_type == SecretType::GaussDbFg
        && db.server.engine != DatabaseEngine::Mysql
    {
        return Err(Blocked {
            reason: Reason::ServerInvalid,
            message: format!(
                "GaussDB-FG speaks the MySQL protocol, but {} is {:?}",
                db.server.title, db.server.engine
            ),
            announce: true,
            then: Then::AwaitChange,
        });
    }
    Ok(spec)
}

/// A server refusal as the condition it shows. A missing server is looked for again after a while as
/// well as when one appears.
fn refused(r: Refusal) -> Blocked {
    let (reason, message, then) = match r {
        Refusal::NotFound(m) => (
            Reason::ServerNotFound,
            m,
            Then::Requeue(Duration::from_secs(60)),
        ),
        Refusal::Invalid(m) => (Reason::ServerInvalid, m, Then::AwaitChange),
        Refusal::Forbidden(m) => (Reason::Forbidden, m, Then::AwaitChange),
    };
    Blocked {
        reason,
        message,
        announce: true,
        then,
    }
}

/// The shortest time between two rotations the timing allows: the period, or the smallest gap between
/// the next few cron ticks.
fn shortest_gap(timing: &Timing) -> Option<Duration> {
    match timing {
        Timing::Period(p) => Some(*p),
        Timing::Schedule { schedule, .. } => {
            let mut t = schedule.next_after(jiff::Timestamp::now())?;
            let mut gap: Option<Duration> = None;
            for _ in 0..16 {
                let next = schedule.next_after(t)?;
                let d = Duration::try_from(next.duration_since(t)).ok()?;
                gap = Some(gap.map_or(d, |g| g.min(d)));
                t = next;
            }
            gap
        }
    }
}

/// A duration as `90s`, `5m`, `2h`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
