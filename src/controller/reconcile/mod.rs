//! One reconcile of one SecretRotation, as a forward pipeline: each step's output is the next step's
//! input, and no step calls back into an earlier one.
//!
//! 1. [`gate`]: the spec, validated into a [`ValidatedSpec`] the operator's limits and the namespace
//!    policy allow;
//! 2. [`observe`]: what the store holds for it and whether the synced Secret may be written
//!    ([`Observed`](observe::Observed));
//! 3. plan: the pure [`planner`] decides the action: create the store secret, rotate, roll back, or only
//!    keep things in sync;
//! 4. [`act`]: carries the action out ([`Acted`](act::Acted));
//! 5. [`sync`]: the synced Secret and the restart targets; [`history`]: the versions for the status;
//! 6. status: the pure [`status`] module turns all of it into the new status and its events, which
//!    [`publish`] writes.
//!
//! A step that stops early returns a [`Halt`]: a condition to show, or an error to retry with backoff.

mod act;
mod changer;
mod gate;
mod history;
mod observe;
mod publish;
mod rollback;
mod scoped;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as KubeAction;
use tracing::{Instrument, warn};

use super::failure::{Blocked, Halt, Then};
use super::status::{self, Frame, Outcome, Verdict};
use super::synced::SyncedState;
use super::{Context, Error};
use crate::api::{ANNOTATION_ROLLBACK_TO, RollbackResult, SecretRotation, SecretRotationStatus};
use crate::validation::ValidatedSpec;
use act::Acted;
use observe::Current;
use publish::StatusWriter;
use scoped::ScopedStore;
use secret_rotator_core::planner::{self, Creation, Input, PendingRotateNow, Plan};

/// One reconcile of one SecretRotation.
pub async fn reconcile(sr: Arc<SecretRotation>, ctx: Arc<Context>) -> Result<KubeAction, Error> {
    let object = format!("{}/{}", sr.namespace().unwrap_or_default(), sr.name_any());
    if ctx.freshness.status_is_stale(&sr.metadata) {
        // The watch has not delivered this resource's last status write yet; its newer copy wakes the
        // controller again. Acting on this one would repeat that write (or a rotate-now).
        tracing::debug!(%object, "stale copy; waiting for the watch");
        return Ok(KubeAction::requeue(Duration::from_secs(5)));
    }
    ctx.metrics.reconciles.inc();
    let _in_flight = InFlight::start(&ctx.metrics.reconciles_in_flight);
    let span = tracing::info_span!("reconcile", %object);
    let result = Run::new(&sr, &ctx).drive().instrument(span).await;
    if result.is_ok() {
        ctx.retries.succeeded(&object);
    }
    result
}

/// Who and when one reconcile is about: read-only for every step.
pub struct Run<'a> {
    /// The resource as the watch delivered it.
    pub sr: &'a SecretRotation,
    /// What every reconcile shares.
    pub ctx: &'a Context,
    /// `metadata.namespace`.
    pub ns: String,
    /// `metadata.name`.
    pub name: String,
    /// The one clock reading of this reconcile.
    pub now: Timestamp,
    /// The status as the resource was read.
    pub previous: SecretRotationStatus,
}

