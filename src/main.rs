#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secret_rotator::files::check_private;
use secret_rotator::server::{self, AppState, TlsFiles, auth::AuthFile};
use secret_rotator::store::Store;
use secret_rotator::store::csms::{CsmsAuth, CsmsOptions, CsmsStore};
use secret_rotator::store::embedded::crypto::MasterKey;
use secret_rotator::store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator::store::target::{SimulatedTargets, TargetResolver};
use secret_rotator::telemetry::{self, LogFormat};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// secret-rotator: rotates secrets the way Huawei Cloud CSMS does and keeps Kubernetes Secrets in sync.
#[derive(Parser, Debug)]
#[command(name = "secret-rotator", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SECRET_ROTATOR_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the SecretRotation CustomResourceDefinition as YAML.
    Crd,
    /// Maintain an embedded store file.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Serve the CSMS REST API over a store.
    Serve(ServeArgs),
    /// Run the operator.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The CSMS project used when a SecretRotation names none (with the embedded store, a name space
    /// inside the store file).
    #[arg(long, default_value = "default", env = "SECRET_ROTATOR_PROJECT_ID")]
    csms_project_id: String,
    /// Watch one namespace only; all namespaces when absent.
    #[arg(long, env = "SECRET_ROTATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the metrics and health endpoints (/metrics, /healthz, /readyz).
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        env = "SECRET_ROTATOR_METRICS_ADDR"
    )]
    metrics_addr: std::net::SocketAddr,
    /// Elect a leader through a Lease so that only one replica rotates.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, env = "SECRET_ROTATOR_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the leader Lease (default: the watched namespace, or POD_NAMESPACE, or default).
    #[arg(long, env = "SECRET_ROTATOR_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(long, default_value = "secret-rotator-leader")]
    lease_name: String,
    /// Lease duration in seconds; a new leader takes over this long after the old one stops renewing.
    #[arg(long, default_value_t = 15)]
    lease_duration_secs: u64,
    /// SecretRotations reconciled at once.
    #[arg(long, default_value_t = 4, env = "SECRET_ROTATOR_CONCURRENCY")]
    concurrency: u16,
    /// Key of the status dataHmac (any bytes, mode 0600). Default with the embedded store: derived from the
    /// master key. Required with --store csms.
    #[arg(long, env = "SECRET_ROTATOR_HMAC_KEY_FILE")]
    hmac_key_file: Option<PathBuf>,
    /// Namespace policy (YAML `namespaces: {<namespace>: [store secret name patterns]}`).
    #[arg(long, env = "SECRET_ROTATOR_POLICY_FILE")]
    policy_file: Option<PathBuf>,
}

/// Which backing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// The embedded, encrypted store file.
    Embedded,
    /// Huawei Cloud CSMS (or another `serve`) over HTTP.
    Csms,
}

/// Backing store options, shared by `run` and `serve`.
#[derive(Args, Debug)]
struct StoreArgs {
    /// The backing store.
    #[arg(
        long,
        value_enum,
        default_value = "embedded",
        env = "SECRET_ROTATOR_STORE"
    )]
    store: StoreKind,
    /// Embedded store: the store file (created when missing).
    #[arg(long, env = "SECRET_ROTATOR_STORE_PATH")]
    store_path: Option<PathBuf>,
    /// Embedded store: the master key file, base64 of 32 bytes (`openssl rand -base64 32`), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Embedded store: a Secret (key `master.key`) in POD_NAMESPACE holding the master key; created once with a new random key when absent, then written to --master-key-file (an in-memory volume).
    #[arg(long, env = "SECRET_ROTATOR_MASTER_KEY_SECRET")]
    master_key_secret: Option<String>,
    /// Embedded store: deprecated versions kept per secret.
    #[arg(long, default_value_t = secret_rotator::store::embedded::DEFAULT_HISTORY_LIMIT)]
    history_limit: usize,
    /// csms store: the endpoint, for example https://kms.ap-southeast-1.myhuaweicloud.com.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_ENDPOINT")]
    csms_endpoint: Option<String>,
    /// csms store: credentials (YAML: token, access_key {ak, sk}, or iam {endpoint, domain, user, password}), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_AUTH_FILE")]
    csms_auth_file: Option<PathBuf>,
    /// csms store: a PEM CA bundle to trust besides the system roots.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_CA_FILE")]
    csms_ca_file: Option<PathBuf>,
    /// csms store: timeout of one request, in seconds.
    #[arg(long, default_value_t = 30)]
    csms_timeout_secs: u64,
    /// csms store: attempts per call (connection errors, timeouts, 429, 500, 502, 503, 504).
    #[arg(long, default_value_t = 4)]
    csms_max_attempts: u32,
}

