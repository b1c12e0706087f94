//! The API's status codes and error bodies over real HTTP: 200, 400, 401, 403, 404, 500, 502 and 504,
//! malformed JSON, oversized bodies, unknown routes and wrong methods.

use crate::support::csms as csms_support;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use csms_support::*;
use secret_rotator_store::*;
use serde_json::{Value, json};

fn http() -> reqwest::Client {
    secret_rotator_store::tls::install_crypto_provider();
    reqwest::Client::new()
}

async fn call(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut r = http().request(method, url);
    if let Some(t) = token {
        r = r.header("X-Auth-Token", t);
    }
    if let Some(b) = body {
        r = r.header("Content-Type", "application/json").body(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{got:?}");
    let err = &got.1["error"];
    assert_eq!(err["error_code"], code, "{got:?}");
    assert!(
        err["error_msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{got:?}"
    );
}

#[tokio::test]
async fn status_codes_and_error_bodies() {
    let s = start(None).await;
    let base = format!("{}/v1/{PROJECT}", s.url);
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // 200.
    let ok = call(
        post.clone(),
        &format!("{base}/secrets"),
        Some(TOKEN),
        Some(
            json!({"name": "k", "secret_string": "v"})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_eq!(ok.0, 200, "{ok:?}");
    assert_eq!(ok.1["secret"]["name"], "k");
    // 401: no credentials, a bad token.
    assert_error(
        &call(get.clone(), &format!("{base}/secrets"), None, None).await,
        401,
        "CSMS.0401",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets"),
            Some("wrong-token-0123456789"),
            None,
        )
        .await,
        401,
        "CSMS.0401",
    );
    // 403: valid token, project not granted.
    assert_error(
        &call(
            get.clone(),
            &format!("{}/v1/other/secrets", s.url),
            Some(TOKEN),
            None,
        )
        .await,
        403,
        "CSMS.0403",
    );
    // 404: unknown secret, unknown version, unknown route.
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets/nope"),
            Some(TOKEN),
            None,
        )
        .await,
        404,
        "CSMS.0005",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets/k/versions/v9"),
            Some(TOKEN),
            None,
        )
        .await,
        404,
        "CSMS.0005",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/no/such/path"),
            Some(TOKEN),
            None,
        )
        .await,
        404,
        "CSMS.0003",
    );
    // Invalid percent-encoding in the path and malformed queries are CSMS errors too (found by fuzzing).
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets/a%fa"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0003",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets?limit=1&limit=2"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0003",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/csms/tasks?status=DONE"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0002",
    );
    // 405: wrong method.
    assert_error(
        &call(
            reqwest::Method::PATCH,
            &format!("{base}/secrets/k"),
            Some(TOKEN),
            None,
        )
        .await,
        405,
        "CSMS.0405",
    );
    // 400: bad parameters, malformed JSON, unknown fields, oversized bodies, COMMON rotation.
    assert_error(
        &call(
            post.clone(),
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(
                json!({"name": "bad name", "secret_string": "v"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await,
        400,
        "CSMS.0002",
    );
    // An unknown secret type is an invalid parameter value too.
    assert_error(
        &call(
            post.clone(),
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(
                json!({"name": "typed", "secret_type": "SSH-KEY", "secret_string": "v"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await,
        400,
        "CSMS.0002",
    );
    assert_error(
        &call(
            post.clone(),
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(b"{not json".to_vec()),
        )
        .await,
        400,
        "CSMS.0004",
    );
    let unknown = call(
        post.clone(),
        &format!("{base}/secrets"),
        Some(TOKEN),
        Some(
            json!({"name": "x", "secret_string": "sekrit-value-77", "bogus": 1})
                .to_string()
                .into_bytes(),
        ),
    )
    .await;
    assert_error(&unknown, 400, "CSMS.0004");
    assert!(
        !unknown.1.to_string().contains("sekrit-value-77"),
        "the error quoted the value: {unknown:?}"
    );
    let big = json!({"name": "big", "secret_string": "x".repeat(100 * 1024)})
        .to_string()
        .into_bytes();
    assert_error(
        &call(
            post.clone(),
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(big),
        )
        .await,
        400,
        "CSMS.0413",
    );
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets?limit=abc"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0002",
    );
    let common = call(
        post.clone(),
        &format!("{base}/secrets/k/rotate"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_error(&common, 400, "CSMS.0002");
    assert!(
        common.1["error"]["error_msg"]
            .as_str()
            .unwrap()
            .contains("RotateSecret does not support COMMON secrets")
    );
    // A system stage cannot be deleted (the table's CSMS.0105); an existing name is the project's own
    // CSMS.0902; a disabled secret the project's own CSMS.0901.
    assert_error(
        &call(
            reqwest::Method::DELETE,
            &format!("{base}/secrets/k/stages/SYSCURRENT"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0105",
    );
    assert_error(
        &call(
            post.clone(),
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(
                json!({"name": "k", "secret_string": "v"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await,
        400,
        "CSMS.0902",
    );
    let disabled = call(
        reqwest::Method::PUT,
        &format!("{base}/secrets/k"),
        Some(TOKEN),
        Some(json!({"state": "DISABLED"}).to_string().into_bytes()),
    )
    .await;
    assert_eq!(disabled.0, 200, "{disabled:?}");
    assert_error(
        &call(
            get.clone(),
            &format!("{base}/secrets/k/versions/v1"),
            Some(TOKEN),
            None,
        )
        .await,
        400,
        "CSMS.0901",
    );
}

#[tokio::test]
async fn rotate_answer_and_task_record() {
    let s = start(None).await;
    let base = format!("{}/v1/{PROJECT}", s.url);
    let body = json!({
        "name": "db", "secret_type": "RDS-FG",
        "secret_string": json!({"username": "app", "password": "pw0"}).to_string(),
        "rotation_config": json!({"InstanceId": "i-1", "SecretSubType": "SingleUser"}).to_string(),
    });
    assert_eq!(
        call(
            reqwest::Method::POST,
            &format!("{base}/secrets"),
            Some(TOKEN),
            Some(body.to_string().into_bytes())
        )
        .await
        .0,
        200
    );
    let (status, r) = call(
        reqwest::Method::POST,
        &format!("{base}/secrets/db/rotate"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["rotation_task_id", "secret_name", "version_id"],
        "the seed's answer exactly"
    );
    assert_eq!(r["version_id"], "v2");
    let task_id = r["rotation_task_id"].as_str().unwrap();
    let (status, tasks) = call(
        reqwest::Method::GET,
        &format!("{base}/csms/tasks?task_id={task_id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(tasks["total"], 1);
    assert_eq!(tasks["tasks"][0]["task_status"], "SUCCESS");
    assert_eq!(tasks["tasks"][0]["secret_name"], "db");
    for field in [
        "task_id",
        "secret_name",
        "rotation_func_urn",
        "task_status",
        "operate_type",
        "task_time",
        "attempt_nums",
        "task_error_code",
        "task_error_msg",
    ] {
        assert!(
            tasks["tasks"][0].get(field).is_some(),
            "task lacks {field}: {tasks}"
        );
    }
    let (status, v) = call(
        reqwest::Method::GET,
        &format!("{base}/secrets/db/versions/latest"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        v["version"]["version_metadata"]["version_stages"],
        json!(["SYSCURRENT"])
    );
}

/// A store whose every call fails inside: the API answers 500.
struct BrokenStore;

fn broken<T>() -> StoreResult<T> {
    Err(StoreError::Internal {
        operation: "reading the store".into(),
        message: "disk I/O error".into(),
    })
}

#[async_trait]
impl Store for BrokenStore {
    async fn create_secret(&self, _: &str, _: CreateSecret) -> StoreResult<Secret> {
        broken()
    }
    async fn schedule_deletion(&self, _: &str, _: &str, _: Option<i64>) -> StoreResult<Secret> {
        broken()
    }
    async fn restore_secret(&self, _: &str, _: &str) -> StoreResult<Secret> {
        broken()
    }
    async fn show_secret(&self, _: &str, _: &str) -> StoreResult<Secret> {
        broken()
    }
    async fn list_secrets(
        &self,
        _: &str,
        _: Option<u32>,
        _: Option<&str>,
    ) -> StoreResult<SecretPage> {
        broken()
    }
    async fn update_secret(&self, _: &str, _: &str, _: UpdateSecret) -> StoreResult<Secret> {
        broken()
    }
    async fn delete_secret(&self, _: &str, _: &str) -> StoreResult<()> {
        broken()
    }
    async fn create_version(
        &self,
        _: &str,
        _: &str,
        _: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        broken()
    }
    async fn show_version(&self, _: &str, _: &str, _: &str) -> StoreResult<Version> {
        broken()
    }
    async fn list_versions(
        &self,
        _: &str,
        _: &str,
        _: Option<u32>,
        _: Option<&str>,
    ) -> StoreResult<VersionPage> {
        broken()
    }
    async fn show_stage(&self, _: &str, _: &str, _: &str) -> StoreResult<Stage> {
        broken()
    }
    async fn update_stage(&self, _: &str, _: &str, _: &str, _: &str) -> StoreResult<Stage> {
        broken()
    }
    async fn delete_stage(&self, _: &str, _: &str, _: &str) -> StoreResult<()> {
        broken()
    }
    async fn rotate(&self, _: &str, _: &str, _: RotateOptions) -> StoreResult<RotateResult> {
        broken()
    }
    async fn list_tasks(&self, _: &str, _: TaskFilter) -> StoreResult<TaskPage> {
        broken()
    }
}

#[tokio::test]
async fn a_store_failure_is_500() {
    let s = start(Some(Arc::new(BrokenStore))).await;
    let got = call(
        reqwest::Method::GET,
        &format!("{}/v1/{PROJECT}/secrets/x", s.url),
        Some(TOKEN),
        None,
    )
    .await;
    assert_error(&got, 500, "CSMS.0500");
}

/// An upstream that answers every request with `status` after `delay`.
async fn upstream(
    status: StatusCode,
    delay: Duration,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            (
                status,
                axum::Json(
                    json!({"error": {"error_code": "CSMS.9999", "error_msg": "upstream trouble"}}),
                ),
            )
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, hits)
}

/// GET a secret through a `serve` whose store is a `csms` client talking to `upstream`.
async fn get_through_front(
    upstream: &str,
    opts: secret_rotator_store::csms::CsmsOptions,
) -> (u16, Value) {
    let front = start(Some(Arc::new(token_client(upstream, opts)))).await;
    call(
        reqwest::Method::GET,
        &format!("{}/v1/{PROJECT}/secrets/x", front.url),
        Some(TOKEN),
        None,
    )
    .await
}

#[tokio::test]
async fn a_failing_upstream_is_502_after_bounded_retries() {
    let (up, hits) = upstream(StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO).await;
    let got = get_through_front(&up, fast_opts()).await;
    assert_error(&got, 502, "CSMS.9999");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "three attempts, then give up"
    );
}

#[tokio::test]
async fn a_client_error_upstream_is_not_retried() {
    // A 404 upstream is a missing resource, answered in the front's own words.
    let (up, hits) = upstream(StatusCode::NOT_FOUND, Duration::ZERO).await;
    let got = get_through_front(&up, fast_opts()).await;
    assert_error(&got, 404, "CSMS.0005");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Other 4xx answers pass through with the upstream's code.
    let (up, hits) = upstream(StatusCode::FORBIDDEN, Duration::ZERO).await;
    let got = get_through_front(&up, fast_opts()).await;
    assert_error(&got, 403, "CSMS.9999");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let (up, _) = upstream(StatusCode::OK, Duration::from_secs(30)).await;
    let opts = secret_rotator_store::csms::CsmsOptions {
        request_timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..fast_opts()
    };
    let got = get_through_front(&up, opts).await;
    assert_error(&got, 504, "CSMS.0504");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    // A port nothing listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let got = get_through_front(&url, fast_opts()).await;
    assert_error(&got, 502, "CSMS.0502");
}

/// One AK/SK-signed request sent as given (the same bytes when called twice).
async fn signed_once(method: &str, url: &str, date: &str, body: &[u8]) -> (u16, Value) {
    use secret_rotator_store::protocol::signer;
    let u = reqwest::Url::parse(url).unwrap();
    let host = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap());
    let authorization = signer::sign_request(
        AK,
        SK.as_bytes(),
        &signer::Request {
            method,
            path: u.path(),
            query: u.query(),
            headers: &[("host", host.as_str()), ("x-sdk-date", date)],
            body,
        },
    );
    let r = http()
        .request(method.parse().unwrap(), url)
        .header("Host", &host)
        .header("X-Sdk-Date", date)
        .header("Authorization", authorization)
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_replayed_signed_write_is_refused_and_reads_may_repeat() {
    // By default an identical signed write is served again (store_conformance repeats one within a second).
    let plain = start(None).await;
    let date = secret_rotator_store::protocol::signer::format_date(jiff::Timestamp::now());
    let url = format!("{}/v1/{PROJECT}/secrets", plain.url);
    let body = br#"{"name": "twice", "secret_string": "first-value-0123"}"#;
    assert_eq!(signed_once("POST", &url, &date, body).await.0, 200);
    let (s, b) = signed_once("POST", &url, &date, body).await;
    assert_eq!(
        (s, &b["error"]["error_code"]),
        (400, &json!("CSMS.0902")),
        "{b}"
    );

    let srv = start_with(None, true).await;
    let date = secret_rotator_store::protocol::signer::format_date(jiff::Timestamp::now());
    let base = format!("{}/v1/{PROJECT}", srv.url);
    let body = br#"{"name": "replay-me", "secret_string": "first-value-0123"}"#;
    let (s1, _) = signed_once("POST", &format!("{base}/secrets"), &date, body).await;
    assert_eq!(s1, 200);
    // The same bytes again: refused before the handler, with a CSMS body; nothing is written.
    let (s2, b2) = signed_once("POST", &format!("{base}/secrets"), &date, body).await;
    assert_eq!(s2, 401, "{b2}");
    assert_eq!(b2["error"]["error_code"], "CSMS.0401", "{b2}");
    assert!(
        b2["error"]["error_msg"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{b2}"
    );
    let v = br#"{"secret_string": "second-value-0123"}"#;
    let url = format!("{base}/secrets/replay-me/versions");
    assert_eq!(signed_once("POST", &url, &date, v).await.0, 200);
    assert_eq!(signed_once("POST", &url, &date, v).await.0, 401);
    let (_, versions) = call(reqwest::Method::GET, &url, Some(TOKEN), None).await;
    assert_eq!(
        versions["version_metadatas"].as_array().unwrap().len(),
        2,
        "the replayed version request wrote nothing: {versions}"
    );
    // A read may repeat.
    let show = format!("{base}/secrets/replay-me");
    assert_eq!(signed_once("GET", &show, &date, b"").await.0, 200);
    assert_eq!(signed_once("GET", &show, &date, b"").await.0, 200);
}