impl<'a> Run<'a> {
    fn new(sr: &'a SecretRotation, ctx: &'a Context) -> Run<'a> {
        Run {
            sr,
            ctx,
            ns: sr.namespace().unwrap_or_default(),
            name: sr.name_any(),
            now: Timestamp::now(),
            previous: sr.status.clone().unwrap_or_default(),
        }
    }

    /// The steps, in order.
    async fn drive(&self) -> Result<KubeAction, Error> {
        let mut writer = StatusWriter::new(self);
        let spec = match gate::admit(self.sr, self.ctx).await {
            Ok(spec) => spec,
            Err(blocked) => return self.stop(&mut writer, None, Halt::Blocked(blocked)).await,
        };
        let store = ScopedStore::new(self.ctx, &spec);
        let observed = match observe::observe(self, &spec, &store).await {
            Ok(o) => o,
            Err(halt) => return self.stop(&mut writer, Some(&spec), halt).await,
        };
        let facts = Facts::before(&self.previous);
        let plan = planner::plan(&self.input(&spec, &facts, &observed.current));
        let acted = act::act(self, &spec, &store, &mut writer, plan, observed).await?;
        let synced = sync::sync(self, &spec, &store, &acted).await?;
        let versions = history::versions(self, &store, &acted).await;
        // After the store secret was created or SYSCURRENT moved (or a rotate-now was found done), the next
        // due time counts from the new state; otherwise the plan's schedule stands.
        let schedule =
            if acted.created.is_some() || acted.moved() || acted.rotate_now_done.is_some() {
                planner::schedule(&self.input(&spec, &facts.after(&acted), &acted.current))
            } else {
                acted.plan.clone()
            };
        let outcome = Outcome {
            intent: acted.intent.as_ref(),
            created: acted.created,
            rotated: acted.rotated_task.is_some(),
            rotate_now_done: acted.rotate_now_done.as_deref(),
            failure: acted.failure.as_ref(),
            synced: &synced,
            versions,
            next_rotation: schedule.next_rotation,
            waiting_for_window: schedule.waiting_for_window,
            request_waits: acted.waits,
            rollback: acted.rollback.as_ref(),
        };
        let settled = status::settle(&self.frame(&spec), writer.written(), &outcome);
        let requeue = self.requeue_after(&spec, &schedule, &acted, &synced);
        publish::next_rotation_gauge(self, schedule.next_rotation);
        writer
            .publish(
                self,
                settled,
                spec.store_secret.as_str(),
                Some(&spec.synced.name),
            )
            .await?;
        Ok(KubeAction::requeue(requeue.max(Duration::from_secs(1))))
    }

    /// When to look again: the schedule's time, the failure's backoff, or a while after a refused Secret.
    fn requeue_after(
        &self,
        spec: &ValidatedSpec,
        schedule: &Plan,
        acted: &Acted,
        synced: &SyncedState,
    ) -> Duration {
        let mut requeue = schedule.requeue_after;
        if let Some(f) = &acted.failure {
            let attempt = self.previous.failed_attempts.saturating_add(1);
            requeue = planner::backoff::delay(attempt, rand::random::<f64>());
            warn!(code = %f.code(), error = %f.message(), attempt, secret = %spec.store_secret, "rotation failed");
        }
        match synced {
            SyncedState::Rejected(_) => {
                requeue = Duration::from_secs(300);
                self.ctx.metrics.synced_secret_rejections.inc();
            }
            // The next look finds the other Secret and says whose it is.
            SyncedState::Taken(_) => requeue = Duration::from_secs(30),
            _ => {}
        }
        requeue
    }

    /// The one exit of a reconcile that stops early: the condition (when it changed) and what comes next.
    async fn stop(
        &self,
        writer: &mut StatusWriter,
        spec: Option<&ValidatedSpec>,
        halt: Halt,
    ) -> Result<KubeAction, Error> {
        let (verdict, announce, then) = match halt {
            Halt::Blocked(Blocked {
                reason,
                message,
                announce,
                then,
            }) => (Verdict::no(reason, message), announce, Ok(then)),
            Halt::Failed { error, shown: None } => return Err(*error),
            Halt::Failed {
                error,
                shown: Some((reason, message)),
            } => (Verdict::no(reason, message), false, Err(error)),
        };
        let store_secret = match spec {
            Some(s) => s.store_secret.to_string(),
            None => self.sr.store_secret_name(),
        };
        // A blocked resource has no next rotation: its gauge goes, so that it cannot look overdue.
        publish::next_rotation_gauge(self, None);
        let settled = status::blocked(
            &self.frame_for(&store_secret),
            writer.written(),
            verdict,
            announce,
        );
        let secret = spec.map(|s| s.synced.name.as_str());
        writer.publish(self, settled, &store_secret, secret).await?;
        match then {
            Ok(Then::AwaitChange) => Ok(KubeAction::await_change()),
            Ok(Then::Requeue(d)) => Ok(KubeAction::requeue(d)),
            Err(error) => Err(*error),
        }
    }

    /// The planner's view of the resource: the spec, what the status records (`facts`) and the store's
    /// SYSCURRENT.
    fn input<'s>(
        &'s self,
        spec: &'s ValidatedSpec,
        facts: &'s Facts,
        current: &'s Current,
    ) -> Input<'s> {
        let created = self.sr.metadata.creation_timestamp.as_ref().map(|t| t.0);
        Input {
            now: self.now,
            timing: &spec.timing,
            maintenance: spec.maintenance.as_ref(),
            suspend: spec.suspend,
            rotate_on_create: spec.rotate_on_create,
            created: created.unwrap_or(self.now),
            rotate_now: spec.rotate_now.as_deref(),
            last_rotate_now: facts.last_rotate_now.as_deref(),
            pending_rotate_now: facts.pending_rotate_now.as_ref(),
            failed_attempts: facts.failed_attempts,
            last_failure: facts.last_failure,
            current: current.version(),
            jitter: rand::random::<f64>(),
            missing: matches!(current, Current::Missing).then(|| creation(spec)),
            rollback_to: self
                .sr
                .annotations()
                .get(ANNOTATION_ROLLBACK_TO)
                .map(String::as_str),
            last_rollback_request: facts.last_rollback_request.as_deref(),
            last_rollback_done: facts
                .last_rollback_done
                .as_ref()
                .map(|(v, t)| (v.as_str(), *t)),
            min_gap: self.ctx.min_period,
        }
    }

    fn frame<'s>(&'s self, spec: &'s ValidatedSpec) -> Frame<'s> {
        self.frame_for(spec.store_secret.as_str())
    }

    fn frame_for<'s>(&'s self, store_secret: &'s str) -> Frame<'s> {
        Frame {
            previous: &self.previous,
            generation: self.sr.metadata.generation,
            now: self.now,
            store_secret,
            namespace: &self.ns,
        }
    }

    /// `namespace/name`, for messages.
    fn object(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }
}

