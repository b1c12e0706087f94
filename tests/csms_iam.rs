//! The `csms` client's IAM authentication: a project-scoped token fetched from `POST /v3/auth/tokens`
//! (a stand-in IAM over real HTTP), used as X-Auth-Token against `serve`, and refreshed before it expires.

#[path = "support/csms.rs"]
mod csms_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use secret_rotator::secret_value::SecretValue;
use secret_rotator::server::{self, AppState, auth::AuthFile};
use secret_rotator::store::csms::auth::IamConfig;
use secret_rotator::store::csms::{CsmsAuth, CsmsStore};
use secret_rotator::store::*;
use zeroize::Zeroizing;

#[tokio::test]
async fn an_iam_token_is_fetched_scoped_and_refreshed() {
    // IAM: checks the password request; each token lives 10 min + 2 s (the client refreshes 10 min early).
    let issued = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let (i2, s2) = (issued.clone(), seen.clone());
    let iam = axum::Router::new().route(
        "/v3/auth/tokens",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let (i2, s2) = (i2.clone(), s2.clone());
            async move {
                s2.lock().unwrap().push(body.0.clone());
                let p = &body.0["auth"]["identity"]["password"]["user"];
                if p["password"] != "iam-password"
                    || p["name"] != "rotator"
                    || p["domain"]["name"] != "acct"
                {
                    return (
                        StatusCode::UNAUTHORIZED,
                        HeaderMap::new(),
                        axum::Json(serde_json::json!({})),
                    );
                }
                let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
                let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(602);
                let mut h = HeaderMap::new();
                h.insert(
                    "X-Subject-Token",
                    format!("iam-token-number-{n:04}-abcdef").parse().unwrap(),
                );
                (
                    StatusCode::CREATED,
                    h,
                    axum::Json(serde_json::json!({"token": {"expires_at": expires.to_string()}})),
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let iam_url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, iam).await.unwrap() });

    // serve accepts the first two tokens IAM will issue.
    let dir = tempfile::tempdir().unwrap();
    let store = csms_support::embedded(&dir);
    let auth = AuthFile::parse(
        "tokens:\n- token: iam-token-number-0001-abcdef\n  projects: [projI]\n- token: iam-token-number-0002-abcdef\n  projects: [projI]\n",
        "t",
    )
    .unwrap();
    let app = server::router(AppState {
        store,
        auth: Arc::new(auth),
        resolver: None,
        max_skew_secs: 900,
        replay: None,
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, app, None, std::future::pending()));

    let client = CsmsStore::new(
        &url,
        CsmsAuth::Iam {
            config: IamConfig {
                endpoint: iam_url.clone(),
                domain: "acct".into(),
                user: "rotator".into(),
                password: Zeroizing::new("iam-password".into()),
            },
            cached: tokio::sync::Mutex::new(None),
        },
        csms_support::fast_opts(),
        None,
    )
    .unwrap();
    client
        .create_secret(
            "projI",
            CreateSecret {
                name: "k".into(),
                secret_string: Some(SecretValue::from_str_value("v")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client.show_secret("projI", "k").await.unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "the token is cached between calls"
    );
    assert_eq!(
        seen.lock().unwrap()[0]["auth"]["scope"]["project"]["id"],
        "projI",
        "the token is project-scoped"
    );
    // Past the refresh point (expiry minus ten minutes), the next call fetches a new token.
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.show_version("projI", "k", LATEST).await.unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "refreshed before it expired"
    );

    // Wrong IAM credentials: a clear 401, without the password in the message.
    let bad = CsmsStore::new(
        &url,
        CsmsAuth::Iam {
            config: IamConfig {
                endpoint: iam_url,
                domain: "acct".into(),
                user: "rotator".into(),
                password: Zeroizing::new("wrong-password-xyz".into()),
            },
            cached: tokio::sync::Mutex::new(None),
        },
        csms_support::fast_opts(),
        None,
    )
    .unwrap();
    let e = bad.show_secret("projI", "k").await.unwrap_err();
    assert_eq!(e.status(), 401, "{e}");
    assert!(
        e.to_string().contains("rotator") && !e.to_string().contains("wrong-password-xyz"),
        "{e}"
    );
}
