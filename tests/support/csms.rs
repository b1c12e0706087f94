//! An in-process `serve` on a loopback port, and clients for it.
#![allow(dead_code)]

use std::sync::Arc;

use secret_rotator_server::{self as server, AppState, RotationMode, auth::AuthFile};
use secret_rotator_store::Store;
use secret_rotator_store::changer::{ChangerResolver, SimulatedChangers};
use secret_rotator_store::csms::auth::AccessKey;
use secret_rotator_store::csms::{CsmsAuth, CsmsOptions, CsmsStore};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use zeroize::Zeroizing;

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const AK: &str = "TESTAK0001";
pub const SK: &str = "test-sk-0123456789abcdef0123";
pub const PROJECT: &str = "proj1";

pub fn auth_file() -> AuthFile {
    AuthFile::parse(
        &format!(
            "tokens:\n- token: {TOKEN}\n  projects: [{PROJECT}, projB]\naccess_keys:\n- ak: {AK}\n  sk: {SK}\n  projects: [{PROJECT}]\n"
        ),
        "test",
    )
    .unwrap()
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub url: String,
    pub dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

pub fn embedded(dir: &tempfile::TempDir) -> Arc<EmbeddedStore> {
    Arc::new(
        EmbeddedStore::open(
            &dir.path().join("store.redb"),
            MasterKey::generate().unwrap(),
            EmbeddedOptions::default(),
        )
        .unwrap(),
    )
}

/// Serves `store` (an embedded one in a temporary directory when `None`) with simulated databases.
pub async fn start(store: Option<Arc<dyn Store>>) -> TestServer {
    start_with(store, false).await
}

/// As [`start`], optionally refusing replayed signed writes (`--refuse-replayed-signatures`).
pub async fn start_with(store: Option<Arc<dyn Store>>, refuse_replays: bool) -> TestServer {
    start_serving(Serving {
        store,
        refuse_replays,
        ..Serving::default()
    })
    .await
}

/// What an in-process `serve` runs with.
pub struct Serving {
    /// The store; an embedded one in the server's temporary directory when `None`.
    pub store: Option<Arc<dyn Store>>,
    /// The databases (`--targets-file`); `None` is `--simulated-databases`, unless `no_targets`.
    pub resolver: Option<Arc<dyn ChangerResolver>>,
    /// Neither a targets file nor simulated databases.
    pub no_targets: bool,
    /// `--synchronous-rotation` or the default.
    pub rotation: RotationMode,
    /// `--refuse-replayed-signatures`.
    pub refuse_replays: bool,
}

impl Default for Serving {
    fn default() -> Self {
        Serving {
            store: None,
            resolver: None,
            no_targets: false,
            rotation: RotationMode::Background,
            refuse_replays: false,
        }
    }
}

/// Serves as `serving` says.
pub async fn start_serving(serving: Serving) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = match serving.store {
        Some(s) => s,
        None => embedded(&dir),
    };
    let resolver: Option<Arc<dyn ChangerResolver>> = match (serving.resolver, serving.no_targets) {
        (Some(r), _) => Some(r),
        (None, true) => None,
        (None, false) => Some(Arc::new(SimulatedChangers::default())),
    };
    let app = server::router(AppState {
        store,
        auth: Arc::new(auth_file()),
        resolver,
        max_skew_secs: 900,
        replay: serving.refuse_replays.then(Default::default),
        rotation: serving.rotation,
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server::serve(listener, app, None, async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestServer {
        url,
        dir,
        shutdown: Some(tx),
    }
}

pub fn token_client(url: &str, opts: CsmsOptions) -> CsmsStore {
    CsmsStore::new(
        url,
        CsmsAuth::Token(Zeroizing::new(TOKEN.into())),
        opts,
        None,
    )
    .unwrap()
}

pub fn aksk_client(url: &str, opts: CsmsOptions) -> CsmsStore {
    CsmsStore::new(
        url,
        CsmsAuth::AkSk(AccessKey {
            ak: AK.into(),
            sk: Zeroizing::new(SK.into()),
        }),
        opts,
        None,
    )
    .unwrap()
}

pub fn fast_opts() -> CsmsOptions {
    CsmsOptions {
        max_attempts: 3,
        backoff_base: std::time::Duration::from_millis(20),
        backoff_cap: std::time::Duration::from_millis(100),
        request_timeout: std::time::Duration::from_secs(5),
        task_timeout: std::time::Duration::from_secs(10),
        task_poll: std::time::Duration::from_millis(50),
    }
}
