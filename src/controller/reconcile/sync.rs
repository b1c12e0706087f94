//! Sync: the synced Secret follows SYSCURRENT (server-side apply, only when it differs), and the restart
//! targets roll when a rotation changed its data.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::warn;

use super::Run;
use super::act::Acted;
use super::observe::Current;
use super::scoped::ScopedStore;
use crate::api::FIELD_MANAGER;
use crate::controller::error::SyncError;
use crate::controller::restart;
use crate::controller::status::from_millis;
use crate::controller::synced::{
    Held, Restart, RestartResult, SyncedState, data_hmac, desired_data, desired_secret, up_to_date,
};
use crate::validation::ValidatedSpec;
use crate::validation::spec::Pick;
use secret_rotator_store::StoreError;
use secret_rotator_store::model::{DatabaseCredential, SYSPREVIOUS, Version};

/// Brings the synced Secret to SYSCURRENT; restarts the restart targets after a rotation.
pub async fn sync(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    store: &ScopedStore<'_>,
    acted: &Acted,
) -> Result<SyncedState, SyncError> {
    let Current::Usable(v) = &acted.current else {
        return Ok(SyncedState::NoValue);
    };
    let version_id = v.version_metadata.id.clone();
    let moved_task = acted.moved_task();
    let task_id = match moved_task {
        Some(t) => t.to_owned(),
        // The task the status already names for this version (a rollback's, for a COMMON secret too).
        None if run.previous.version_id.as_deref() == Some(version_id.as_str()) => {
            run.previous.rotation_task_id.clone().unwrap_or_default()
        }
        None if !spec.secret_type.is_database() => String::new(),
        None => store.latest_task().await.ok().flatten().unwrap_or_default(),
    };
    let previous = if spec.synced.uses_previous() {
        read_previous(store).await?
    } else {
        None
    };
    let object = format!("{}/{}", run.ns, spec.synced.name);
    let data = desired_data(spec, v, previous.as_ref()).map_err(|e| SyncError::Build {
        object: object.clone(),
        store_secret: spec.store_secret.to_string(),
        source: StoreError::invalid("secret_string", e.to_string()),
    })?;
    let hmac = data_hmac(&run.ctx.hmac_key, &data);
    let desired = desired_secret(run.sr, &spec.synced, data, &version_id, &task_id);
    // From the watch cache (once it has listed), or the operator's own newer apply.
    let cached = run.ctx.secrets.get(&run.ns, &spec.synced.name).await;
    // A Secret outside the cache (one handed over with the adopt annotation) is the one observe read.
    let existing = run
        .ctx
        .freshness
        .secret_view(&run.ns, &spec.synced.name, cached)
        .or_else(|| acted.synced_seen.clone());
    let applied = existing.as_deref().is_none_or(|e| !up_to_date(&desired, e));
    if applied {
        let seen = existing.as_deref().and_then(|e| e.metadata.uid.clone());
        match write(run, &object, desired.clone(), seen).await? {
            Written::Done => {}
            Written::Refused(why) => return Ok(SyncedState::Rejected(why)),
            Written::Taken(why) => return Ok(SyncedState::Taken(why)),
        }
    }
    // Restart once per new version, whoever made it. Without a record (a new resource, or one from before
    // the record existed), only a rotation made here restarts, and the current version becomes the record.
    let restart_due = match run.previous.restarted_version.as_deref() {
        Some(done) => done != version_id,
        None => {
            acted.rotated_task.is_some()
                && existing.as_deref().is_none_or(|e| e.data != desired.data)
        }
    };
    let restarts = if restart_due {
        restart_all(run, spec).await
    } else {
        Vec::new()
    };
    let restart_failed = restarts
        .iter()
        .any(|r| matches!(r.result, RestartResult::Failed(_)));
    Ok(SyncedState::Holds(Held {
        secret: spec.synced.name.clone(),
        version_id: version_id.clone(),
        task_id,
        created: from_millis(v.version_metadata.create_time),
        current_user: DatabaseCredential::from_value(&v.value)
            .filter(|_| spec.secret_type.is_database())
            .map(|c| c.username.clone()),
        data_hmac: hmac,
        applied,
        restarts,
        // A failed restart is tried again at the next reconcile.
        restarted_version: (!restart_failed).then_some(version_id.clone()),
    }))
}

