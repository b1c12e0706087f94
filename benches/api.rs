//! CSMS API benchmark, one run: rotate and show-version requests per second over loopback HTTP (to an
//! in-process `serve`, token auth, one request at a time and 8 at a time) as a ratio to the same calls
//! made on the embedded store directly.
//!
//! The floor: a bare axum handler that returns the same bytes `serve` answers show-version with (same
//! content type and length), served by the same `server::serve` (same HTTP stack, no TLS for both, one
//! kept-alive connection per client task for both). Issue 18's target: show-version at 0.7 of the
//! floor or better.
//!
//! `cargo bench --bench api` (BENCH_SECONDS per measurement, default 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_server::{self as server, AppState, auth::AuthFile};
use secret_rotator_store::changer::{MemoryChanger, PasswordChanger, SimulatedChangers};
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

const TOKEN: &str = "bench-token-0123456789abcdef";

async fn rate(
    dur: Duration,
    parallel: usize,
    f: impl Fn() -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
) -> f64 {
    let f = Arc::new(f);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while start.elapsed() < dur {
                f().await;
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Show-version requests per second against `base` (serve, or the floor answering the same path).
async fn show_rate(dur: Duration, parallel: usize, http: &reqwest::Client, base: &str) -> f64 {
    let (h, b) = (http.clone(), base.to_owned());
    rate(dur, parallel, move || {
        let (h, b) = (h.clone(), b.clone());
        Box::pin(async move {
            let r = h
                .get(format!("{b}/common/versions/latest"))
                .header("X-Auth-Token", TOKEN)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        })
    })
    .await
}

async fn seed(s: &EmbeddedStore) {
    s.create_secret(
        "p",
        CreateSecret {
            name: "common".into(),
            secret_string: Some(SecretValue::from_str_value(&"x".repeat(32))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.create_secret(
        "p",
        CreateSecret {
            name: "db".into(),
            secret_type: Some("RDS-FG".into()),
            secret_string: Some(
                DatabaseCredential {
                    username: "app".into(),
                    password: "pw".into(),
                }
                .to_value(),
            ),
            rotation_config: Some(r#"{"SecretSubType":"SingleUser"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    secret_rotator_store::tls::install_crypto_provider();
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dur = Duration::from_secs(secs);
    let dir = tempfile::tempdir().unwrap();

    // Direct calls on one store.
    let direct = Arc::new(
        EmbeddedStore::open(
            &dir.path().join("direct.redb"),
            MasterKey::generate().unwrap(),
            EmbeddedOptions::default(),
        )
        .unwrap(),
    );
    seed(&direct).await;
    // The account as seeded (the rotation's precheck logs in with the current password first).
    let memory = MemoryChanger::default();
    memory.set("app", SecretValue::from_str_value("pw"));
    let target: Arc<dyn PasswordChanger> = Arc::new(memory);

    // The same calls over HTTP to another store behind serve.
    let served = Arc::new(
        EmbeddedStore::open(
            &dir.path().join("served.redb"),
            MasterKey::generate().unwrap(),
            EmbeddedOptions::default(),
        )
        .unwrap(),
    );
    seed(&served).await;
    let app = server::router(AppState {
        store: served,
        auth: Arc::new(
            AuthFile::parse(
                &format!("tokens:\n- token: {TOKEN}\n  projects: [p]\n"),
                "bench",
            )
            .unwrap(),
        ),
        resolver: Some(Arc::new(SimulatedChangers::default())),
        max_skew_secs: 900,
        replay: None,
        // One rotation after another, each measured to its end (in the background the next would find
        // the previous one still running).
        rotation: server::RotationMode::Synchronous,
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1/p/secrets", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, app, None, std::future::pending()));
    let http = reqwest::Client::new();

    // The floor: the same answer, without the store, auth or anything else of serve's.
    let sample = http
        .get(format!("{base}/common/versions/latest"))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    let content_type = sample.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = sample.bytes().await.unwrap();
    let body_len = body.len();
    let floor_app = axum::Router::new().route(
        "/v1/p/secrets/common/versions/latest",
        axum::routing::get(move || {
            let (b, ct) = (body.clone(), content_type.clone());
            async move { ([(axum::http::header::CONTENT_TYPE, ct)], b) }
        }),
    );
    let floor_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let floor_base = format!(
        "http://{}/v1/p/secrets",
        floor_listener.local_addr().unwrap()
    );
    tokio::spawn(server::serve(
        floor_listener,
        floor_app,
        None,
        std::future::pending(),
    ));

    let mut rows = Vec::new();
    let mut floors = Vec::new();
    for parallel in [1usize, 8] {
        let d = direct.clone();
        let show_direct = rate(dur, parallel, move || {
            let d = d.clone();
            Box::pin(async move {
                d.show_version("p", "common", "latest").await.unwrap();
            })
        })
        .await;
        let show_http = show_rate(dur, parallel, &http, &base).await;
        rows.push(("show_version", parallel, show_http, show_direct));
        let floor = show_rate(dur, parallel, &http, &floor_base).await;
        floors.push((parallel, show_http, floor));
        if parallel == 1 {
            // Rotations of one secret are serialised by the store: measure them one at a time.
            let (d, t) = (direct.clone(), target.clone());
            let rotate_direct = rate(dur, 1, move || {
                let (d, t) = (d.clone(), t.clone());
                Box::pin(async move {
                    d.rotate(
                        "p",
                        "db",
                        RotateOptions {
                            changer: Some(t),
                            policy: None,
                        },
                    )
                    .await
                    .unwrap();
                })
            })
            .await;
            let (h, b) = (http.clone(), base.clone());
            let rotate_http = rate(dur, 1, move || {
                let (h, b) = (h.clone(), b.clone());
                Box::pin(async move {
                    let r = h
                        .post(format!("{b}/db/rotate"))
                        .header("X-Auth-Token", TOKEN)
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                    r.bytes().await.unwrap();
                })
            })
            .await;
            rows.push(("rotate", 1, rotate_http, rotate_direct));
        }
    }
    println!("CSMS API benchmark ({secs}s per measurement, loopback HTTP/1.1, token auth)");
    println!(
        "  {:<13} {:>8} {:>14} {:>14} {:>8}",
        "call", "parallel", "HTTP req/s", "direct req/s", "ratio"
    );
    for (call, parallel, http, direct) in rows {
        println!(
            "  {call:<13} {parallel:>8} {http:>14.0} {direct:>14.0} {:>8.3}",
            http / direct
        );
    }
    println!(
        "\n  show_version against the floor (a bare axum handler, same {body_len}-byte body, same stack)"
    );
    println!(
        "  {:>8} {:>14} {:>14} {:>8}",
        "parallel", "serve req/s", "floor req/s", "ratio"
    );
    for (parallel, served, floor) in floors {
        println!(
            "  {parallel:>8} {served:>14.0} {floor:>14.0} {:>8.3}",
            served / floor
        );
    }
}
