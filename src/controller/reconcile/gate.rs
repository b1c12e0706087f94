//! The gate: a resource enters the reconcile only as a [`ValidatedSpec`] that the operator's limits and the
//! namespace policy allow.

use std::time::Duration;

use super::{Blocked, Then};
use crate::api::SecretRotation;
use crate::controller::Context;
use crate::controller::policy::Request;
use crate::reasons::Reason;
use crate::validation::{ValidatedSpec, validate};
use secret_rotator_core::planner::Timing;

/// The typed spec, or why the resource waits for a change.
pub fn admit(sr: &SecretRotation, ctx: &Context) -> Result<ValidatedSpec, Blocked> {
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
    let accounts: Vec<&str> = match &spec.database {
        Some(db) => db.accounts.names().collect(),
        None => Vec::new(),
    };
    let request = Request {
        namespace: sr.metadata.namespace.as_deref().unwrap_or_default(),
        store_secret: spec.store_secret.as_str(),
        project: spec.project.as_deref(),
        default_project: &ctx.project,
        host: spec.database.as_ref().map(|d| d.host.as_str()),
        accounts: &accounts,
    };
    ctx.policy.check(&request).map_err(|message| Blocked {
        reason: Reason::Forbidden,
        message,
        announce: true,
        then: Then::AwaitChange,
    })?;
    Ok(spec)
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
