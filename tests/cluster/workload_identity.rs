//! Workload identity for the csms backend: a real projected ServiceAccount token from the local apiserver
//! (TokenRequest, with an audience) exchanged at a stand-in IAM, which checks it the way IAM checks an
//! OpenID Connect ID token: here with the apiserver's own TokenReview. The project-scoped token it issues is
//! then the X-Auth-Token against `serve`. No password or AK/SK anywhere.

use crate::support::csms as csms_support;

use std::sync::{Arc, Mutex};

use crate::support::{TestNamespace, client};
use axum::http::{HeaderMap, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_server::{self as server, AppState, auth::AuthFile};
use secret_rotator_store::csms::auth::WorkloadIdentity;
use secret_rotator_store::csms::{CsmsAuth, CsmsStore};
use secret_rotator_store::*;

const AUDIENCE: &str = "iam.test.example";
const IDP: &str = "cce-test-cluster";

/// What the stand-in IAM saw: (X-Idp-Id, project, the reviewed user) per exchange.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A stand-in IAM for `POST /v3.0/OS-AUTH/id-token/tokens`: the ID token must pass the apiserver's
/// TokenReview for AUDIENCE and come from `want_user`, and X-Idp-Id must be IDP.
async fn stand_in_iam(kube: kube::Client, want_user: String, seen: Seen) -> String {
    let iam = axum::Router::new().route(
        "/v3.0/OS-AUTH/id-token/tokens",
        axum::routing::post(
            move |headers: HeaderMap, body: axum::Json<serde_json::Value>| {
                let (kube, want_user, seen) = (kube.clone(), want_user.clone(), seen.clone());
                async move {
                    let refuse = || (StatusCode::UNAUTHORIZED, HeaderMap::new(), axum::Json(serde_json::json!({"error_code": "IAM.0001", "error_msg": "refused"})));
                    let idp = headers.get("x-idp-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let jwt = body.0["auth"]["id_token"]["id"].as_str().unwrap_or_default().to_owned();
                    let project = body.0["auth"]["scope"]["project"]["id"].as_str().unwrap_or_default().to_owned();
                    if idp != IDP || jwt.is_empty() {
                        return refuse();
                    }
                    let review: TokenReview = serde_json::from_value(serde_json::json!({
                        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                        "spec": {"token": jwt, "audiences": [AUDIENCE]}
                    }))
                    .unwrap();
                    let reviewed = Api::<TokenReview>::all(kube)
                        .create(&PostParams::default(), &review)
                        .await
                        .unwrap();
                    let st = reviewed.status.unwrap_or_default();
                    let user = st.user.and_then(|u| u.username).unwrap_or_default();
                    if st.authenticated != Some(true) || user != want_user {
                        return refuse();
                    }
                    seen.lock().unwrap().push((idp, project.clone(), user));
                    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3600);
                    let mut h = HeaderMap::new();
                    h.insert("X-Subject-Token", format!("federated-token-for-{project}").parse().unwrap());
                    (StatusCode::CREATED, h, axum::Json(serde_json::json!({"token": {"expires_at": expires.to_string()}})))
                }
            },
        ),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, iam).await.unwrap() });
    url
}

/// A projected token for `sa` in `ns` with `audience`, as the kubelet would mount it.
async fn projected_token(c: &kube::Client, ns: &str, sa: &str, audience: &str) -> String {
    let tr: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [audience], "expirationSeconds": 3600}
    }))
    .unwrap();
    let out: TokenRequest = Api::<ServiceAccount>::namespaced(c.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &tr)
        .await
        .unwrap();
    out.status.unwrap().token
}

#[tokio::test]
async fn a_projected_service_account_token_is_exchanged_for_a_project_token() {
    let c = client().await;
    let ns = TestNamespace::new(&c, "wid").await;
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "secret-rotator"}
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(c.clone(), &ns.name)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let want = format!("system:serviceaccount:{}:secret-rotator", ns.name);
    let seen: Seen = Arc::default();
    let iam_url = stand_in_iam(c.clone(), want.clone(), seen.clone()).await;

    // serve accepts the token IAM issues for projW.
    let dir = tempfile::tempdir().unwrap();
    let auth = AuthFile::parse(
        "tokens:\n- token: federated-token-for-projW\n  projects: [projW]\n",
        "t",
    )
    .unwrap();
    let app = server::router(AppState {
        store: csms_support::embedded(&dir),
        auth: Arc::new(auth),
        resolver: None,
        max_skew_secs: 900,
        replay: None,
        rotation: Default::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server::serve(listener, app, None, std::future::pending()));

    // The auth file as the chart writes it, with the projected token where the chart mounts it.
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        projected_token(&c, &ns.name, "secret-rotator", AUDIENCE).await,
    )
    .unwrap();
    let auth_file = dir.path().join("auth.yaml");
    std::fs::write(
        &auth_file,
        format!(
            "workload_identity:\n  endpoint: {iam_url}\n  idp_id: {IDP}\n  token_file: {}\n",
            token_file.display()
        ),
    )
    .unwrap();
    let store = CsmsStore::new(
        &url,
        CsmsAuth::load(&auth_file).unwrap(),
        csms_support::fast_opts(),
        None,
    )
    .unwrap();
    store
        .create_secret(
            "projW",
            CreateSecret {
                name: "api-key".into(),
                secret_string: Some(SecretValue::from_str_value("v")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.show_secret("projW", "api-key").await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(IDP.to_owned(), "projW".to_owned(), want.clone())],
        "one exchange, scoped to the project, for the ServiceAccount"
    );

    // A token for another audience fails IAM's review: a clear 401 that names the identity provider and
    // holds no token.
    let wrong = projected_token(&c, &ns.name, "secret-rotator", "some-other-audience").await;
    std::fs::write(&token_file, &wrong).unwrap();
    let other = CsmsStore::new(
        &url,
        CsmsAuth::workload(WorkloadIdentity {
            endpoint: iam_url.clone(),
            idp_id: IDP.into(),
            token_file: token_file.clone(),
        }),
        csms_support::fast_opts(),
        None,
    )
    .unwrap();
    let e = other.show_secret("projW", "api-key").await.unwrap_err();
    assert_eq!(e.status(), 401, "{e}");
    let text = e.to_string();
    assert!(text.contains(IDP), "{text}");
    assert!(!text.contains(&wrong[..20]), "{text}");

    // No token file: a clear error naming the file.
    std::fs::remove_file(&token_file).unwrap();
    let e = other.show_secret("projW", "api-key").await.unwrap_err();
    assert!(
        e.to_string().contains("projected ServiceAccount token"),
        "{e}"
    );
}
