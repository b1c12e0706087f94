//! `secret-rotator serve`: the CSMS-compatible REST API over a store.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::store_args::StoreArgs;
use super::{BoxError, shutdown_signal};
use secret_rotator_core::files::check_private;
use secret_rotator_server::targets::TargetsFile;
use secret_rotator_server::{self as server, AppState, RotationMode, TlsFiles, auth::AuthFile};
use secret_rotator_store::Store;
use secret_rotator_store::changer::{ChangerResolver, SimulatedChangers};

/// How often `serve` deletes the secrets whose scheduled deletion time has passed (reads treat them as
/// deleted at once; this removes their records, versions and tasks).
pub const DELETION_SWEEP: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Args, Debug)]
/// The arguments of `serve`.
pub struct ServeArgs {
    /// The backing store.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443", env = "SECRET_ROTATOR_LISTEN")]
    pub listen: std::net::SocketAddr,
    /// Credentials (YAML: tokens [{token, projects}], access_keys [{ak, sk, projects}]), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_AUTH_FILE")]
    pub auth_file: PathBuf,
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest accepted difference between X-Sdk-Date and this clock, in seconds.
    #[arg(long, default_value_t = server::DEFAULT_MAX_SKEW_SECS)]
    pub max_clock_skew_secs: i64,
    /// Refuse a signed write (any method but GET and HEAD) whose signature was already accepted while its
    /// X-Sdk-Date is within the skew window. Off by default: a client that repeats an identical write within
    /// the same second (X-Sdk-Date has whole seconds) is refused too.
    #[arg(long)]
    pub refuse_replayed_signatures: bool,
    /// The databases RotateSecret changes (YAML or JSON): `instances: {<InstanceId>: {engine, host, port,
    /// database, tls: {mode, ca_file}, admin_credentials_file, projects, accounts}}`.
    #[arg(
        long,
        env = "SECRET_ROTATOR_TARGETS_FILE",
        conflicts_with = "simulated_databases"
    )]
    pub targets_file: Option<PathBuf>,
    /// Rotate database secrets against simulated in-memory databases (for trying the API and SDKs only).
    #[arg(long)]
    pub simulated_databases: bool,
    /// Answer RotateSecret only once the rotation has finished (the new version, or the failure as an
    /// error), instead of at once with the task while the database steps run in the background.
    #[arg(long)]
    pub synchronous_rotation: bool,
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    check_private(&args.auth_file, "auth file")?;
    let auth = AuthFile::load(&args.auth_file)?;
    let store = args.store.open()?;
    let resolver: Option<Arc<dyn ChangerResolver>> = match (
        &args.targets_file,
        args.simulated_databases,
    ) {
        (Some(path), _) => {
            let targets = TargetsFile::load(path)?;
            let ids: Vec<&str> = targets.instances().map(|i| i.id.as_str()).collect();
            tracing::info!(file = %path.display(), instances = ?ids, "database targets loaded");
            Some(Arc::new(targets))
        }
        (None, true) => {
            tracing::warn!(
                "--simulated-databases: database rotations change in-memory accounts, not real databases"
            );
            Some(Arc::new(SimulatedChangers::default()))
        }
        (None, false) => {
            tracing::info!(
                "no --targets-file: RotateSecret of database secrets is refused (CSMS.0905)"
            );
            None
        }
    };
    spawn_deletion_sweep(store.clone());
    let app = server::router(AppState {
        store,
        auth: Arc::new(auth),
        resolver,
        max_skew_secs: args.max_clock_skew_secs,
        replay: args
            .refuse_replayed_signatures
            .then(|| Arc::new(server::replay::ReplayGuard::default())),
        rotation: if args.synchronous_rotation {
            RotationMode::Synchronous
        } else {
            RotationMode::Background
        },
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

/// Deletes the secrets whose scheduled deletion time has passed, now and every [`DELETION_SWEEP`].
fn spawn_deletion_sweep(store: Arc<dyn Store>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(DELETION_SWEEP);
        loop {
            every.tick().await;
            match store.purge_scheduled_deletions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    deleted = n,
                    "deleted secrets whose scheduled deletion time had passed"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "deleting secrets whose scheduled deletion time had passed failed; trying again later")
                }
            }
        }
    });
}
