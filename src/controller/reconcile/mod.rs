//! One reconcile of one SecretRotation, as a pipeline:
//!
//! 1. [`gate`]: validate into a typed spec and apply the namespace policy;
//! 2. [`observe`]: read the store's SYSCURRENT (creating the store secret on the embedded store);
//! 3. plan: the pure [`planner`] decides what is due;
//! 4. [`act`]: rotate, when due;
//! 5. [`sync`]: the synced Secret and the restart targets;
//! 6. status: the pure [`status`](crate::controller::status) module turns all of it into the new status and
//!    its events, written only when something changed.
//!
//! A step that stops early returns a [`Halt`]; every early stop leaves through [`Run::stop`].

mod act;
mod gate;
mod history;
mod observe;
mod rollback;
mod sync;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as KubeAction;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{Instrument, warn};

use super::failure::{Blocked, Failure, Halt, Then};
use super::status::{self, Frame, Outcome, Settled, SyncedState, Verdict};
use super::{Context, Error};
use crate::api::{FIELD_MANAGER, SecretRotation, SecretRotationStatus};
use crate::metrics::{OperationLabel, ResourceLabel};
use crate::notify;
use crate::validation::ValidatedSpec;
use secret_rotator_core::planner::{self, Action, Input, PendingRotateNow, Plan};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::StoreResult;

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
    Run::new(&sr, &ctx).drive().instrument(span).await
}

/// The state of one reconcile as it goes through the steps.
pub struct Run<'a> {
    sr: &'a SecretRotation,
    ctx: &'a Context,
    ns: String,
    name: String,
    now: Timestamp,
    /// The status as the resource was read.
    previous: SecretRotationStatus,
    /// The status so far (the previous one, with a rotate-now intent once recorded).
    status: SecretRotationStatus,
    /// The status as the apiserver holds it: the last one written, or the one read.
    written: SecretRotationStatus,
}

