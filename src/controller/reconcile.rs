//! The reconcile: read, ask the planner, apply its decision, write only what changed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as KubeAction;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::status::{reasons, same, set_conditions};
use super::synced::{data_hmac, desired_data, desired_secret, up_to_date};
use super::{Context, Error, restart};
use crate::api::{
    ANNOTATION_ROTATE_NOW, DatabaseMode, FIELD_MANAGER, PendingRotateNowStatus, RotationFailure,
    SecretRotation, SecretRotationStatus,
};
use crate::database;
use crate::metrics::{OperationLabel, ResourceLabel, ResultLabel};
use crate::planner::{self, Action, Input, PendingRotateNow, Reason, Timing};
use crate::secret_value::SecretValue;
use crate::store::model::*;
use crate::store::target::PasswordTarget;
use crate::store::{StoreError, StoreResult};
use crate::validation::{database_port, validate};

/// The store's SYSCURRENT, as the reconcile sees it.
enum Current {
    /// A value the synced Secret can hold.
    Usable(Version),
    /// A database secret whose password is not known yet (created for an administrator to set).
    Unknown,
    /// No such secret.
    Missing,
}

fn ms_to_ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A status time. The apiserver keeps whole seconds; a finer time would never compare equal to the
/// stored one, and every reconcile would write the status again.
fn seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn timing(sr: &SecretRotation) -> Option<Timing> {
    let r = &sr.spec.rotation;
    if let Some(p) = r.period.as_deref() {
        return planner::duration::parse_duration(p)
            .ok()
            .map(Timing::Period);
    }
    let schedule = planner::schedule::Schedule::parse(r.schedule.as_deref()?).ok()?;
    let window = r
        .window
        .as_deref()
        .and_then(|w| planner::duration::parse_duration(w).ok());
    Some(Timing::Schedule {
        schedule: Box::new(schedule),
        window,
    })
}

