//! The operator: kube-runtime wiring around a thin reconcile.

pub mod claim;
pub mod error;
pub mod events;
pub mod failure;
pub mod freshness;
pub mod leader;
pub mod policy;
mod reconcile;
pub mod restart;
pub mod server_status;
pub mod servers;
pub mod status;
pub mod synced;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::api::SecretRotation;
use crate::metrics::{CategoryLabel, Metrics};
use policy::NamespacePolicy;
use secret_rotator_store::Store;

/// What every reconcile shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// The backing store.
    pub store: Arc<dyn Store>,
    /// The project used when a resource names none.
    pub project: String,
    /// Whether missing store secrets are created (embedded store) or reported (csms).
    pub creates_missing: bool,
    /// Key of the status data HMAC.
    pub hmac_key: Zeroizing<Vec<u8>>,
    /// Namespace isolation policy.
    pub policy: NamespacePolicy,
    /// The shortest time between two rotations a resource may ask for (`--min-rotation-period`), and
    /// between two changes a person's request (rotate-now, rollback-to) may make.
    pub min_period: Duration,
    /// The oldest version a rollback may go back to (`--max-rollback-age`).
    pub max_rollback_age: Duration,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Where events go (published in the background).
    pub events: events::EventSink,
    /// Where outbound notifications go (posted in the background; does nothing without sinks).
    pub notifier: crate::notify::Notifier,
    /// The synced Secrets, from a watch (filled by [`run`] through the matching [`SecretCacheWriter`]).
    pub secrets: SecretCache,
    /// The operator's own writes until the watch caches show them.
    pub freshness: freshness::Freshness,
    /// Administrator connections kept open briefly between rotations (per server and credentials).
    pub admin_pool: Arc<secret_rotator_store::database::pool::AdminPool>,
    /// Consecutive failed reconciles per resource.
    pub retries: Retries,
    /// The database servers (filled by [`run`] through the matching [`servers::ServerCacheWriter`]).
    pub servers: servers::ServerCache,
}

/// The synced Secrets as the watch last listed them.
#[derive(Clone)]
pub struct SecretCache {
    store: reflector::Store<Secret>,
    listed: tokio::sync::watch::Receiver<bool>,
}

impl SecretCache {
    /// The Secret, once the first list is complete (before it, every Secret would look missing).
    ///
    /// Readiness is a watch channel set on the reflector's first `InitDone`, rather than
    /// `Store::wait_until_ready`: that one wakes only the last of several concurrent waiters (a
    /// oneshot receiver polled from several tasks), so concurrent reconciles would wait forever.
    pub async fn get(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        let mut listed = self.listed.clone();
        let _ = listed.wait_for(|l| *l).await;
        self.store
            .get(&ObjectRef::<Secret>::new(name).within(namespace))
    }
}

/// Fills a [`SecretCache`]; given to [`run`].
pub struct SecretCacheWriter {
    writer: Writer<Secret>,
    listed: tokio::sync::watch::Sender<bool>,
}

/// The cache of synced Secrets: the reader goes into [`Context::secrets`], the writer to [`run`].
pub fn secret_cache() -> (SecretCache, SecretCacheWriter) {
    let (store, writer) = reflector::store();
    let (tx, rx) = tokio::sync::watch::channel(false);
    (
        SecretCache { store, listed: rx },
        SecretCacheWriter { writer, listed: tx },
    )
}

pub use error::Error;

/// Counts the consecutive failed reconciles of each resource, for the retry delay of [`error_policy`].
#[derive(Debug, Default)]
pub struct Retries(std::sync::Mutex<std::collections::HashMap<String, u32>>);

impl Retries {
    /// One more failed reconcile of `object` (`namespace/name`); returns how many in a row.
    pub fn failed(&self, object: &str) -> u32 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(object.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// A reconcile of `object` succeeded: its count starts again.
    pub fn succeeded(&self, object: &str) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.remove(object);
    }
}