/// How a write of the synced Secret went.
enum Written {
    Done,
    /// The apiserver refused it for what it is (too large, immutable, another type, no access).
    Refused(String),
    /// Another Secret of that name is there now.
    Taken(String),
}

/// Writes the synced Secret: created when none was seen (an AlreadyExists means someone else made one
/// meanwhile), else applied with the UID that was seen as a precondition (a Secret deleted and made again
/// by someone else in between is not taken over).
async fn write(
    run: &Run<'_>,
    object: &str,
    mut desired: Secret,
    seen: Option<String>,
) -> Result<Written, SyncError> {
    let secrets: Api<Secret> = Api::namespaced(run.ctx.client.clone(), &run.ns);
    let name = desired.metadata.name.clone().unwrap_or_default();
    let result = match &seen {
        None => {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            secrets.create(&pp, &desired).await
        }
        Some(uid) => {
            desired.metadata.uid = Some(uid.clone());
            let params = PatchParams::apply(FIELD_MANAGER).force();
            secrets.patch(&name, &params, &Patch::Apply(&desired)).await
        }
    };
    match result {
        Ok(written) => {
            run.ctx.freshness.secret_applied(written);
            Ok(Written::Done)
        }
        Err(kube::Error::Api(ae))
            if ae.code == 409 && (seen.is_none() || ae.reason == "Conflict") =>
        {
            let why = format!(
                "Secret {object} was made by someone else while the operator was about to write it: nothing was written"
            );
            warn!(secret = %object, "the synced Secret was taken meanwhile");
            Ok(Written::Taken(why))
        }
        // Refused for what it is (too large, immutable, a type that cannot change, no access): retrying
        // soon cannot help. Say why and look again after a while or on a change.
        Err(kube::Error::Api(ae)) if matches!(ae.code, 400 | 403 | 409 | 422) => {
            let msg = redact(
                &format!(
                    "the apiserver refused Secret {object} ({}): {}",
                    ae.code,
                    crate::sanitize::text(&ae.message, 512)
                ),
                &desired,
            );
            warn!(error = %msg, "synced Secret refused");
            Ok(Written::Refused(msg))
        }
        Err(source) => Err(SyncError::Apply {
            object: object.to_owned(),
            source,
        }),
    }
}

/// The store's SYSPREVIOUS, for templates that use `previous.*`; none before a second version exists.
async fn read_previous(store: &ScopedStore<'_>) -> Result<Option<Version>, SyncError> {
    match store.version_at(SYSPREVIOUS).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status() == 404 => Ok(None),
        Err(source) => Err(SyncError::ReadPrevious {
            store_secret: store.name.to_owned(),
            source,
        }),
    }
}

/// Restarts every restart target: the named ones, and those a selector matches now.
async fn restart_all(run: &Run<'_>, spec: &ValidatedSpec) -> Vec<Restart> {
    // Whole seconds: a Rollout's restartAt is a metav1.Time.
    let at = run.now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let client = &run.ctx.client;
    let mut out = Vec::with_capacity(spec.restart_targets.len());
    for t in &spec.restart_targets {
        let names = match &t.pick {
            Pick::Name(n) => vec![n.clone()],
            Pick::Selector(sel) => match restart::matching(client, &run.ns, t.kind, sel).await {
                Ok(names) => names,
                Err(e) => {
                    out.push(Restart {
                        kind: t.kind,
                        name: format!("selector {sel}"),
                        result: RestartResult::Failed(e.to_string()),
                    });
                    continue;
                }
            },
        };
        for name in names {
            let result = match restart::restart(client, &run.ns, t.kind, &name, &at).await {
                Ok(restart::Restarted::Done) => RestartResult::Done,
                Ok(restart::Restarted::Missing) => RestartResult::Missing,
                Err(e) => RestartResult::Failed(e.to_string()),
            };
            out.push(Restart {
                kind: t.kind,
                name,
                result,
            });
        }
    }
    out
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
