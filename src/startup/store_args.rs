//! The backing store options shared by `run` and `serve`, and the `store` maintenance subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use super::BoxError;
use secret_rotator_core::files::check_private;
use secret_rotator_store::Store;
use secret_rotator_store::csms::{CsmsAuth, CsmsOptions, CsmsStore};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};

/// Which backing store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded, encrypted store file.
    Embedded,
    /// Huawei Cloud CSMS (or another `serve`) over HTTP.
    Csms,
}

/// Backing store options, shared by `run` and `serve`.
#[derive(Args, Debug)]
pub struct StoreArgs {
    /// The backing store.
    #[arg(
        long,
        value_enum,
        default_value = "embedded",
        env = "SECRET_ROTATOR_STORE"
    )]
    pub store: StoreKind,
    /// Embedded store: the store file (created when missing).
    #[arg(long, env = "SECRET_ROTATOR_STORE_PATH")]
    pub store_path: Option<PathBuf>,
    /// Embedded store: the master key file, base64 of 32 bytes (`openssl rand -base64 32`), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Embedded store: a Secret (key `master.key`) in POD_NAMESPACE holding the master key; created once with a new random key when absent, then written to --master-key-file (an in-memory volume).
    #[arg(long, env = "SECRET_ROTATOR_MASTER_KEY_SECRET")]
    pub master_key_secret: Option<String>,
    /// Embedded store: deprecated versions kept per secret.
    #[arg(long, default_value_t = secret_rotator_store::embedded::DEFAULT_HISTORY_LIMIT)]
    pub history_limit: usize,
    /// Embedded store: MiB of the engine's page cache (the operating system caches the file as well).
    #[arg(long, default_value_t = secret_rotator_store::embedded::DEFAULT_CACHE_BYTES >> 20, env = "SECRET_ROTATOR_STORE_CACHE_MIB")]
    pub store_cache_mib: usize,
    /// csms store: the endpoint, for example https://kms.ap-southeast-1.myhuaweicloud.com.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_ENDPOINT")]
    pub csms_endpoint: Option<String>,
    /// csms store: credentials (YAML: token, access_key {ak, sk}, or iam {endpoint, domain, user, password}), mode 0600.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_AUTH_FILE")]
    pub csms_auth_file: Option<PathBuf>,
    /// csms store: a PEM CA bundle to trust besides the system roots.
    #[arg(long, env = "SECRET_ROTATOR_CSMS_CA_FILE")]
    pub csms_ca_file: Option<PathBuf>,
    /// csms store: timeout of one request, in seconds.
    #[arg(long, default_value_t = 30)]
    pub csms_timeout_secs: u64,
    /// csms store: attempts per call (connection errors, timeouts, 429, 500, 502, 503, 504).
    #[arg(long, default_value_t = 4)]
    pub csms_max_attempts: u32,
}

impl StoreArgs {
    /// Opens the store these options name.
    pub fn open(&self) -> Result<Arc<dyn Store>, BoxError> {
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
                        cache_bytes: self.store_cache_mib.saturating_mul(1 << 20),
                        ..EmbeddedOptions::default()
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

/// Opens the store; after a lost lease the previous controller's handle may take a moment to close.
pub async fn open_when_free(
    store: &StoreArgs,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<dyn Store>, BoxError> {
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

#[derive(Subcommand, Debug)]
/// `secret-rotator store ...`.
pub enum StoreCommand {
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

impl StoreCommand {
    /// Carries the subcommand out.
    pub fn run(self) -> Result<(), BoxError> {
        match self {
            StoreCommand::Rekey {
                store_path,
                master_key_file,
                new_master_key_file,
            } => {
                let old = MasterKey::from_file(&master_key_file)?;
                let new = MasterKey::from_file(&new_master_key_file)?;
                let n = EmbeddedStore::rekey(&store_path, old, &new)?;
                println!(
                    "re-wrapped {n} data keys in {} under master key {}",
                    store_path.display(),
                    new.key_id()
                );
                Ok(())
            }
        }
    }
}
