//! Whole API requests (method, path with query, headers, body) through the router, authentication
//! included, over an embedded store. Every answer must be a known status, and every error a CSMS error
//! body.
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use secret_rotator_server::{self as server, AppState, auth::AuthFile};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::changer::SimulatedChangers;
use tower::ServiceExt;

struct Env {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    _dir: tempfile::TempDir,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), MasterKey::generate().unwrap(), EmbeddedOptions::default()).unwrap();
        let auth = AuthFile::parse("tokens:\n- token: fuzz-token-0123456789\n  projects: [p1]\naccess_keys:\n- ak: AK\n  sk: fuzz-sk-0123456789abc\n  projects: ['*']\n", "fuzz").unwrap();
        let app = server::router(AppState {
            store: Arc::new(store),
            auth: Arc::new(auth),
            resolver: Some(Arc::new(SimulatedChangers::default())),
            max_skew_secs: 900,
            replay: None,
            // Deterministic: no rotation left running in the background between inputs.
            rotation: server::RotationMode::Synchronous,
        });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Env { rt, app, _dir: dir }
    })
}

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let e = env();
    let method = METHODS[data[0] as usize % METHODS.len()];
    let auth = data[1] % 4;
    let rest = &data[2..];
    let (path, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let path = String::from_utf8_lossy(path);
    let uri = format!("/v1/{}", path.trim_start_matches('/'));
    let mut req = Request::builder().method(method).uri(&uri);
    match auth {
        0 => req = req.header("X-Auth-Token", "fuzz-token-0123456789"),
        1 => req = req.header("X-Auth-Token", String::from_utf8_lossy(body).chars().filter(|c| c.is_ascii_graphic()).take(64).collect::<String>()),
        2 => req = req.header("Authorization", String::from_utf8_lossy(body).chars().filter(|c| !c.is_control()).take(300).collect::<String>()).header("X-Sdk-Date", "20261127T180525Z").header("Host", "h"),
        _ => {}
    }
    let Ok(req) = req.header("Content-Type", "application/json").body(Body::from(body.to_vec())) else {
        return;
    };
    let resp = e.rt.block_on(e.app.clone().oneshot(req)).unwrap();
    let status = resp.status().as_u16();
    assert!(matches!(status, 200 | 204 | 400 | 401 | 403 | 404 | 405 | 500 | 502 | 504), "status {status}");
    let bytes = e.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).unwrap();
    if status >= 400 && method != "HEAD" {
        let v: serde_json_probe::Value = serde_json_probe::from_slice(&bytes).expect("an error body is JSON");
        assert!(v["error"]["error_code"].as_str().is_some_and(|c| c.starts_with("CSMS.")), "{v}");
        assert!(v["error"]["error_msg"].is_string(), "{v}");
    }
});

use serde_json as serde_json_probe;
