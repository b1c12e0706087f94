//! `secret-rotator run`: the operator's start-up. Leader election, then the controller over the store,
//! with the metrics and health endpoints beside it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;

use super::notify_args::NotifyArgs;
use super::store_args::{StoreArgs, StoreKind, open_when_free};
use super::{BoxError, health, shutdown_signal};
use crate::controller::{self, Context, Scope, leader, policy::NamespacePolicy};
use crate::notify::{Notifier, Workers};
use secret_rotator_core::files::check_private;
use secret_rotator_store::embedded::crypto::MasterKey;

#[derive(Args, Debug)]
/// The arguments of `run`.
pub struct RunArgs {
    /// The backing store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// The CSMS project used when a SecretRotation names none (with the embedded store, a name space
    /// inside the store file).
    #[arg(long, default_value = "default", env = "SECRET_ROTATOR_PROJECT_ID")]
    pub csms_project_id: String,
    /// Watch one namespace only; all namespaces when absent.
    #[arg(long, env = "SECRET_ROTATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the metrics and health endpoints (/metrics, /healthz, /readyz).
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "SECRET_ROTATOR_METRICS_ADDR"
    )]
    pub metrics_addr: std::net::SocketAddr,
    /// Elect a leader through a Lease so that only one replica rotates.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "SECRET_ROTATOR_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the leader Lease (default: the watched namespace, or POD_NAMESPACE, or default).
    #[arg(long, env = "SECRET_ROTATOR_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "secret-rotator-leader")]
    pub lease_name: String,
    /// Lease duration in seconds; a new leader takes over this long after the old one stops renewing.
    #[arg(long, default_value_t = 15)]
    pub lease_duration_secs: u64,
    /// SecretRotations reconciled at once.
    #[arg(long, default_value_t = 4, env = "SECRET_ROTATOR_CONCURRENCY")]
    pub concurrency: u16,
    /// Key of the status dataHmac (any bytes, mode 0600). Default with the embedded store: derived from the
    /// master key. Required with --store csms.
    #[arg(long, env = "SECRET_ROTATOR_HMAC_KEY_FILE")]
    pub hmac_key_file: Option<PathBuf>,
    /// The shortest time between two rotations a SecretRotation may ask for (a period, or cron ticks):
    /// each database rotation is an ALTER and a rolling restart. Shorter ones get `InvalidSpec`.
    #[arg(long, default_value = "1m", value_parser = parse_period, env = "SECRET_ROTATOR_MIN_ROTATION_PERIOD")]
    pub min_rotation_period: std::time::Duration,
    /// The oldest version a rollback may go back to (by its creation time): an old password may be one
    /// that leaked, or one a failure made the operator leave.
    #[arg(long, default_value = "30d", value_parser = parse_period, env = "SECRET_ROTATOR_MAX_ROLLBACK_AGE")]
    pub max_rollback_age: std::time::Duration,
    /// Namespace policy (YAML: `namespaces`, `projects`, `adoptStoreSecrets`;
    /// see the README).
    #[arg(long, env = "SECRET_ROTATOR_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// Outbound notifications.
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// Runs the operator until SIGINT or SIGTERM.
pub async fn run(args: RunArgs) -> Result<(), BoxError> {
    let (key_secret, key_file) = (&args.store.master_key_secret, &args.store.master_key_file);
    crate::master_key_secret::ensure_from_env(key_secret.as_deref(), key_file.as_deref()).await?;
    let hmac_key = hmac_key(&args)?;
    let policy = match &args.policy_file {
        Some(p) => NamespacePolicy::load(p)?,
        None => NamespacePolicy::default(),
    };
    secret_rotator_store::tls::install_crypto_provider();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    // Before connecting: a bad sink, key or CA stops the start at once.
    let (notifier, notify_workers) = match args.notify.config()? {
        Some(cfg) => Notifier::start(cfg, metrics.notify_counters())?,
        None => (Notifier::disabled(), Workers::none()),
    };
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to Kubernetes: {e}"))?;
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    health::start(
        args.metrics_addr,
        metrics.clone(),
        ready.clone(),
        stopped(stop_rx.clone()),
    )
    .await?;
    let operator = Operator {
        lease: lease_config(&args),
        ctx_parts: Shared {
            client,
            project: args.csms_project_id.clone(),
            creates_missing: args.store.store == StoreKind::Embedded,
            hmac_key,
            policy,
            min_period: args.min_rotation_period,
            max_rollback_age: args.max_rollback_age,
            metrics,
            notifier,
        },
        scope: Scope {
            namespace: args.namespace.clone(),
        },
        args,
        stop: stop_rx,
    };
    ready.store(true, Ordering::SeqCst);
    let result = operator.lead().await;
    // Notifications still queued are delivered (for a few seconds at most) once nothing can queue more.
    drop(operator);
    notify_workers
        .drain(std::time::Duration::from_secs(5))
        .await;
    result
}