impl<'a> Run<'a> {
    fn new(sr: &'a SecretRotation, ctx: &'a Context) -> Run<'a> {
        let previous = sr.status.clone().unwrap_or_default();
        Run {
            sr,
            ctx,
            ns: sr.namespace().unwrap_or_default(),
            name: sr.name_any(),
            now: Timestamp::now(),
            status: previous.clone(),
            written: previous.clone(),
            previous,
        }
    }

    /// The steps, in order.
    async fn drive(mut self) -> Result<KubeAction, Error> {
        let spec = match gate::admit(self.sr, self.ctx) {
            Ok(spec) => spec,
            Err(blocked) => return self.stop(None, Halt::Blocked(blocked)).await,
        };
        self.status = self.frame(&spec).base();
        let observed = match observe::observe(&self, &spec).await {
            Ok(o) => o,
            Err(halt) => return self.stop(Some(&spec), halt).await,
        };
        let adopted = observed.adopted;
        let bootstrapped = observed.bootstrapped;
        let mut plan = self.plan(&spec, &self.status, observed.current.version(), adopted);
        if observed.failure.is_some() {
            // Creating the store secret failed: that is this attempt's failure.
            plan.action = Action::Backoff;
        }
        let acted = act::act(&mut self, &spec, &plan, observed).await?;
        let mut st = self.status.clone();
        status::record_action(
            &mut st,
            acted.rotated_task.is_some(),
            acted.rotate_now_done.as_deref(),
        );
        if let Some(r) = &acted.rollback {
            st.last_rollback = Some(r.clone());
        }
        let moved = acted.rotated_task.is_some() || acted.rolled_back_task.is_some();
        if moved || acted.rotate_now_done.is_some() {
            // After a rotation (or a completed rotate-now) the next due time counts from the new state.
            let action = plan.action.clone();
            plan = Plan {
                action,
                ..self.plan(&spec, &st, acted.current.version(), adopted)
            };
        }
        let rotated_task = acted.rotated_task.as_deref();
        let moved_task = rotated_task.or(acted.rolled_back_task.as_deref());
        let synced = sync::sync(&self, &spec, &acted.current, moved_task).await?;
        if let Some(versions) = history::versions(&self, &spec, &acted.current, moved).await {
            st.versions = versions;
        }
        let outcome = Outcome {
            bootstrapped,
            rotated: rotated_task.is_some(),
            failure: acted.failure.as_ref(),
            synced: &synced,
            next_rotation: plan.next_rotation,
            waiting_for_window: plan.waiting_for_window,
            rollback: acted.rollback.as_ref(),
        };
        let settled = status::settle(&self.frame(&spec), st, &self.written, &outcome);
        self.finish(&spec, settled, &plan, acted.failure.as_ref(), &synced)
            .await
    }

    /// Writes the settled status and events; decides when to look again.
    async fn finish(
        &mut self,
        spec: &ValidatedSpec,
        settled: Settled,
        plan: &Plan,
        failure: Option<&Failure>,
        synced: &SyncedState,
    ) -> Result<KubeAction, Error> {
        let mut requeue = plan.requeue_after;
        if let Some(f) = failure {
            let attempt = self.previous.failed_attempts.saturating_add(1);
            requeue = planner::backoff::delay(attempt, rand::random::<f64>());
            warn!(code = %f.code(), error = %f.message(), attempt, secret = %spec.store_secret, "rotation failed");
        }
        if matches!(synced, SyncedState::Rejected(_)) {
            requeue = Duration::from_secs(300);
            self.ctx.metrics.synced_secret_rejections.inc();
        }
        self.set_next_rotation_metric(plan.next_rotation);
        let store_secret = spec.store_secret.to_string();
        self.publish(settled, &store_secret, Some(&spec.sync_target.name))
            .await?;
        Ok(KubeAction::requeue(requeue.max(Duration::from_secs(1))))
    }

    /// The one exit of a reconcile that stops early: the condition (when it changed) and what comes next.
    async fn stop(
        &mut self,
        spec: Option<&ValidatedSpec>,
        halt: Halt,
    ) -> Result<KubeAction, Error> {
        let blocked = match halt {
            Halt::Failed(e) => return Err(*e),
            Halt::Blocked(b) => b,
        };
        let store_secret = match spec {
            Some(s) => s.store_secret.to_string(),
            None => self.sr.store_secret_name(),
        };
        // A blocked resource has no next rotation: its gauge goes, so that it cannot look overdue.
        self.set_next_rotation_metric(None);
        let frame = self.frame_for(&store_secret);
        let ready = Verdict::no(blocked.reason, blocked.message);
        let settled = status::blocked(&frame, &self.written, ready, blocked.announce);
        let secret = spec.map(|s| s.sync_target.name.as_str());
        self.publish(settled, &store_secret, secret).await?;
        match blocked.then {
            Then::AwaitChange => Ok(KubeAction::await_change()),
            Then::Requeue(d) => Ok(KubeAction::requeue(d)),
            Then::Fail(e) => Err(*e),
        }
    }

    /// The next-rotation gauge: set to `next`, or removed when there is none (suspended, blocked).
    fn set_next_rotation_metric(&self, next: Option<Timestamp>) {
        let label = ResourceLabel {
            namespace: self.ns.clone(),
            name: self.name.clone(),
        };
        match next {
            Some(next) => {
                self.ctx
                    .metrics
                    .next_rotation
                    .get_or_create(&label)
                    .set(next.as_second());
            }
            None => {
                self.ctx.metrics.next_rotation.remove(&label);
            }
        }
    }

    /// Writes the status (when it changed), then queues the events and the notifications, which never
    /// wait: both are delivered in the background.
    async fn publish(
        &mut self,
        settled: Settled,
        store_secret: &str,
        secret: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(st) = settled.status {
            self.write_status(st).await?;
        }
        let about = notify::About {
            namespace: &self.ns,
            name: &self.name,
            store_secret,
            secret,
            version_id: self.written.version_id.as_deref(),
            task_id: self.written.rotation_task_id.as_deref(),
        };
        for note in &settled.notes {
            self.ctx.notifier.notify(&about, note);
        }
        for note in settled.notes {
            let ev = Event {
                type_: if note.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: note.reason.as_str().to_owned(),
                note: Some(note.message.chars().take(1000).collect()),
                action: note.action(),
                secondary: None,
            };
            self.ctx.events.publish(self.sr.object_ref(&()), ev);
        }
        Ok(())
    }

    /// The planner's view of the resource with status `st` and the store's current version.
    fn plan(
        &self,
        spec: &ValidatedSpec,
        st: &SecretRotationStatus,
        current: Option<(&str, Timestamp)>,
        adopted: bool,
    ) -> Plan {
        let pending = st.pending_rotate_now.as_ref().map(|p| PendingRotateNow {
            value: p.value.clone(),
            from_version: p.from_version.clone(),
        });
        let created = self.sr.metadata.creation_timestamp.as_ref().map(|t| t.0);
        planner::plan(&Input {
            now: self.now,
            timing: &spec.timing,
            maintenance: spec.maintenance.as_ref(),
            suspend: spec.suspend,
            rotate_on_create: spec.rotate_on_create,
            // An adopted value predates the resource in every sense that matters.
            created: if adopted {
                Timestamp::MAX
            } else {
                created.unwrap_or(self.now)
            },
            rotate_now: spec.rotate_now.as_deref(),
            last_rotate_now: st.last_rotate_now.as_deref(),
            pending_rotate_now: pending.as_ref(),
            failed_attempts: st.failed_attempts,
            last_failure: st.last_failure.as_ref().map(|f| f.time.0),
            current: current
                .map(|(id, t)| (id, rollback::counted_from(st.last_rollback.as_ref(), id, t))),
            jitter: rand::random::<f64>(),
        })
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

    /// The CSMS project: the spec's, or the operator's default.
    fn project(&self, spec: &ValidatedSpec) -> String {
        spec.project
            .clone()
            .unwrap_or_else(|| self.ctx.project.clone())
    }

    /// Runs a store call, recording its latency.
    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Instant::now();
        let r = f.instrument(tracing::debug_span!("store", operation)).await;
        self.ctx
            .metrics
            .store_latency
            .get_or_create(&OperationLabel { operation })
            .observe(start.elapsed().as_secs_f64());
        r
    }

    /// The Secret named like the synced Secret: from the watch cache (or the operator's own newer apply);
    /// when those have none, from the apiserver, since the cache holds only the operator's Secrets.
    async fn synced_secret(&self, spec: &ValidatedSpec) -> Result<Option<Arc<Secret>>, Error> {
        let name = &spec.sync_target.name;
        let cached = self.ctx.secrets.get(&self.ns, name).await;
        if let Some(s) = self.ctx.freshness.secret_view(&self.ns, name, cached) {
            return Ok(Some(s));
        }
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let found = api.get_opt(name).await.map_err(|source| Error::Kube {
            action: "reading",
            object: format!("{}/{name}", self.ns),
            source,
        })?;
        Ok(found.map(Arc::new))
    }

    /// One key of a Secret in the resource's namespace.
    async fn secret_value(&self, name: &str, key: &str) -> Result<Option<SecretValue>, Failure> {
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let s = api.get_opt(name).await.map_err(|e| {
            Failure::ConfigurationMissing(format!("reading Secret {}/{name}: {e}", self.ns))
        })?;
        Ok(s.and_then(|s| s.data)
            .and_then(|d| d.get(key).map(|b| SecretValue::new(b.0.clone()))))
    }

    /// Writes the whole status. A JSON merge patch (not server-side apply): Kubernetes 1.20 turns a field
    /// dropped from an applied status into null, which the schema refuses; a merge patch deletes it.
    async fn write_status(&mut self, status: SecretRotationStatus) -> Result<(), Error> {
        let api: Api<SecretRotation> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let patch = status::merge_patch(&self.written, &status);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let changed = status::changed_fields(&self.written, &patch);
            tracing::debug!(?changed, "writing the status");
        }
        let body = serde_json::json!({ "status": patch });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let written = api
            .patch_status(&self.name, &pp, &Patch::Merge(&body))
            .await
            .map_err(|source| Error::Kube {
                action: "writing the status of",
                object: self.object(),
                source,
            })?;
        self.ctx.freshness.status_written(&written.metadata);
        self.status = status.clone();
        self.written = status;
        Ok(())
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
