//! The status of the database servers: `Ready` once the spec is valid and the administrator logs in, with
//! the reason otherwise. The check runs where the operator runs, against the server the platform team
//! declared, and again every few minutes; a SecretRotation never waits for it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::Context;
use super::error::StatusError;
use super::status::{Verdict, condition, seconds};
use crate::api::{
    CONDITION_READY, ClusterDatabaseServer, DatabaseServer, DatabaseServerStatus, FIELD_MANAGER,
};
use crate::reasons::Reason;
use crate::validation::server::{SecretKey, Server};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::database;

/// How often a server's login is checked again.
pub const RECHECK: Duration = Duration::from_secs(300);
/// How long one login check may take.
pub const LOGIN_DEADLINE: Duration = Duration::from_secs(15);

/// What the check found.
pub async fn verdict(ctx: &Context, server: Result<Server, String>) -> Verdict {
    let server = match server {
        Ok(s) => s,
        Err(e) => return Verdict::no(Reason::ServerInvalid, e),
    };
    let Some(keys) = &server.admin else {
        return Verdict::yes(
            Reason::Synced,
            "no administrator: SingleUser rotations log in as the account itself",
        );
    };
    let user = match read_key(&ctx.client, &keys.username).await {
        Ok(u) => u.expose_str().unwrap_or_default().to_owned(),
        Err(why) => return Verdict::no(Reason::LoginFailed, why),
    };
    let password = match read_key(&ctx.client, &keys.password).await {
        Ok(p) => p,
        Err(why) => return Verdict::no(Reason::LoginFailed, why),
    };
    let ca_pem = match &server.ca {
        None => None,
        Some(k) => match read_key(&ctx.client, k).await {
            Ok(v) => Some(v.expose().to_vec()),
            Err(why) => return Verdict::no(Reason::LoginFailed, why),
        },
    };
    let conn = database::Connection {
        engine: server.engine,
        host: server.host.clone(),
        port: server.port,
        database: server.database.clone(),
        tls: server.tls_mode,
        ca_pem,
        admin: Some((user.clone(), password.clone())),
    };
    let changer = database::changer_in(conn, ctx.admin_pool.clone());
    match tokio::time::timeout(LOGIN_DEADLINE, changer.test_login(&user, &password)).await {
        Ok(Ok(())) => Verdict::yes(
            Reason::LoggedIn,
            format!("the administrator {user} logged in"),
        ),
        Ok(Err(e)) => Verdict::no(
            Reason::LoginFailed,
            format!(
                "CSMS.0510.{}: {}",
                e.code,
                crate::sanitize::text(&e.message, 300)
            ),
        ),
        Err(_) => Verdict::no(
            Reason::LoginFailed,
            format!(
                "the administrator's login did not finish within {}s",
                LOGIN_DEADLINE.as_secs()
            ),
        ),
    }
}

async fn read_key(client: &Client, k: &SecretKey) -> Result<SecretValue, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &k.namespace);
    let s = api
        .get_opt(&k.name)
        .await
        .map_err(|e| format!("reading Secret {}/{}: {e}", k.namespace, k.name))?
        .ok_or_else(|| format!("Secret {}/{} does not exist", k.namespace, k.name))?;
    s.data
        .and_then(|d| d.get(&k.key).map(|b| SecretValue::new(b.0.clone())))
        .ok_or_else(|| format!("Secret {}/{} has no key {}", k.namespace, k.name, k.key))
}

/// The status with `verdict` as its Ready condition, keeping the transition time while it holds.
pub fn status_of(
    previous: Option<&DatabaseServerStatus>,
    generation: Option<i64>,
    verdict: Verdict,
) -> DatabaseServerStatus {
    let before: &[Condition] = previous.map(|p| p.conditions.as_slice()).unwrap_or(&[]);
    DatabaseServerStatus {
        observed_generation: generation,
        conditions: vec![condition(
            before,
            CONDITION_READY,
            verdict,
            generation,
            &seconds(jiff::Timestamp::now()),
        )],
    }
}

/// Whether two statuses say the same (the transition time aside, which `status_of` keeps).
fn same(a: Option<&DatabaseServerStatus>, b: &DatabaseServerStatus) -> bool {
    a.is_some_and(|a| {
        a.observed_generation == b.observed_generation
            && a.conditions.len() == b.conditions.len()
            && a.conditions.iter().zip(&b.conditions).all(|(x, y)| {
                (&x.type_, &x.status, &x.reason, &x.message)
                    == (&y.type_, &y.status, &y.reason, &y.message)
            })
    })
}

/// The status a check of `server` gives, when it differs from `previous`.
async fn changed_status(
    ctx: &Context,
    previous: Option<&DatabaseServerStatus>,
    generation: Option<i64>,
    server: Result<Server, String>,
) -> Option<DatabaseServerStatus> {
    let status = status_of(previous, generation, verdict(ctx, server).await);
    (!same(previous, &status)).then_some(status)
}

async fn write<K>(api: Api<K>, name: &str, status: &DatabaseServerStatus) -> Result<(), StatusError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({ "status": status });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(name, &pp, &Patch::Merge(&body))
        .await
        .map(|_| ())
        .map_err(|source| StatusError {
            object: name.to_owned(),
            source,
        })
}

async fn reconcile_cluster(
    obj: Arc<ClusterDatabaseServer>,
    ctx: Arc<Context>,
) -> Result<Action, StatusError> {
    let server = Server::of_cluster(&obj).map_err(|e| e.to_string());
    let generation = obj.metadata.generation;
    if let Some(status) = changed_status(&ctx, obj.status.as_ref(), generation, server).await {
        info!(server = %obj.name_any(), reason = %status.conditions[0].reason, "server status");
        write(
            Api::<ClusterDatabaseServer>::all(ctx.client.clone()),
            &obj.name_any(),
            &status,
        )
        .await?;
    }
    Ok(Action::requeue(RECHECK))
}

async fn reconcile_namespaced(
    obj: Arc<DatabaseServer>,
    ctx: Arc<Context>,
) -> Result<Action, StatusError> {
    let server = Server::of_namespaced(&obj).map_err(|e| e.to_string());
    let generation = obj.metadata.generation;
    if let Some(status) = changed_status(&ctx, obj.status.as_ref(), generation, server).await {
        let ns = obj.namespace().unwrap_or_default();
        info!(server = %format!("{ns}/{}", obj.name_any()), reason = %status.conditions[0].reason, "server status");
        write(
            Api::<DatabaseServer>::namespaced(ctx.client.clone(), &ns),
            &obj.name_any(),
            &status,
        )
        .await?;
    }
    Ok(Action::requeue(RECHECK))
}

fn retry<K>(_: Arc<K>, e: &StatusError, _: Arc<Context>) -> Action {
    warn!(error = %e, "writing a server's status failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// The namespaced servers' API: in one namespace, or all.
fn namespaced_api<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Runs the status loops of both server kinds until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop = async move {
        shutdown.await;
        let _ = tx.send(true);
    };
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let cluster = Controller::new(
        Api::<ClusterDatabaseServer>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .graceful_shutdown_on(wait(rx.clone()))
    .run(reconcile_cluster, retry, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let namespaced = futures::future::join_all(scopes.into_iter().map(|ns| {
        Controller::new(
            namespaced_api::<DatabaseServer>(client.clone(), ns),
            watcher::Config::default().any_semantic(),
        )
        .graceful_shutdown_on(wait(rx.clone()))
        .run(reconcile_namespaced, retry, ctx.clone())
        .for_each(|_| futures::future::ready(()))
    }));
    futures::join!(stop, cluster, namespaced);
}