/// A failed reconcile is tried again after the backoff of its kind, growing with the failures in a row.
fn error_policy(sr: Arc<SecretRotation>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&CategoryLabel {
            category: err.category(),
        })
        .inc();
    let object = format!("{}/{}", sr.namespace().unwrap_or_default(), sr.name_any());
    let attempts = ctx.retries.failed(&object);
    let delay = err.kind().delay(attempts, rand::random::<f64>());
    warn!(%object, error = %err, attempts, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a cached object what the operator never reads and what makes up most of its size: the
/// managed fields (one entry per field manager, each listing every field it set) and kubectl's copy of the
/// last applied object. At 10,000 resources these were most of the operator's memory.
pub fn trim_cached<K: kube::Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Where the controller looks.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One namespace, or all.
    pub namespace: Option<String>,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    secrets_writer: SecretCacheWriter,
    servers_writer: servers::ServerCacheWriter,
    scope: Scope,
    concurrency: u16,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (rotations, secrets): (Api<SecretRotation>, Api<Secret>) = match &scope.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    info!(
        namespace = scope.namespace.as_deref().unwrap_or("<all>"),
        concurrency, "starting the controller"
    );
    let secret_events = secret_events(&ctx, secrets, secrets_writer);
    // The SecretRotations, cached as the reconcile reads them (without the fields it never reads).
    let (rotations_cache, rotations_writer) = reflector::store();
    let rotation_events = reflector::reflector(
        rotations_writer,
        watcher(rotations, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(trim_cached),
    )
    .applied_objects();
    // A server's change wakes the resources that name it.
    let (cluster_events, namespaced_events) = server_events(&client, &scope, servers_writer);
    let (named_cluster, named_namespaced) = (rotations_cache.clone(), rotations_cache.clone());
    // A status write wakes the controller once more; that reconcile finds nothing to do and writes
    // nothing (see reconcile: every write is preceded by a comparison).
    let server_loops = server_status::run(
        ctx.clone(),
        scope.namespace.iter().cloned().collect(),
        shutdown_signal_clone(&shutdown_rx),
    );
    let rotations_loop = Controller::for_stream(rotation_events, rotations_cache)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .watches_stream(secret_events, |s: Secret| {
            let owner = s.labels().get(synced::LABEL_OWNER).cloned();
            let ns = s.namespace();
            owner.map(|o| {
                ObjectRef::<SecretRotation>::new(&o).within(ns.as_deref().unwrap_or_default())
            })
        })
        .watches_stream(
            cluster_events,
            move |s: crate::api::ClusterDatabaseServer| {
                naming(
                    &named_cluster,
                    crate::api::ServerKind::ClusterDatabaseServer,
                    &s.name_any(),
                    None,
                )
            },
        )
        .watches_stream(namespaced_events, move |s: crate::api::DatabaseServer| {
            let ns = s.namespace();
            naming(
                &named_namespaced,
                crate::api::ServerKind::DatabaseServer,
                &s.name_any(),
                ns.as_deref(),
            )
        })
        .graceful_shutdown_on(shutdown_signal_clone(&shutdown_rx))
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let stop = async move {
        shutdown.await;
        let _ = shutdown_tx.send(true);
    };
    futures::join!(stop, rotations_loop, server_loops);
    info!("controller stopped");
}

/// The synced Secrets' watch: it fills the cache and wakes the SecretRotation a changed Secret belongs to.
fn secret_events(
    ctx: &Arc<Context>,
    secrets: Api<Secret>,
    secrets_writer: SecretCacheWriter,
) -> impl futures::Stream<Item = Result<Secret, watcher::Error>> + Send + 'static {
    let synced_selector = format!("{}={}", synced::LABEL_MANAGED_BY, synced::MANAGED_BY);
    // The synced Secrets are cached by a reflector: a reconcile reads them from memory, and a change to
    // one wakes its SecretRotation (drift is restored). A deletion also drops the operator's record of
    // its last apply, so that the reconcile it wakes sees the Secret missing.
    let fresh = ctx.clone();
    let SecretCacheWriter { writer, listed } = secrets_writer;
    // Until the first list of the synced Secrets is complete, its objects wake nothing: every
    // SecretRotation is reconciled once for the first list of SecretRotations, and each reconcile waits
    // for this list before it reads a Secret. Waking it again for its Secret would reconcile it twice
    // after each start. A later re-list (after the watch lost its place) wakes as usual, since changes
    // made meanwhile must be looked at.
    let mut first_list = true;
    reflector::reflector(
        writer,
        watcher(
            secrets,
            watcher::Config::default()
                .labels(&synced_selector)
                .any_semantic(),
        )
        // While the apiserver is away, retry the watch with backoff instead of at once.
        .default_backoff()
        .modify(trim_cached),
    )
    .try_filter_map(move |ev| {
        let woken = match ev {
            watcher::Event::Delete(s) => {
                fresh.freshness.secret_gone(&s.metadata);
                Some(s)
            }
            watcher::Event::Apply(s) => Some(s),
            watcher::Event::InitApply(s) => (!first_list).then_some(s),
            watcher::Event::InitDone => {
                first_list = false;
                listed.send_replace(true);
                None
            }
            watcher::Event::Init => None,
        };
        futures::future::ready(Ok(woken))
    })
}

