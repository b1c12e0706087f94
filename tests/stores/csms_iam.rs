//! The `csms` client's IAM authentication: a project-scoped token fetched from `POST /v3/auth/tokens`
//! (a stand-in IAM over real HTTP), used as X-Auth-Token against `serve`, and refreshed before it expires.

use crate::support::csms as csms_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_server::{self as server, AppState, auth::AuthFile};
use secret_rotator_store::csms::auth::IamConfig;
use secret_rotator_store::csms::{CsmsAuth, CsmsStore};
use secret_rotator_store::*;
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
        rotation: Default::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, app, None, std::future::pending()));

    let client = CsmsStore::new(
        &url,
        CsmsAuth::iam(IamConfig {
            endpoint: iam_url.clone(),
            domain: "acct".into(),
            user: "rotator".into(),
            password: Zeroizing::new("iam-password".into()),
        }),
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
        CsmsAuth::iam(IamConfig {
            endpoint: iam_url,
            domain: "acct".into(),
            user: "rotator".into(),
            password: Zeroizing::new("wrong-password-xyz".into()),
        }),
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

/// What the stand-in IAM and CSMS below share: the tokens issued (token -> project), those revoked, and
/// how many token requests each project made.
#[derive(Default)]
struct Tokens {
    issued: std::collections::HashMap<String, String>,
    revoked: std::collections::HashSet<String>,
    requests: std::collections::BTreeMap<String, usize>,
}

/// A stand-in IAM that issues project-scoped tokens, and a stand-in CSMS that accepts a token only for
/// the project it was issued for (403 otherwise) and not once revoked (401, with the flat error body of
/// the CSMS documentation).
async fn iam_and_csms(tokens: Arc<std::sync::Mutex<Tokens>>) -> (String, String) {
    let t = tokens.clone();
    let iam = axum::Router::new().route(
        "/v3/auth/tokens",
        axum::routing::post(move |body: axum::Json<serde_json::Value>| {
            let t = t.clone();
            async move {
                let project = body.0["auth"]["scope"]["project"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let mut t = t.lock().unwrap();
                let n = {
                    let n = t.requests.entry(project.clone()).or_default();
                    *n += 1;
                    *n
                };
                let token = format!("iam-{project}-{n:04}-abcdef");
                t.issued.insert(token.clone(), project);
                let mut h = HeaderMap::new();
                h.insert("X-Subject-Token", token.parse().unwrap());
                let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24);
                (
                    StatusCode::CREATED,
                    h,
                    axum::Json(serde_json::json!({"token": {"expires_at": expires.to_string()}})),
                )
            }
        }),
    );
    let t = tokens.clone();
    let csms = axum::Router::new().route(
        "/v1/{project}/secrets/{name}",
        axum::routing::get(
            move |axum::extract::Path((project, name)): axum::extract::Path<(String, String)>,
                  headers: HeaderMap| {
                let t = t.clone();
                async move {
                    let token = headers
                        .get("x-auth-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let t = t.lock().unwrap();
                    let (status, body) = match t.issued.get(token) {
                        None => (StatusCode::UNAUTHORIZED, serde_json::json!({"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication information"})),
                        Some(_) if t.revoked.contains(token) => (StatusCode::UNAUTHORIZED, serde_json::json!({"error_code": "APIGW.0307", "error_msg": "The token must be updated"})),
                        Some(p) if *p != project => (StatusCode::FORBIDDEN, serde_json::json!({"error_code": "CSMS.0403", "error_msg": "the token is scoped to another project"})),
                        Some(_) => (StatusCode::OK, serde_json::json!({"secret": {"name": name, "secret_type": "COMMON"}})),
                    };
                    (status, axum::Json(body))
                }
            },
        ),
    );
    let mut urls = Vec::new();
    for app in [iam, csms] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", l.local_addr().unwrap()));
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    }
    (urls.remove(0), urls.remove(0))
}

#[tokio::test]
async fn one_token_per_project_dropped_and_fetched_again_when_refused() {
    let tokens = Arc::new(std::sync::Mutex::new(Tokens::default()));
    let (iam_url, csms_url) = iam_and_csms(tokens.clone()).await;
    let client = CsmsStore::new(
        &csms_url,
        CsmsAuth::iam(IamConfig {
            endpoint: iam_url,
            domain: "acct".into(),
            user: "rotator".into(),
            password: Zeroizing::new("iam-password".into()),
        }),
        csms_support::fast_opts(),
        None,
    )
    .unwrap();
    let requests = |t: &Arc<std::sync::Mutex<Tokens>>| {
        t.lock()
            .unwrap()
            .requests
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect::<Vec<_>>()
    };

    // Two tenants' projects: each gets a token scoped to it (one project's token never stands in for
    // another's, which CSMS would refuse with 403), each fetched once and then reused.
    for _ in 0..2 {
        for project in ["tenant-a", "tenant-b"] {
            let s = client.show_secret(project, "k").await.unwrap();
            assert_eq!(s.name, "k");
        }
    }
    assert_eq!(
        requests(&tokens),
        [("tenant-a".to_owned(), 1), ("tenant-b".to_owned(), 1)]
    );
    let CsmsAuth::Iam { tokens: cache, .. } = client.auth() else {
        panic!("not IAM")
    };
    assert_eq!(cache.projects().await, ["tenant-a", "tenant-b"]);

    // tenant-a's token is revoked: the 401 drops it, a new one is fetched and the call goes through;
    // tenant-b's token is untouched.
    tokens
        .lock()
        .unwrap()
        .revoked
        .insert("iam-tenant-a-0001-abcdef".into());
    client.show_secret("tenant-a", "k").await.unwrap();
    client.show_secret("tenant-b", "k").await.unwrap();
    assert_eq!(
        requests(&tokens),
        [("tenant-a".to_owned(), 2), ("tenant-b".to_owned(), 1)]
    );

    // A service that refuses every token: one new token per call, then the 401 is the answer (no loop).
    tokens.lock().unwrap().revoked.extend([
        "iam-tenant-a-0002-abcdef".into(),
        "iam-tenant-a-0003-abcdef".into(),
    ]);
    let e = client.show_secret("tenant-a", "k").await.unwrap_err();
    assert_eq!(e.status(), 401, "{e}");
    assert_eq!(e.code(), "APIGW.0307", "{e}");
    assert_eq!(
        requests(&tokens),
        [("tenant-a".to_owned(), 3), ("tenant-b".to_owned(), 1)]
    );
}
