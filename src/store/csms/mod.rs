//! The `csms` store: Huawei Cloud CSMS (or `secret-rotator serve`) over its REST API.
//!
//! Requests time out; connection errors, timeouts, 429, 500, 502, 503 and 504 are retried with capped
//! exponential backoff and full jitter; other 4xx answers are final. Calls that are not idempotent are
//! made safe to retry: after an ambiguous failure a rotation looks for the task it may have started, a
//! new version is recognised by its value, and a secret by its name. A rotation whose task is still
//! PROCESSING is polled until SUCCESS or FAILED.

pub mod auth;

use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::protocol::signer;
use crate::protocol::wire::*;
use crate::secret_value::SecretValue;
use crate::store::model::*;
use crate::store::{Store, StoreError, StoreResult, now_ms};
pub use auth::CsmsAuth;
use auth::{IAM_REFRESH_MARGIN, IamToken};

/// Retry and timing settings.
#[derive(Debug, Clone)]
pub struct CsmsOptions {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_cap: Duration,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// How long to poll a PROCESSING rotation task.
    pub task_timeout: Duration,
    /// The interval between task polls.
    pub task_poll: Duration,
}

impl Default for CsmsOptions {
    fn default() -> Self {
        CsmsOptions {
            max_attempts: 4,
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            task_timeout: Duration::from_secs(300),
            task_poll: Duration::from_secs(2),
        }
    }
}

/// The CSMS client store.
pub struct CsmsStore {
    http: reqwest::Client,
    endpoint: String,
    auth: CsmsAuth,
    opts: CsmsOptions,
}