/// A failure that becomes a condition (and a failed attempt when it is a rotation).
struct Failure {
    code: String,
    message: String,
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let code = match &e {
            StoreError::RotationFailed { code, .. } => code.clone(),
            other => other.code().to_owned(),
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

struct Reconciler<'a> {
    sr: &'a SecretRotation,
    ctx: &'a Context,
    ns: String,
    name: String,
    project: String,
    store_name: String,
}

impl Reconciler<'_> {
    fn object(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.to_owned(),
            secondary: None,
        };
        self.ctx.events.publish(self.sr.object_ref(&()), ev);
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Instant::now();
        let r = f.await;
        self.ctx
            .metrics
            .store_latency
            .get_or_create(&OperationLabel { operation })
            .observe(start.elapsed().as_secs_f64());
        r
    }

    /// Writes the whole status. A JSON merge patch (not server-side apply): Kubernetes 1.20 turns a field
    /// dropped from an applied status into null, which the schema refuses; a merge patch deletes it.
    /// `base` is the status as the apiserver holds it (the last one written, or the one read).
    async fn apply_status(
        &self,
        base: &SecretRotationStatus,
        status: &SecretRotationStatus,
    ) -> Result<(), Error> {
        let api: Api<SecretRotation> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let patch = status_patch(Some(base), status);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let old = serde_json::to_value(base).unwrap_or_default();
            let changed: Vec<&String> = patch
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                        .map(|(k, _)| k)
                        .collect()
                })
                .unwrap_or_default();
            tracing::debug!(object = %self.object(), ?changed, "writing the status");
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
        Ok(())
    }

    async fn read_current(&self) -> StoreResult<Current> {
        match self
            .timed(
                "show_version",
                self.ctx
                    .store
                    .show_version_by_stage(&self.project, &self.store_name, SYSCURRENT),
            )
            .await
        {
            Ok(v) => {
                if self.sr.spec.secret_type.is_database()
                    && DatabaseCredential::from_value(&v.value)
                        .is_some_and(|c| c.password.is_empty())
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

    async fn secret_value(&self, name: &str, key: &str) -> Result<Option<SecretValue>, Failure> {
        let api: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &self.ns);
        let s = api.get_opt(name).await.map_err(|e| Failure {
            code: "CONFIG".into(),
            message: format!("reading Secret {}/{name}: {e}", self.ns),
        })?;
        Ok(s.and_then(|s| s.data)
            .and_then(|d| d.get(key).map(|b| SecretValue::new(b.0.clone()))))
    }

    /// The database target, with the administrator's credentials and the CA read from Secrets.
    async fn target(&self) -> Result<Arc<dyn PasswordTarget>, Failure> {
        let Some(db) = &self.sr.spec.database else {
            return Err(Failure {
                code: "CONFIG".into(),
                message: "no database in the spec".into(),
            });
        };
        let admin = match &db.admin_secret_ref {
            None => None,
            Some(r) => {
                let missing = |what: &str| Failure {
                    code: "CONFIG".into(),
                    message: format!(
                        "adminSecretRef: Secret {}/{} has no key {what}",
                        self.ns, r.name
                    ),
                };
                let user = self
                    .secret_value(&r.name, &r.username_key)
                    .await?
                    .ok_or_else(|| missing(&r.username_key))?;
                let pw = self
                    .secret_value(&r.name, &r.password_key)
                    .await?
                    .ok_or_else(|| missing(&r.password_key))?;
                Some((user.expose_str().unwrap_or_default().to_owned(), pw))
            }
        };
        let ca_pem = match &db.tls.ca_secret_ref {
            None => None,
            Some(r) => Some(
                self.secret_value(&r.name, &r.key)
                    .await?
                    .ok_or_else(|| Failure {
                        code: "CONFIG".into(),
                        message: format!(
                            "tls.caSecretRef: Secret {}/{} has no key {}",
                            self.ns, r.name, r.key
                        ),
                    })?
                    .expose()
                    .to_vec(),
            ),
        };
        Ok(database::target(database::Connection {
            engine: db.engine,
            host: db.host.clone(),
            port: database_port(db.engine, db.port),
            database: db.database.clone(),
            tls: db.tls.mode,
            ca_pem,
            admin,
        }))
    }

    /// Creates the store secret (embedded store). `Ok(true)` when the value was adopted from an existing
    /// synced Secret (the caller then honours rotateOnCreate).
    async fn create_missing(&self) -> Result<bool, Failure> {
        let spec = &self.sr.spec;
        let mut req = CreateSecret {
            name: self.store_name.clone(),
            secret_type: Some(spec.secret_type.as_str().to_owned()),
            description: Some(format!(
                "managed by secret-rotator for SecretRotation {}",
                self.object()
            )),
            ..CreateSecret::default()
        };
        let mut adopted = false;
        match &spec.database {
            None => {
                let v = crate::password::generate(&spec.password).map_err(|e| Failure {
                    code: "CONFIG".into(),
                    message: e.to_string(),
                })?;
                req.secret_string = Some(v);
            }
            Some(db) => {
                let first = match db.mode {
                    DatabaseMode::SingleUser => db.username.clone().unwrap_or_default(),
                    DatabaseMode::MultiUser => db
                        .usernames
                        .as_ref()
                        .and_then(|u| u.first().cloned())
                        .unwrap_or_default(),
                };
                let password = if db.admin_secret_ref.is_some() {
                    // Unknown: the first rotation sets it through the administrator.
                    String::new()
                } else {
                    adopted = true;
                    self.secret_value(&self.sr.target_secret_name(), "password")
                        .await?
                        .and_then(|v| v.expose_str().map(str::to_owned))
                        .filter(|p| !p.is_empty())
                        .ok_or_else(|| Failure {
                            code: reasons::NEEDS_INITIAL_PASSWORD.into(),
                            message: format!(
                                "without adminSecretRef the operator needs {first}'s current password: put it under the key password of Secret {}/{}, or set adminSecretRef",
                                self.ns,
                                self.sr.target_secret_name()
                            ),
                        })?
                };
                req.secret_string = Some(
                    DatabaseCredential {
                        username: first,
                        password,
                    }
                    .to_value(),
                );
                let cfg = RotationConfig {
                    instance_id: format!("{}:{}", db.host, database_port(db.engine, db.port)),
                    secret_sub_type: format!("{:?}", db.mode),
                    usernames: db.usernames.clone().unwrap_or_default(),
                };
                req.rotation_config = serde_json::to_string(&cfg).ok();
            }
        }
        match self
            .timed(
                "create_secret",
                self.ctx.store.create_secret(&self.project, req),
            )
            .await
        {
            Ok(_) => {
                info!(object = %self.object(), secret = %self.store_name, "created the store secret");
                Ok(adopted)
            }
            // Created by a previous attempt that lost its answer.
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Carries out one rotation; returns the task id (empty for COMMON).
    async fn rotate(&self) -> Result<String, Failure> {
        let spec = &self.sr.spec;
        if spec.secret_type.is_database() {
            let target = self.target().await?;
            let r = self
                .timed(
                    "rotate",
                    self.ctx.store.rotate(
                        &self.project,
                        &self.store_name,
                        RotateOptions {
                            target: Some(target),
                            policy: Some(spec.password.clone()),
                        },
                    ),
                )
                .await?;
            Ok(r.rotation_task_id)
        } else {
            let v = crate::password::generate(&spec.password).map_err(|e| Failure {
                code: "CONFIG".into(),
                message: e.to_string(),
            })?;
            self.timed(
                "create_version",
                self.ctx.store.create_version(
                    &self.project,
                    &self.store_name,
                    CreateVersion {
                        secret_string: Some(v),
                        ..CreateVersion::default()
                    },
                ),
            )
            .await?;
            Ok(String::new())
        }
    }

    /// The task that produced the current version, for a status catching up after a restart.
    async fn latest_task(&self) -> Option<String> {
        let page = self
            .timed(
                "list_tasks",
                self.ctx.store.list_tasks(
                    &self.project,
                    TaskFilter {
                        secret_name: Some(self.store_name.clone()),
                        status: Some(TaskStatus::Success),
                        limit: Some(1),
                        ..TaskFilter::default()
                    },
                ),
            )
            .await
            .ok()?;
        page.tasks.into_iter().next().map(|t| t.task_id)
    }
}

/// `message` with any value of the Secret's data cut out (an apiserver message should never hold one;
/// this makes sure).
fn redact(message: &str, secret: &Secret) -> String {
    let mut out = message.to_owned();
    for v in secret.data.iter().flat_map(|d| d.values()) {
        if let Ok(text) = std::str::from_utf8(&v.0)
            && text.len() >= 4
        {
            out = out.replace(text, "<redacted>");
        }
    }
    out
}

/// The merge patch from `old` to `new`: every field of `new`, and null for each field only `old` has.
fn status_patch(
    old: Option<&SecretRotationStatus>,
    new: &SecretRotationStatus,
) -> serde_json::Value {
    let mut patch = serde_json::to_value(new).unwrap_or_default();
    if let (Some(old), Some(map)) = (
        old.and_then(|o| serde_json::to_value(o).ok()),
        patch.as_object_mut(),
    ) && let Some(old) = old.as_object()
    {
        for k in old.keys() {
            if !map.contains_key(k) {
                map.insert(k.clone(), serde_json::Value::Null);
            }
        }
    }
    patch
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

/// One reconcile of one SecretRotation.
pub async fn reconcile(sr: Arc<SecretRotation>, ctx: Arc<Context>) -> Result<KubeAction, Error> {
    if ctx.freshness.status_is_stale(&sr.metadata) {
        // The watch has not delivered this resource's last status write yet; its newer copy wakes the
        // controller again. Acting on this one would repeat that write (or a rotate-now).
        tracing::debug!(namespace = sr.namespace().unwrap_or_default(), name = %sr.name_any(), "stale copy; waiting for the watch");
        return Ok(KubeAction::requeue(Duration::from_secs(5)));
    }
    ctx.metrics.reconciles.inc();
    let _in_flight = InFlight::start(&ctx.metrics.reconciles_in_flight);
    let r = Reconciler {
        sr: &sr,
        ctx: &ctx,
        ns: sr.namespace().unwrap_or_default(),
        name: sr.name_any(),
        project: sr
            .spec
            .project_id
            .clone()
            .unwrap_or_else(|| ctx.project.clone()),
        store_name: sr.store_secret_name(),
    };
    let now = Timestamp::now();
    let now_time = seconds(now);
    let generation = sr.metadata.generation;
    let prev = sr.status.clone().unwrap_or_default();
    let mut st = prev.clone();
    st.observed_generation = generation;
    st.secret_name = Some(r.store_name.clone());

    // Rules the schema cannot hold.
    if let Err(invalid) = validate(&sr) {
        let msg = invalid
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        set_conditions(
            &mut st,
            &prev.conditions,
            generation,
            &now_time,
            (false, reasons::INVALID_SPEC, msg.clone()),
            (false, reasons::IDLE, String::new()),
        );
        if !same(&prev, &st) {
            r.apply_status(&prev, &st).await?;
            r.event(EventType::Warning, "InvalidSpec", msg).await;
        }
        return Ok(KubeAction::await_change());
    }
    if !ctx.policy.allows(&r.ns, &r.store_name) {
        let msg = format!(
            "namespace {} may not address store secret {}: names must start with \"{}.\" unless the operator's policy grants more",
            r.ns, r.store_name, r.ns
        );
        set_conditions(
            &mut st,
            &prev.conditions,
            generation,
            &now_time,
            (false, reasons::FORBIDDEN, msg.clone()),
            (false, reasons::IDLE, String::new()),
        );
        if !same(&prev, &st) {
            r.apply_status(&prev, &st).await?;
            r.event(EventType::Warning, "Forbidden", msg).await;
        }
        return Ok(KubeAction::await_change());
    }
    let Some(timing) = timing(&sr) else {
        // validate() accepted it, so this cannot happen; wait for a change rather than loop.
        return Ok(KubeAction::await_change());
    };

    let store_err = |e: StoreError| Error::Store {
        action: "reading",
        object: r.store_name.clone(),
        source: e,
    };
    let mut current = match r.read_current().await {
        Ok(c) => c,
        Err(e) if e.is_transient() || e.status() >= 500 => {
            let msg = format!("the store could not be read: {e}");
            set_conditions(
                &mut st,
                &prev.conditions,
                generation,
                &now_time,
                (false, reasons::STORE_UNAVAILABLE, msg),
                (false, reasons::IDLE, String::new()),
            );
            if !same(&prev, &st) {
                r.apply_status(&prev, &st).await?;
            }
            return Err(store_err(e));
        }
        Err(e) => return Err(store_err(e)),
    };

    let mut adopted = false;
    let mut bootstrapped = false;
    let mut failure: Option<Failure> = None;
    if matches!(current, Current::Missing) {
        if !ctx.creates_missing {
            let msg = format!(
                "the secret {} does not exist in CSMS project {}: create it there first (the csms backend never creates secrets)",
                r.store_name, r.project
            );
            set_conditions(
                &mut st,
                &prev.conditions,
                generation,
                &now_time,
                (false, reasons::SECRET_NOT_FOUND, msg.clone()),
                (false, reasons::IDLE, String::new()),
            );
            if !same(&prev, &st) {
                r.apply_status(&prev, &st).await?;
                r.event(EventType::Warning, "SecretNotFound", msg).await;
            }
            return Ok(KubeAction::requeue(Duration::from_secs(60)));
        }
        if sr.spec.suspend {
            set_conditions(
                &mut st,
                &prev.conditions,
                generation,
                &now_time,
                (
                    false,
                    reasons::SUSPENDED,
                    "suspended before the store secret was created".into(),
                ),
                (false, reasons::IDLE, String::new()),
            );
            if !same(&prev, &st) {
                r.apply_status(&prev, &st).await?;
            }
            return Ok(KubeAction::await_change());
        }
        match r.create_missing().await {
            Ok(a) => {
                adopted = a;
                current = r.read_current().await.map_err(store_err)?;
                if matches!(current, Current::Usable(_)) && !adopted {
                    ctx.metrics
                        .rotations
                        .get_or_create(&ResultLabel {
                            result: "success",
                            reason: "bootstrap",
                        })
                        .inc();
                    // Announced with the synced Secret's write, in one event.
                    bootstrapped = true;
                }
            }
            Err(f) => failure = Some(f),
        }
    }

    let (current_id, current_created) = match &current {
        Current::Usable(v) => (
            Some(v.version_metadata.id.clone()),
            ms_to_ts(v.version_metadata.create_time),
        ),
        _ => (None, now),
    };
    let rotate_now = sr.annotations().get(ANNOTATION_ROTATE_NOW).cloned();
    let created = sr
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    // The planner's view of the resource with status `st` and the store's current version.
    let plan_for = |st: &SecretRotationStatus, current: Option<(&str, Timestamp)>| {
        let pending = st.pending_rotate_now.as_ref().map(|p| PendingRotateNow {
            value: p.value.clone(),
            from_version: p.from_version.clone(),
        });
        planner::plan(&Input {
            now,
            timing: &timing,
            suspend: sr.spec.suspend,
            rotate_on_create: sr.spec.rotation.rotate_on_create,
            // An adopted value predates the resource in every sense that matters.
            created: if adopted { Timestamp::MAX } else { created },
            rotate_now: rotate_now.as_deref(),
            last_rotate_now: st.last_rotate_now.as_deref(),
            pending_rotate_now: pending.as_ref(),
            failed_attempts: st.failed_attempts,
            last_failure: st.last_failure.as_ref().map(|f| f.time.0),
            current,
            jitter: rand::random::<f64>(),
        })
    };
    let plan = plan_for(&prev, current_id.as_deref().map(|id| (id, current_created)));
    let plan = if failure.is_some() {
        // Creating the store secret failed: that is this attempt's failure.
        planner::Plan {
            action: Action::Backoff,
            ..plan
        }
    } else {
        plan
    };

    // The status as the apiserver holds it, for the next write's comparison and merge patch.
    let mut written = prev.clone();
    let mut rotated_task: Option<String> = None;
    match &plan.action {
        Action::Rotate(reason) => {
            if let Reason::RotateNow(v) = reason
                && prev.pending_rotate_now.as_ref().map(|p| &p.value) != Some(v)
            {
                // Record the intent first: after a restart the store tells whether it happened.
                st.pending_rotate_now = Some(PendingRotateNowStatus {
                    value: v.clone(),
                    from_version: current_id.clone().unwrap_or_default(),
                });
                set_conditions(
                    &mut st,
                    &prev.conditions,
                    generation,
                    &now_time,
                    (
                        prev.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True"),
                        reasons::SYNCED,
                        "rotating".into(),
                    ),
                    (
                        true,
                        reasons::IN_PROGRESS,
                        format!("rotating for rotate-now {v}"),
                    ),
                );
                r.apply_status(&written, &st).await?;
                written = st.clone();
            }
            let started = Instant::now();
            info!(object = %r.object(), secret = %r.store_name, reason = reason.as_str(), "rotating");
            match r.rotate().await {
                Ok(task) => {
                    if ctx.failpoint.as_deref() == Some("abort-after-store-rotation") {
                        warn!("failpoint abort-after-store-rotation: aborting");
                        std::process::abort();
                    }
                    ctx.metrics
                        .rotation_duration
                        .observe(started.elapsed().as_secs_f64());
                    ctx.metrics
                        .rotations
                        .get_or_create(&ResultLabel {
                            result: "success",
                            reason: reason.as_str(),
                        })
                        .inc();
                    rotated_task = Some(task);
                    st.failed_attempts = 0;
                    st.last_failure = None;
                    if let Reason::RotateNow(v) = reason {
                        st.last_rotate_now = Some(v.clone());
                        st.pending_rotate_now = None;
                    }
                    current = r.read_current().await.map_err(store_err)?;
                }
                Err(f) => {
                    ctx.metrics
                        .rotations
                        .get_or_create(&ResultLabel {
                            result: "failure",
                            reason: reason.as_str(),
                        })
                        .inc();
                    failure = Some(f);
                }
            }
        }
        Action::CompleteRotateNow(v) => {
            st.last_rotate_now = Some(v.clone());
            st.pending_rotate_now = None;
        }
        Action::Sync | Action::Backoff => {}
    }

    // After a rotation (or a completed rotate-now) the next due time counts from the new state.
    let plan = if rotated_task.is_some() || matches!(plan.action, Action::CompleteRotateNow(_)) {
        let after = match &current {
            Current::Usable(v) => Some((
                v.version_metadata.id.as_str(),
                ms_to_ts(v.version_metadata.create_time),
            )),
            _ => None,
        };
        planner::Plan {
            action: plan.action.clone(),
            ..plan_for(&st, after)
        }
    } else {
        plan
    };
    let mut requeue = plan.requeue_after;
    if let Some(f) = &failure {
        st.failed_attempts = prev.failed_attempts.saturating_add(1);
        st.last_failure = Some(RotationFailure {
            time: now_time.clone(),
            error_code: f.code.chars().take(64).collect(),
            message: f.message.chars().take(1024).collect(),
        });
        requeue = planner::backoff::delay(st.failed_attempts, rand::random::<f64>());
        warn!(object = %r.object(), code = %f.code, error = %f.message, attempt = st.failed_attempts, "rotation failed");
        r.event(
            EventType::Warning,
            "RotationFailed",
            format!("{}: {}", f.code, f.message),
        )
        .await;
    }

    // The synced Secret follows SYSCURRENT.
    let mut ready: (bool, &str, String) = (false, reasons::SUSPENDED, String::new());
    if let Current::Usable(v) = &current {
        let version_id = v.version_metadata.id.clone();
        let task_id = match &rotated_task {
            Some(t) => t.clone(),
            None if !sr.spec.secret_type.is_database() => String::new(),
            None if prev.version_id.as_deref() == Some(version_id.as_str()) => {
                prev.rotation_task_id.clone().unwrap_or_default()
            }
            None => r.latest_task().await.unwrap_or_default(),
        };
        let data = desired_data(&sr, v).map_err(|e| Error::Store {
            action: "building the synced Secret from",
            object: r.store_name.clone(),
            source: StoreError::invalid("secret_string", e.to_string()),
        })?;
        let hmac = data_hmac(&ctx.hmac_key, &data);
        let desired = desired_secret(&sr, data, &version_id, &task_id);
        let target_name = sr.target_secret_name();
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &r.ns);
        // From the watch cache (once it has listed), or the operator's own newer apply.
        let cached = ctx.secrets.get(&r.ns, &target_name).await;
        let existing = ctx.freshness.secret_view(&r.ns, &target_name, cached);
        let changed = existing.as_deref().is_none_or(|e| !up_to_date(&desired, e));
        if changed {
            let applied = match secrets
                .patch(
                    &target_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await
            {
                Ok(applied) => applied,
                // Refused for what it is (too large, immutable, a type that cannot change, no access):
                // retrying soon cannot help. Say why and look again after a while or on a change.
                Err(kube::Error::Api(ae)) if matches!(ae.code, 400 | 403 | 409 | 422) => {
                    let msg = redact(
                        &format!(
                            "the apiserver refused Secret {}/{target_name} ({}): {}",
                            r.ns, ae.code, ae.message
                        ),
                        &desired,
                    );
                    warn!(object = %r.object(), error = %msg, "synced Secret refused");
                    set_conditions(
                        &mut st,
                        &prev.conditions,
                        generation,
                        &now_time,
                        (false, reasons::SECRET_REJECTED, msg.clone()),
                        (false, reasons::IDLE, String::new()),
                    );
                    st.next_rotation_time = plan.next_rotation.map(seconds);
                    if !same(&written, &st) {
                        r.apply_status(&written, &st).await?;
                        r.event(EventType::Warning, "SecretRejected", msg).await;
                    }
                    return Ok(KubeAction::requeue(Duration::from_secs(300)));
                }
                Err(source) => {
                    return Err(Error::Kube {
                        action: "applying the synced Secret",
                        object: format!("{}/{target_name}", r.ns),
                        source,
                    });
                }
            };
            ctx.freshness.secret_applied(applied);
            if bootstrapped {
                r.event(
                    EventType::Normal,
                    "Rotated",
                    format!(
                        "created store secret {} with a generated value {version_id}; Secret {target_name} written",
                        r.store_name
                    ),
                )
                .await;
            } else if rotated_task.is_some() {
                r.event(
                    EventType::Normal,
                    "Rotated",
                    format!(
                        "rotated store secret {} to {version_id}; Secret {target_name} updated",
                        r.store_name
                    ),
                )
                .await;
            } else {
                r.event(
                    EventType::Normal,
                    "Synced",
                    format!(
                        "Secret {target_name} written from {} {version_id}",
                        r.store_name
                    ),
                )
                .await;
            }
        }
        let data_changed = existing.as_deref().is_none_or(|e| e.data != desired.data);
        if rotated_task.is_some() && data_changed {
            let at = now.to_string();
            for t in &sr.spec.restart_targets {
                match restart::restart(&ctx.client, &r.ns, t.kind, &t.name, &at).await {
                    Ok(restart::Restarted::Done) => {
                        r.event(
                            EventType::Normal,
                            "RestartTriggered",
                            format!("restarted {:?} {}", t.kind, t.name),
                        )
                        .await
                    }
                    Ok(restart::Restarted::Missing) => {
                        r.event(
                            EventType::Warning,
                            "RestartTargetMissing",
                            format!("{:?} {} does not exist in {}", t.kind, t.name, r.ns),
                        )
                        .await
                    }
                    Err(e) => {
                        r.event(
                            EventType::Warning,
                            "RestartFailed",
                            format!("restarting {:?} {}: {e}", t.kind, t.name),
                        )
                        .await
                    }
                }
            }
        }
        st.version_id = Some(version_id.clone());
        st.rotation_task_id = (!task_id.is_empty()).then_some(task_id);
        st.last_rotation_time = Some(seconds(ms_to_ts(v.version_metadata.create_time)));
        st.current_user = DatabaseCredential::from_value(&v.value)
            .filter(|_| sr.spec.secret_type.is_database())
            .map(|c| c.username.clone());
        st.data_hmac = Some(hmac);
        ready = (
            true,
            reasons::SYNCED,
            format!("Secret {target_name} holds {} {version_id}", r.store_name),
        );
    }
    st.next_rotation_time = plan.next_rotation.map(seconds);
    if let Some(next) = plan.next_rotation {
        ctx.metrics
            .next_rotation
            .get_or_create(&ResourceLabel {
                namespace: r.ns.clone(),
                name: r.name.clone(),
            })
            .set(next.as_second());
    }
    // A failure of this reconcile, or one still standing while the retry waits for its backoff.
    let standing = failure
        .as_ref()
        .map(|f| (f.code.clone(), f.message.clone()))
        .or_else(|| {
            st.last_failure
                .as_ref()
                .filter(|_| st.failed_attempts > 0)
                .map(|f| (f.error_code.clone(), f.message.clone()))
        });
    if let Some((code, message)) = &standing {
        let held = st
            .version_id
            .as_deref()
            .map(|v| format!("; the synced Secret still holds {v}"))
            .unwrap_or_default();
        let reason = match code.as_str() {
            reasons::NEEDS_INITIAL_PASSWORD => reasons::NEEDS_INITIAL_PASSWORD,
            "CONFIG" => reasons::CONFIG_MISSING,
            _ => reasons::ROTATION_FAILED,
        };
        ready = (false, reason, format!("{code}: {message}{held}"));
    }
    let rotating = if st.failed_attempts > 0 {
        (
            true,
            reasons::RETRYING,
            format!(
                "attempt {} failed; retrying with backoff",
                st.failed_attempts
            ),
        )
    } else {
        (false, reasons::IDLE, String::new())
    };
    set_conditions(
        &mut st,
        &prev.conditions,
        generation,
        &now_time,
        ready,
        rotating,
    );
    if !same(&written, &st) {
        r.apply_status(&written, &st).await?;
    }
    Ok(KubeAction::requeue(requeue.max(Duration::from_secs(1))))
}