impl StoreArgs {
    fn open(&self) -> Result<Arc<dyn Store>, BoxError> {
        match self.store {
            StoreKind::Embedded => {
                let path = self
                    .store_path
                    .as_ref()
                    .ok_or("--store-path is required with --store embedded")?;
                let key_file = self
                    .master_key_file
                    .as_ref()
                    .ok_or("--master-key-file is required with --store embedded")?;
                check_private(key_file, "master key file")?;
                let key = MasterKey::from_file(key_file)?;
                let store = EmbeddedStore::open(
                    path,
                    key,
                    EmbeddedOptions {
                        history_limit: self.history_limit,
                    },
                )?;
                tracing::info!(path = %path.display(), key_id = %store.key_id(), "opened the embedded store");
                Ok(Arc::new(store))
            }
            StoreKind::Csms => {
                let endpoint = self
                    .csms_endpoint
                    .as_ref()
                    .ok_or("--csms-endpoint is required with --store csms")?;
                let auth_file = self
                    .csms_auth_file
                    .as_ref()
                    .ok_or("--csms-auth-file is required with --store csms")?;
                check_private(auth_file, "CSMS auth file")?;
                let auth = CsmsAuth::load(auth_file)?;
                let ca = match &self.csms_ca_file {
                    Some(p) => Some(
                        std::fs::read(p)
                            .map_err(|e| format!("--csms-ca-file {}: {e}", p.display()))?,
                    ),
                    None => None,
                };
                let opts = CsmsOptions {
                    request_timeout: std::time::Duration::from_secs(self.csms_timeout_secs.max(1)),
                    max_attempts: self.csms_max_attempts.max(1),
                    ..CsmsOptions::default()
                };
                tracing::info!(endpoint = %endpoint, "using the csms store");
                Ok(Arc::new(CsmsStore::new(
                    endpoint,
                    auth,
                    opts,
                    ca.as_deref(),
                )?))
            }
        }
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "SECRET_ROTATOR_LISTEN")]
    listen: std::net::SocketAddr,
    /// Credentials (YAML: tokens [{token, projects}], access_keys [{ak, sk, projects}]), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_AUTH_FILE")]
    auth_file: PathBuf,
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest accepted difference between X-Sdk-Date and this clock, in seconds.
    #[arg(long, default_value_t = server::DEFAULT_MAX_SKEW_SECS)]
    max_clock_skew_secs: i64,
    /// Refuse a signed write (any method but GET and HEAD) whose signature was already accepted while its
    /// X-Sdk-Date is within the skew window. Off by default: a client that repeats an identical write within
    /// the same second (X-Sdk-Date has whole seconds) is refused too.
    #[arg(long)]
    refuse_replayed_signatures: bool,
    /// Rotate database secrets against simulated in-memory databases (for trying the API and SDKs only).
    #[arg(long)]
    simulated_databases: bool,
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Re-wrap every data key under a new master key, in one transaction, without re-encrypting values.
    Rekey {
        /// The store file.
        #[arg(long)]
        store_path: PathBuf,
        /// The current master key file (base64 of 32 bytes).
        #[arg(long)]
        master_key_file: PathBuf,
        /// The new master key file (make one with `openssl rand -base64 32`).
        #[arg(long)]
        new_master_key_file: PathBuf,
    },
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    check_private(&args.auth_file, "auth file")?;
    let auth = AuthFile::load(&args.auth_file)?;
    let store = args.store.open()?;
    let resolver: Option<Arc<dyn TargetResolver>> = if args.simulated_databases {
        tracing::warn!(
            "--simulated-databases: database rotations change in-memory accounts, not real databases"
        );
        Some(Arc::new(SimulatedTargets::default()))
    } else {
        None
    };
    let app = server::router(AppState {
        store,
        auth: Arc::new(auth),
        resolver,
        max_skew_secs: args.max_clock_skew_secs,
        replay: args
            .refuse_replayed_signatures
            .then(|| Arc::new(server::replay::ReplayGuard::default())),
    });
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| format!("binding {}: {e}", args.listen))?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => {
            check_private(&key, "TLS key")?;
            Some(TlsFiles { cert, key })
        }
        _ => None,
    };
    server::serve(listener, app, tls, shutdown_signal()).await?;
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), BoxError> {
    use secret_rotator::controller::{self, Context, Scope, leader, policy::NamespacePolicy};
    use std::sync::atomic::{AtomicBool, Ordering};
    let (key_secret, key_file) = (&args.store.master_key_secret, &args.store.master_key_file);
    secret_rotator::master_key_secret::ensure_from_env(key_secret.as_deref(), key_file.as_deref())
        .await?;

    let hmac_key = match (&args.hmac_key_file, args.store.store) {
        (Some(p), _) => {
            check_private(p, "HMAC key file")?;
            zeroize::Zeroizing::new(
                std::fs::read(p).map_err(|e| format!("--hmac-key-file {}: {e}", p.display()))?,
            )
        }
        (None, StoreKind::Embedded) => {
            let key_file = args
                .store
                .master_key_file
                .as_ref()
                .ok_or("--master-key-file is required")?;
            MasterKey::from_file(key_file)?.derive("secret-rotator status dataHmac")
        }
        (None, StoreKind::Csms) => {
            return Err("--hmac-key-file is required with --store csms".into());
        }
    };
    let policy = match &args.policy_file {
        Some(p) => NamespacePolicy::load(p)?,
        None => NamespacePolicy::default(),
    };
    secret_rotator::tls::install_crypto_provider();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to Kubernetes: {e}"))?;
    let metrics = Arc::new(secret_rotator::metrics::Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };

    // Metrics and health.
    let m = metrics.clone();
    let r = ready.clone();
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let r = r.clone();
                async move {
                    if r.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::OK, "ok")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|e| format!("binding --metrics-addr {}: {e}", args.metrics_addr))?;
    tracing::info!(addr = %args.metrics_addr, "metrics and health endpoints listening");
    let metrics_stop = stopped(stop_rx.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(metrics_stop)
            .await;
    });

    let identity = format!(
        "{}-{:08x}",
        std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "secret-rotator".into()),
        rand::random::<u32>()
    );
    let lease = leader::LeaderConfig {
        namespace: args
            .leader_election_namespace
            .clone()
            .or_else(|| args.namespace.clone())
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into()),
        name: args.lease_name.clone(),
        identity: identity.clone(),
        lease_duration: std::time::Duration::from_secs(args.lease_duration_secs.max(3)),
        renew_every: std::time::Duration::from_secs((args.lease_duration_secs / 3).max(1)),
    };
    let scope = Scope {
        namespace: args.namespace.clone(),
    };
    ready.store(true, Ordering::SeqCst);
    loop {
        if args.leader_election {
            tokio::select! {
                _ = leader::acquire(&client, &lease) => {}
                _ = stopped(stop_rx.clone()) => return Ok(()),
            }
        }
        // Opened only by the leader: the embedded store's file admits one process at a time.
        let store = open_store_when_free(&args.store, stop_rx.clone()).await?;
        let (secrets_reader, secrets_writer) = controller::secret_cache();
        let (events, events_task) = controller::events::EventSink::start(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: "secret-rotator".into(),
                instance: Some(identity.clone()),
            },
            metrics.events_dropped.clone(),
        );
        let ctx = Arc::new(Context {
            client: client.clone(),
            store,
            project: args.csms_project_id.clone(),
            creates_missing: args.store.store == StoreKind::Embedded,
            hmac_key: hmac_key.clone(),
            policy: policy.clone(),
            metrics: metrics.clone(),
            events,
            failpoint: std::env::var("SECRET_ROTATOR_TEST_FAILPOINT").ok(),
            secrets: secrets_reader,
            freshness: Default::default(),
        });
        let controller = controller::run(
            ctx,
            secrets_writer,
            scope.clone(),
            args.concurrency.max(1),
            stopped(stop_rx.clone()),
        );
        // Events still queued are published (for a few seconds at most) once the controller is gone.
        let drain = async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), events_task).await;
        };
        if !args.leader_election {
            controller.await;
            drain.await;
            return Ok(());
        }
        let lost = tokio::select! {
            _ = controller => false,
            _ = leader::hold(&client, &lease) => true,
        };
        drain.await;
        if !lost {
            leader::release(&client, &lease).await;
            return Ok(());
        }
        // The controller (and with it the store) is dropped: a rotation cut short resumes from the
        // store's pending version, by whichever replica leads next.
        metrics.leadership_lost.inc();
        tracing::warn!(lease = %lease.name, "lost the leader lease; stopped reconciling and rejoining the election");
    }
}

/// Opens the store; after a lost lease the previous controller's handle may take a moment to close.
async fn open_store_when_free(
    store: &StoreArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<dyn secret_rotator::store::Store>, BoxError> {
    let mut attempt = 0u32;
    loop {
        match store.open() {
            Ok(s) => return Ok(s),
            Err(e) if attempt < 50 && !*stop.borrow() => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "the store is not free yet");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), BoxError> = match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Crd => secret_rotator::crdgen::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(Into::into),
        Command::Store(StoreCommand::Rekey {
            store_path,
            master_key_file,
            new_master_key_file,
        }) => (|| -> Result<(), BoxError> {
            let old = MasterKey::from_file(&master_key_file)?;
            let new = MasterKey::from_file(&new_master_key_file)?;
            let n = EmbeddedStore::rekey(&store_path, old, &new)?;
            println!(
                "re-wrapped {n} data keys in {} under master key {}",
                store_path.display(),
                new.key_id()
            );
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