/// How the store secret of `spec` is created when it is missing.
fn creation(spec: &ValidatedSpec) -> Creation {
    match &spec.database {
        None => Creation::Generated,
        Some(db) if db.server.admin.is_some() => Creation::Unknown,
        Some(_) => Creation::Adopted,
    }
}

/// What the status records that the planner reads, before this reconcile acted and after.
#[derive(Debug, Clone, Default, PartialEq)]
struct Facts {
    last_rotate_now: Option<String>,
    pending_rotate_now: Option<PendingRotateNow>,
    failed_attempts: u32,
    last_failure: Option<Timestamp>,
    last_rollback_request: Option<String>,
    last_rollback_done: Option<(String, Timestamp)>,
}

impl Facts {
    fn before(st: &SecretRotationStatus) -> Facts {
        Facts {
            last_rotate_now: st.last_rotate_now.clone(),
            pending_rotate_now: st.pending_rotate_now.as_ref().map(|p| PendingRotateNow {
                value: p.value.clone(),
                from_version: p.from_version.clone(),
            }),
            failed_attempts: st.failed_attempts,
            last_failure: st.last_failure.as_ref().map(|f| f.time.0),
            last_rollback_request: st.last_rollback.as_ref().map(|r| r.request.clone()),
            last_rollback_done: st
                .last_rollback
                .as_ref()
                .filter(|r| r.result == RollbackResult::Done)
                .map(|r| (r.version_id.clone(), r.time.0)),
        }
    }

    /// The facts once `acted` is recorded: a rotation clears the failures, a handled rotate-now is done,
    /// a handled rollback request is the last one.
    fn after(&self, acted: &Acted) -> Facts {
        let mut f = self.clone();
        if let Some(v) = &acted.rotate_now_done {
            f.last_rotate_now = Some(v.clone());
            f.pending_rotate_now = None;
        }
        if acted.rotated_task.is_some() {
            f.failed_attempts = 0;
            f.last_failure = None;
        }
        if let Some(r) = &acted.rollback {
            f.last_rollback_request = Some(r.request.clone());
            if r.result == RollbackResult::Done {
                f.last_rollback_done = Some((r.version_id.clone(), r.time.0));
            }
        }
        f
    }
}

/// Counts a reconcile in flight for as long as it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn start(g: &prometheus_client::metrics::gauge::Gauge) -> InFlight {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests;