fn parse_period(text: &str) -> Result<std::time::Duration, String> {
    secret_rotator_core::planner::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// Resolves once the stop channel says so.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The key of the status dataHmac: its own file, or derived from the embedded store's master key.
fn hmac_key(args: &RunArgs) -> Result<zeroize::Zeroizing<Vec<u8>>, BoxError> {
    match (&args.hmac_key_file, args.store.store) {
        (Some(p), _) => {
            check_private(p, "HMAC key file")?;
            Ok(zeroize::Zeroizing::new(std::fs::read(p).map_err(|e| {
                format!("--hmac-key-file {}: {e}", p.display())
            })?))
        }
        (None, StoreKind::Embedded) => {
            let key_file = args
                .store
                .master_key_file
                .as_ref()
                .ok_or("--master-key-file is required")?;
            Ok(MasterKey::from_file(key_file)?.derive("secret-rotator status dataHmac"))
        }
        (None, StoreKind::Csms) => Err("--hmac-key-file is required with --store csms".into()),
    }
}

/// This replica's Lease: its identity is the pod name with a random suffix (a restarted pod is another
/// holder).
fn lease_config(args: &RunArgs) -> leader::LeaderConfig {
    let identity = format!(
        "{}-{:08x}",
        std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "secret-rotator".into()),
        rand::random::<u32>()
    );
    leader::LeaderConfig {
        namespace: args
            .leader_election_namespace
            .clone()
            .or_else(|| args.namespace.clone())
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
        name: args.lease_name.clone(),
        identity,
        lease_duration: std::time::Duration::from_secs(args.lease_duration_secs.max(3)),
        renew_every: std::time::Duration::from_secs((args.lease_duration_secs / 3).max(1)),
    }
}

/// What every leadership term's [`Context`] shares.
struct Shared {
    client: kube::Client,
    project: String,
    creates_missing: bool,
    hmac_key: zeroize::Zeroizing<Vec<u8>>,
    policy: NamespacePolicy,
    min_period: std::time::Duration,
    max_rollback_age: std::time::Duration,
    metrics: Arc<crate::metrics::Metrics>,
    notifier: Notifier,
}

/// The operator between leadership terms.
struct Operator {
    args: RunArgs,
    lease: leader::LeaderConfig,
    ctx_parts: Shared,
    scope: Scope,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Operator {
    /// Leads (or, without leader election, just runs) until stopped; a lost Lease ends the term and the
    /// replica rejoins the election.
    async fn lead(&self) -> Result<(), BoxError> {
        let client = &self.ctx_parts.client;
        loop {
            if self.args.leader_election {
                tokio::select! {
                    _ = leader::acquire(client, &self.lease) => {}
                    _ = stopped(self.stop.clone()) => return Ok(()),
                }
            }
            let (controller, drain) = self.term().await?;
            let leading = &self.ctx_parts.metrics.leader;
            leading.set(1);
            if !self.args.leader_election {
                controller.await;
                leading.set(0);
                drain.await;
                return Ok(());
            }
            let lost = tokio::select! {
                _ = controller => false,
                _ = leader::hold(client, &self.lease) => true,
            };
            leading.set(0);
            drain.await;
            if !lost {
                leader::release(client, &self.lease).await;
                return Ok(());
            }
            // The controller (and with it the store) is dropped: a rotation cut short resumes from the
            // store's pending version, by whichever replica leads next.
            self.ctx_parts.metrics.leadership_lost.inc();
            tracing::warn!(lease = %self.lease.name, "lost the leader lease; stopped reconciling and rejoining the election");
        }
    }

    /// One term: the store opened, the controller ready to run, and the event queue's drain.
    async fn term(
        &self,
    ) -> Result<
        (
            impl std::future::Future<Output = ()> + use<>,
            impl std::future::Future<Output = ()> + use<>,
        ),
        BoxError,
    > {
        let parts = &self.ctx_parts;
        // Opened only by the leader: the embedded store's file admits one process at a time.
        let store = open_when_free(&self.args.store, self.stop.clone()).await?;
        let (secrets_reader, secrets_writer) = controller::secret_cache();
        let (servers_reader, servers_writer) = controller::servers::server_cache();
        let (events, events_task) = controller::events::EventSink::start(
            parts.client.clone(),
            kube::runtime::events::Reporter {
                controller: "secret-rotator".into(),
                instance: Some(self.lease.identity.clone()),
            },
            parts.metrics.events_dropped.clone(),
        );
        let ctx = Arc::new(Context {
            client: parts.client.clone(),
            store,
            project: parts.project.clone(),
            creates_missing: parts.creates_missing,
            hmac_key: parts.hmac_key.clone(),
            policy: parts.policy.clone(),
            min_period: parts.min_period,
            max_rollback_age: parts.max_rollback_age,
            metrics: parts.metrics.clone(),
            events,
            notifier: parts.notifier.clone(),
            secrets: secrets_reader,
            freshness: Default::default(),
            admin_pool: Default::default(),
            retries: Default::default(),
            servers: servers_reader,
        });
        let controller = controller::run(
            ctx,
            secrets_writer,
            servers_writer,
            self.scope.clone(),
            self.args.concurrency.max(1),
            stopped(self.stop.clone()),
        );
        // Events still queued are published (for a few seconds at most) once the controller is gone.
        let drain = async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), events_task).await;
        };
        Ok((controller, drain))
    }
}