impl std::fmt::Debug for CsmsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsmsStore")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish()
    }
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// Retry may help; `ambiguous` when the server may have acted.
    Retry {
        error: StoreError,
        ambiguous: bool,
    },
    Fatal(StoreError),
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl CsmsStore {
    /// A client for `endpoint` (for example `https://kms.ap-southeast-1.myhuaweicloud.com`).
    /// `ca_pem` adds a trusted CA (for `serve` with a private certificate).
    pub fn new(
        endpoint: &str,
        auth: CsmsAuth,
        opts: CsmsOptions,
        ca_pem: Option<&[u8]>,
    ) -> StoreResult<CsmsStore> {
        crate::tls::install_crypto_provider();
        let mut b = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(Duration::from_secs(5).min(opts.request_timeout))
            .user_agent(concat!("secret-rotator/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| StoreError::invalid("CA bundle", e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        let http = b
            .build()
            .map_err(|e| StoreError::internal("building the HTTP client", e))?;
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(StoreError::invalid(
                "csms endpoint",
                "must start with https:// or http://",
            ));
        }
        Ok(CsmsStore {
            http,
            endpoint,
            auth,
            opts,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.opts.backoff_cap);
        // Full jitter.
        Duration::from_millis(rand::rng().random_range(0..=cap.as_millis().max(1) as u64))
    }

    async fn iam_token(
        &self,
        project: &str,
        config: &auth::IamConfig,
        cached: &tokio::sync::Mutex<Option<IamToken>>,
    ) -> StoreResult<Zeroizing<String>> {
        let mut guard = cached.lock().await;
        let now = jiff::Timestamp::now();
        if let Some(t) = guard.as_ref() {
            let margin = jiff::SignedDuration::try_from(IAM_REFRESH_MARGIN).unwrap_or_default();
            if t.expires_at
                .checked_sub(margin)
                .map(|r| now < r)
                .unwrap_or(false)
            {
                return Ok(t.value.clone());
            }
        }
        let body = serde_json::json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {"user": {"name": config.user, "password": config.password.as_str(), "domain": {"name": config.domain}}}
                },
                "scope": {"project": {"id": project}}
            }
        });
        let url = format!("{}/v3/auth/tokens", config.endpoint.trim_end_matches('/'));
        let resp =
            self.http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| StoreError::Unreachable {
                    operation: "fetching an IAM token".into(),
                    message: without_url(&e),
                })?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 {
            return Err(StoreError::Upstream {
                status: if status == 401 || status == 403 {
                    401
                } else {
                    status
                },
                code: "IAM".into(),
                message: format!(
                    "IAM refused the token request for user {} with status {status}",
                    config.user
                ),
            });
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(|s| Zeroizing::new(s.to_owned()))
            .ok_or_else(|| {
                StoreError::internal("fetching an IAM token", "no X-Subject-Token header")
            })?;
        #[derive(serde::Deserialize)]
        struct T {
            token: TI,
        }
        #[derive(serde::Deserialize)]
        struct TI {
            expires_at: String,
        }
        let t: T = resp
            .json()
            .await
            .map_err(|e| StoreError::internal("reading the IAM token answer", e))?;
        let expires_at: jiff::Timestamp = t
            .token
            .expires_at
            .parse()
            .map_err(|e| StoreError::internal("reading the IAM token expiry", e))?;
        debug!(user = %config.user, %expires_at, "fetched an IAM token");
        *guard = Some(IamToken {
            value: token.clone(),
            expires_at,
        });
        Ok(token)
    }

    /// One HTTP attempt.
    async fn attempt(
        &self,
        project: &str,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Attempt<(u16, bytes::Bytes)> {
        let qs = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = if qs.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{qs}", self.endpoint)
        };
        let mut req = self.http.request(method.clone(), &url);
        let body_bytes = body.unwrap_or_default();
        if body.is_some() {
            req = req
                .header("Content-Type", "application/json;charset=UTF-8")
                .body(body_bytes.to_vec());
        }
        let req = match self
            .authenticate(req, project, method, path, &url, &qs, body)
            .await
        {
            Ok(req) => req,
            Err(attempt) => return attempt,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                // A failure to connect never reached the server; anything later might have.
                let ambiguous = !e.is_connect();
                let error = if e.is_timeout() {
                    StoreError::Timeout {
                        operation: format!("{method} {path}"),
                    }
                } else {
                    StoreError::Unreachable {
                        operation: format!("{method} {path}"),
                        message: without_url(&e),
                    }
                };
                return Attempt::Retry { error, ambiguous };
            }
        };
        let status = resp.status().as_u16();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    error: StoreError::Unreachable {
                        operation: format!("{method} {path}"),
                        message: without_url(&e),
                    },
                    ambiguous: true,
                };
            }
        };
        classify(method, path, status, bytes)
    }

    /// Adds the credentials to a request: a token (given, or from IAM for the project), or an AK/SK
    /// signature over what is sent.
    #[allow(clippy::too_many_arguments)]
    async fn authenticate(
        &self,
        mut req: reqwest::RequestBuilder,
        project: &str,
        method: &Method,
        path: &str,
        url: &str,
        qs: &str,
        body: Option<&[u8]>,
    ) -> Result<reqwest::RequestBuilder, Attempt<(u16, bytes::Bytes)>> {
        let body_bytes = body.unwrap_or_default();
        match &self.auth {
            CsmsAuth::Token(t) => req = req.header("X-Auth-Token", t.as_str()),
            CsmsAuth::Iam { config, cached } => match self.iam_token(project, config, cached).await
            {
                Ok(t) => req = req.header("X-Auth-Token", t.as_str()),
                Err(e) if e.is_transient() => {
                    return Err(Attempt::Retry {
                        error: e,
                        ambiguous: false,
                    });
                }
                Err(e) => return Err(Attempt::Fatal(e)),
            },
            CsmsAuth::AkSk(k) => {
                let date = signer::format_date(jiff::Timestamp::now());
                let host = url
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default()
                    .to_owned();
                let ct = if body.is_some() {
                    Some("application/json;charset=UTF-8")
                } else {
                    None
                };
                let mut headers = vec![
                    ("host", host.as_str()),
                    ("x-project-id", project),
                    ("x-sdk-date", date.as_str()),
                ];
                if let Some(ct) = ct {
                    headers.push(("content-type", ct));
                }
                let authorization = signer::sign_request(
                    &k.ak,
                    k.sk.as_bytes(),
                    &signer::Request {
                        method: method.as_str(),
                        path,
                        query: (!qs.is_empty()).then_some(qs),
                        headers: &headers,
                        body: body_bytes,
                    },
                );
                req = req
                    .header("X-Sdk-Date", &date)
                    .header("X-Project-Id", project)
                    .header("Authorization", authorization);
            }
        }
        Ok(req)
    }

    /// A call with retries. `on_ambiguous` is asked, after an ambiguous failure, whether the call took
    /// effect (returning its result) before trying again.
    #[allow(clippy::too_many_arguments)]
    async fn call<'c, T: DeserializeOwned>(
        &self,
        project: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        idempotent: bool,
        on_ambiguous: Option<
            &'c (dyn Fn() -> futures::future::BoxFuture<'c, Option<T>> + Send + Sync + 'c),
        >,
    ) -> StoreResult<T> {
        let mut last = None;
        for attempt in 0..self.opts.max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            match self
                .attempt(project, &method, path, query, body.as_deref())
                .await
            {
                Attempt::Done((status, bytes)) => {
                    let bytes = if status == 204 || bytes.is_empty() {
                        bytes::Bytes::from_static(b"null")
                    } else {
                        bytes
                    };
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        StoreError::internal(format!("reading the answer of {method} {path}"), e)
                    });
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { error, ambiguous } => {
                    warn!(%method, path, attempt = attempt + 1, error = %error, "CSMS call failed; will retry if attempts remain");
                    if ambiguous && !idempotent {
                        match on_ambiguous {
                            Some(check) => {
                                if let Some(done) = check().await {
                                    return Ok(done);
                                }
                            }
                            None => return Err(error),
                        }
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| StoreError::internal("calling CSMS", "no attempt was made")))
    }

    fn secret_path(project: &str, name: &str) -> String {
        format!(
            "/v1/{}/secrets/{}",
            encode_segment(project),
            encode_segment(name)
        )
    }

    async fn poll_task(&self, project: &str, result: RotateResult) -> StoreResult<RotateResult> {
        let deadline = tokio::time::Instant::now() + self.opts.task_timeout;
        loop {
            let task = self.show_task(project, &result.rotation_task_id).await?;
            match task.task_status {
                TaskStatus::Success => return Ok(result),
                TaskStatus::Failed => {
                    return Err(StoreError::RotationFailed {
                        name: result.secret_name,
                        task_id: task.task_id,
                        code: task.task_error_code,
                        message: task.task_error_msg,
                    });
                }
                TaskStatus::Processing if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError::Timeout {
                        operation: format!("waiting for rotation task {}", task.task_id),
                    });
                }
                TaskStatus::Processing => tokio::time::sleep(self.opts.task_poll).await,
            }
        }
    }
}

