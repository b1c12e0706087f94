//! `secret-rotator serve`: the CSMS-compatible REST API over a store.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::store_args::StoreArgs;
use super::{BoxError, shutdown_signal};
use crate::files::check_private;
use crate::server::{self, AppState, TlsFiles, auth::AuthFile};
use crate::store::target::{SimulatedTargets, TargetResolver};

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
    /// Rotate database secrets against simulated in-memory databases (for trying the API and SDKs only).
    #[arg(long)]
    pub simulated_databases: bool,
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), BoxError> {
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