/// A future that resolves once `rx` says the controller stops.
fn shutdown_signal_clone(
    rx: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The resources that name a server of this kind and name (DatabaseServer: in its namespace).
fn naming(
    rotations: &reflector::Store<SecretRotation>,
    kind: crate::api::ServerKind,
    name: &str,
    namespace: Option<&str>,
) -> Vec<ObjectRef<SecretRotation>> {
    rotations
        .state()
        .iter()
        .filter(|sr| {
            sr.spec.database.as_ref().is_some_and(|d| {
                d.server_ref.kind == kind
                    && d.server_ref.name == name
                    && namespace.is_none_or(|ns| sr.metadata.namespace.as_deref() == Some(ns))
            })
        })
        .map(|sr| ObjectRef::from_obj(sr.as_ref()))
        .collect()
}

/// The watches of both server kinds: they fill the cache and say when each has listed; each change
/// wakes the resources that name the server.
fn server_events(
    client: &Client,
    scope: &Scope,
    writer: servers::ServerCacheWriter,
) -> (
    impl futures::Stream<Item = Result<crate::api::ClusterDatabaseServer, watcher::Error>>
    + Send
    + 'static,
    impl futures::Stream<Item = Result<crate::api::DatabaseServer, watcher::Error>> + Send + 'static,
) {
    use crate::api::{ClusterDatabaseServer, DatabaseServer};
    let servers::ServerCacheWriter {
        cluster,
        namespaced,
        listed,
    } = writer;
    let listed = Arc::new(listed);
    let cluster_events = objects_once_listed(
        reflector::reflector(
            cluster,
            watcher(
                Api::<ClusterDatabaseServer>::all(client.clone()),
                watcher::Config::default().any_semantic(),
            )
            .default_backoff()
            .modify(trim_cached),
        ),
        listed.clone(),
        |l| l.0 = true,
    );
    let api: Api<DatabaseServer> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let namespaced_events = objects_once_listed(
        reflector::reflector(
            namespaced,
            watcher(api, watcher::Config::default().any_semantic())
                .default_backoff()
                .modify(trim_cached),
        ),
        listed,
        |l| l.1 = true,
    );
    (cluster_events, namespaced_events)
}

/// The objects a server watch delivers (each wakes the resources naming it); its first complete list is
/// marked in `listed` by `mark`.
fn objects_once_listed<K: Send + 'static>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    listed: Arc<tokio::sync::watch::Sender<(bool, bool)>>,
    mark: fn(&mut (bool, bool)),
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    events.try_filter_map(move |ev| {
        futures::future::ready(Ok(match ev {
            watcher::Event::Apply(s) | watcher::Event::Delete(s) | watcher::Event::InitApply(s) => {
                Some(s)
            }
            watcher::Event::InitDone => {
                listed.send_modify(mark);
                None
            }
            watcher::Event::Init => None,
        }))
    })
}