/// reqwest's error text without the URL (which holds project and secret names, never values, but
/// also may be long); keeps the cause.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "connection failed"
        } else if self.is_body() || self.is_decode() {
            "reading the body failed"
        } else {
            "request failed"
        };
        kind.to_owned()
    }
}

/// The `limit` and `marker` query parameters of a list call.
fn paging(limit: Option<u32>, marker: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(m) = marker {
        q.push(("marker", m.to_owned()));
    }
    q
}

/// The outcome of one answer: done (2xx), retried (429 and 5xx; 5xx may have taken effect), or fatal.
fn classify(
    method: &Method,
    path: &str,
    status: u16,
    bytes: bytes::Bytes,
) -> Attempt<(u16, bytes::Bytes)> {
    if (200..300).contains(&status) {
        return Attempt::Done((status, bytes));
    }
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => (b.error.error_code, b.error.error_msg),
        Err(_) => (
            format!("HTTP.{status}"),
            format!("{method} {path} answered {status} without a CSMS error body"),
        ),
    };
    let error = StoreError::Upstream {
        status,
        code,
        message,
    };
    match status {
        429 => Attempt::Retry {
            error,
            ambiguous: false,
        },
        500 | 502 | 503 | 504 => Attempt::Retry {
            error,
            ambiguous: true,
        },
        _ => Attempt::Fatal(error),
    }
}

fn json<T: serde::Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::internal("encoding a request", e))
}

/// A string value for the wire, wiped when dropped.
fn wire_string(v: &Option<SecretValue>) -> Option<Zeroizing<String>> {
    v.as_ref()
        .map(|v| Zeroizing::new(String::from_utf8_lossy(v.expose()).into_owned()))
}

/// A binary value for the wire (base64), wiped when dropped.
fn wire_binary(v: &Option<SecretValue>) -> Option<Zeroizing<String>> {
    use base64::Engine;
    v.as_ref()
        .map(|v| Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(v.expose())))
}

fn version_from_wire(w: VersionWire) -> StoreResult<Version> {
    match (w.secret_string, w.secret_binary) {
        (Some(s), _) => Ok(Version {
            version_metadata: w.version_metadata,
            value: SecretValue::from_str_value(&s),
            kind: ValueKind::String,
        }),
        (None, Some(b)) => Ok(Version {
            version_metadata: w.version_metadata,
            value: crate::protocol::wire::decode_binary(&b)?,
            kind: ValueKind::Binary,
        }),
        (None, None) => Err(StoreError::internal(
            "reading a version",
            "no secret_string or secret_binary in the answer",
        )),
    }
}

#[async_trait]
impl Store for CsmsStore {
    async fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
        let body = json(&CreateSecretBody {
            name: req.name.clone(),
            kms_key_id: req.kms_key_id,
            description: req.description,
            secret_binary: wire_binary(&req.secret_binary),
            secret_string: wire_string(&req.secret_string),
            secret_type: req.secret_type,
            auto_rotation: req.auto_rotation,
            rotation_period: req.rotation_period,
            rotation_config: req.rotation_config,
            event_subscriptions: (!req.event_subscriptions.is_empty())
                .then_some(req.event_subscriptions),
            enterprise_project_id: req.enterprise_project_id,
            rotation_func_urn: req.rotation_func_urn,
        })?;
        let name = req.name.clone();
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            let name = name.clone();
            Box::pin(async move {
                self.show_secret(project, &name)
                    .await
                    .ok()
                    .map(|secret| SecretBody { secret })
            })
        };
        let path = format!("/v1/{}/secrets", encode_segment(project));
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &path,
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        Ok(b.secret)
    }

    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let b: SecretBody = self
            .call(
                project,
                Method::GET,
                &Self::secret_path(project, name),
                &[],
                None,
                true,
                None,
            )
            .await?;
        Ok(b.secret)
    }

    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let q = paging(limit, marker);
        let path = format!("/v1/{}/secrets", encode_segment(project));
        let b: SecretsBody = self
            .call(project, Method::GET, &path, &q, None, true, None)
            .await?;
        Ok(SecretPage {
            secrets: b.secrets,
            page_info: b.page_info,
        })
    }

    async fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret> {
        let body = json(&UpdateSecretBody {
            kms_key_id: req.kms_key_id,
            description: req.description,
            auto_rotation: req.auto_rotation,
            rotation_period: req.rotation_period,
            event_subscriptions: req.event_subscriptions,
            rotation_func_urn: req.rotation_func_urn,
            state: req.state,
        })?;
        let b: SecretBody = self
            .call(
                project,
                Method::PUT,
                &Self::secret_path(project, name),
                &[],
                Some(body),
                true,
                None,
            )
            .await?;
        Ok(b.secret)
    }

    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let r: StoreResult<serde_json::Value> = self
            .call(
                project,
                Method::DELETE,
                &Self::secret_path(project, name),
                &[],
                None,
                true,
                None,
            )
            .await;
        r.map(|_| ())
    }

    async fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        let body = json(&CreateVersionBody {
            secret_binary: wire_binary(&req.secret_binary),
            secret_string: wire_string(&req.secret_string),
            version_stages: (!req.version_stages.is_empty()).then(|| req.version_stages.clone()),
            expire_time: req.expire_time,
        })?;
        let sent = req.secret_string.clone().or(req.secret_binary.clone());
        // After an ambiguous failure: if the newest version holds our value, it was created.
        let check = || -> futures::future::BoxFuture<'_, Option<VersionMetadataBody>> {
            let sent = sent.clone();
            Box::pin(async move {
                let latest = self.show_version(project, name, LATEST).await.ok()?;
                (Some(&latest.value) == sent.as_ref()).then_some(VersionMetadataBody {
                    version_metadata: latest.version_metadata,
                })
            })
        };
        let path = format!("{}/versions", Self::secret_path(project, name));
        let b: VersionMetadataBody = self
            .call(
                project,
                Method::POST,
                &path,
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        Ok(b.version_metadata)
    }

    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        let path = format!(
            "{}/versions/{}",
            Self::secret_path(project, name),
            encode_segment(version_id)
        );
        let b: VersionBody = self
            .call(project, Method::GET, &path, &[], None, true, None)
            .await?;
        version_from_wire(b.version)
    }

    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let q = paging(limit, marker);
        let path = format!("{}/versions", Self::secret_path(project, name));
        let b: VersionMetadatasBody = self
            .call(project, Method::GET, &path, &q, None, true, None)
            .await?;
        Ok(VersionPage {
            version_metadatas: b.version_metadatas,
            page_info: b.page_info,
        })
    }

    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        let path = format!(
            "{}/stages/{}",
            Self::secret_path(project, name),
            encode_segment(stage)
        );
        let b: StageBody = self
            .call(project, Method::GET, &path, &[], None, true, None)
            .await?;
        Ok(b.stage)
    }

    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        let path = format!(
            "{}/stages/{}",
            Self::secret_path(project, name),
            encode_segment(stage)
        );
        let body = json(&UpdateStageBody {
            version_id: version_id.to_owned(),
        })?;
        let b: StageBody = self
            .call(project, Method::PUT, &path, &[], Some(body), true, None)
            .await?;
        Ok(b.stage)
    }

    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        let path = format!(
            "{}/stages/{}",
            Self::secret_path(project, name),
            encode_segment(stage)
        );
        let r: StoreResult<serde_json::Value> = self
            .call(project, Method::DELETE, &path, &[], None, true, None)
            .await;
        r.map(|_| ())
    }

    /// CSMS changes the database through the secret's rotation function.
    fn changes_databases(&self) -> bool {
        false
    }

    async fn rotate(
        &self,
        project: &str,
        name: &str,
        _opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        // The service changes the database itself; the in-process target and policy do not apply.
        let started = now_ms();
        // After an ambiguous failure: a task for this secret started since this call means it went through.
        let check = || -> futures::future::BoxFuture<'_, Option<RotateResult>> {
            Box::pin(async move {
                let page = self
                    .list_tasks(
                        project,
                        TaskFilter {
                            secret_name: Some(name.to_owned()),
                            limit: Some(5),
                            ..TaskFilter::default()
                        },
                    )
                    .await
                    .ok()?;
                let task = page
                    .tasks
                    .into_iter()
                    .find(|t| t.task_time >= started - 60_000)?;
                let current = match self.show_stage(project, name, SYSPENDING).await {
                    Ok(s) => s,
                    Err(_) => self.show_stage(project, name, SYSCURRENT).await.ok()?,
                };
                Some(RotateResult {
                    version_id: current.version_id,
                    secret_name: name.to_owned(),
                    rotation_task_id: task.task_id,
                })
            })
        };
        let path = format!("{}/rotate", Self::secret_path(project, name));
        let result: RotateResult = self
            .call(project, Method::POST, &path, &[], None, false, Some(&check))
            .await?;
        let polled = self.poll_task(project, result).await?;
        // The version the finished task made current.
        let current = self.show_stage(project, name, SYSCURRENT).await?;
        Ok(RotateResult {
            version_id: current.version_id,
            ..polled
        })
    }

    async fn list_tasks(&self, project: &str, filter: TaskFilter) -> StoreResult<TaskPage> {
        let mut q = Vec::new();
        if let Some(n) = filter.secret_name {
            q.push(("secret_name", n));
        }
        if let Some(s) = filter.status {
            q.push(("status", s.as_str().to_owned()));
        }
        if let Some(t) = filter.task_id {
            q.push(("task_id", t));
        }
        if let Some(l) = filter.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(m) = filter.marker {
            q.push(("marker", m));
        }
        let path = format!("/v1/{}/csms/tasks", encode_segment(project));
        let b: TasksBody = self
            .call(project, Method::GET, &path, &q, None, true, None)
            .await?;
        Ok(TaskPage {
            total: b.total,
            tasks: b.tasks,
            next_marker: b.next_marker,
        })
    }
}
