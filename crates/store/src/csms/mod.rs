//! The `csms` store: Huawei Cloud CSMS (or `secret-rotator serve`) over its REST API.
//!
//! Requests time out; connection errors, timeouts, 429, 500, 502, 503 and 504 are retried with capped
//! exponential backoff and full jitter; other 4xx answers are final (a 401 to an IAM token drops the token
//! and tries once more with a new one). Calls that are not idempotent are made safe to retry: after an
//! ambiguous failure a rotation looks for the task it may have started, a new version is recognised by its
//! value, and a secret by its name. A rotation whose task is still PROCESSING is polled until SUCCESS or
//! FAILED.
//!
//! Answers are read as the real service gives them, which is often less than the SDK models list (see
//! [`crate::model`]): what the operator needs and the answer leaves out is read back (the version a
//! rotation made, the task a RotateSecret answer does not name, a version's creation time), and the rest
//! takes its default. Error answers: see [`route`].

pub mod auth;
mod route;

use crate::changer::RotateOptions;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::error::codes;
use crate::model::*;
use crate::protocol::signer;
use crate::protocol::wire::*;
use crate::{Store, StoreError, StoreResult, now_ms};
pub use auth::CsmsAuth;
use auth::{IAM_REFRESH_MARGIN, IamToken};
use route::{Route, answer_error, query_string};
use secret_rotator_core::secret_value::SecretValue;

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

/// How far back (ms) a task's start may lie before the RotateSecret call that looks for it: the service's
/// clock and ours differ.
const TASK_CLOCK_SLACK_MS: i64 = 60_000;

/// Pages of versions read back, at most, to find a version's creation time.
const READ_BACK_PAGES: usize = 10;

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

    /// The client's credentials (for tests and diagnostics: which projects hold an IAM token).
    pub fn auth(&self) -> &CsmsAuth {
        &self.auth
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

    /// `project`'s IAM token: the cached one until ten minutes before it expires, else a new one.
    async fn iam_token(
        &self,
        project: &str,
        config: &auth::IamSource,
        tokens: &auth::IamTokens,
    ) -> StoreResult<Zeroizing<String>> {
        let slot = tokens.slot(project).await;
        let mut guard = slot.lock().await;
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
        let (url, body, idp) = config.token_request(project).await?;
        let body = Zeroizing::new(serde_json::to_vec(&body).unwrap_or_default());
        let mut req = self
            .http
            .post(&url)
            .header("Content-Type", "application/json;charset=utf8")
            .body(body.to_vec());
        if let Some(idp) = &idp {
            req = req.header("X-Idp-Id", idp.as_str());
        }
        let resp = req.send().await.map_err(|e| StoreError::Unreachable {
            operation: format!("fetching an IAM token for project {project}"),
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
                    "IAM refused the token request of {} in project {project} with status {status}",
                    config.who()
                ),
            });
        }
        let token = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(|s| Zeroizing::new(s.to_owned()))
            .ok_or_else(|| {
                StoreError::internal(
                    format!("fetching an IAM token for project {project}"),
                    "no X-Subject-Token header",
                )
            })?;
        #[derive(serde::Deserialize)]
        struct T {
            token: TI,
        }
        #[derive(serde::Deserialize)]
        struct TI {
            expires_at: String,
        }
        let t: T = resp.json().await.map_err(|e| {
            StoreError::internal(
                format!("reading the IAM token answer for project {project}"),
                e,
            )
        })?;
        let expires_at: jiff::Timestamp = t.token.expires_at.parse().map_err(|e| {
            StoreError::internal(
                format!("reading the IAM token expiry for project {project}"),
                e,
            )
        })?;
        debug!(who = %config.who(), project, %expires_at, "fetched an IAM token");
        *guard = Some(IamToken {
            value: token.clone(),
            expires_at,
        });
        Ok(token)
    }

    /// One HTTP attempt; also the IAM token it used, if any.
    async fn attempt(
        &self,
        project: &str,
        method: &Method,
        route: &Route,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> (Attempt<(u16, bytes::Bytes)>, Option<Zeroizing<String>>) {
        let path = route.path.as_str();
        let qs = query_string(query);
        let url = if qs.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{qs}", self.endpoint)
        };
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json;charset=UTF-8")
                .body(b.to_vec());
        }
        let (req, token) = match self
            .authenticate(req, project, method, path, &url, &qs, body)
            .await
        {
            Ok(done) => done,
            Err(attempt) => return (attempt, None),
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
                return (Attempt::Retry { error, ambiguous }, token);
            }
        };
        let status = resp.status().as_u16();
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                let error = StoreError::Unreachable {
                    operation: format!("{method} {path}"),
                    message: without_url(&e),
                };
                return (
                    Attempt::Retry {
                        error,
                        ambiguous: true,
                    },
                    token,
                );
            }
        };
        (classify(method, route, status, bytes), token)
    }

    /// Adds the credentials to a request: a token (given, or from IAM for the project), or an AK/SK
    /// signature over what is sent. Returns the request and the IAM token it carries, if any.
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
    ) -> Result<(reqwest::RequestBuilder, Option<Zeroizing<String>>), Attempt<(u16, bytes::Bytes)>>
    {
        match &self.auth {
            CsmsAuth::Token(t) => Ok((req.header("X-Auth-Token", t.as_str()), None)),
            CsmsAuth::Iam { config, tokens } => {
                match self.iam_token(project, config, tokens).await {
                    Ok(t) => {
                        req = req.header("X-Auth-Token", t.as_str());
                        Ok((req, Some(t)))
                    }
                    Err(e) if e.is_transient() => Err(Attempt::Retry {
                        error: e,
                        ambiguous: false,
                    }),
                    Err(e) => Err(Attempt::Fatal(e)),
                }
            }
            CsmsAuth::AkSk(k) => {
                let date = signer::format_date(jiff::Timestamp::now());
                let host = url
                    .split("://")
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default()
                    .to_owned();
                let mut headers = vec![
                    ("host", host.as_str()),
                    ("x-project-id", project),
                    ("x-sdk-date", date.as_str()),
                ];
                if body.is_some() {
                    headers.push(("content-type", "application/json;charset=UTF-8"));
                }
                let authorization = signer::sign_request(
                    &k.ak,
                    k.sk.as_bytes(),
                    &signer::Request {
                        method: method.as_str(),
                        path,
                        query: (!qs.is_empty()).then_some(qs),
                        headers: &headers,
                        body: body.unwrap_or_default(),
                    },
                );
                req = req
                    .header("X-Sdk-Date", &date)
                    .header("X-Project-Id", project)
                    .header("Authorization", authorization);
                Ok((req, None))
            }
        }
    }

    /// A call with retries. `on_ambiguous` is asked, after an ambiguous failure, whether the call took
    /// effect (returning its result) before trying again. A 2xx answer is read leniently: a body that does
    /// not parse counts as empty (`{}`), and the caller reads back what it needs.
    #[allow(clippy::too_many_arguments)]
    async fn call<'c, T: DeserializeOwned>(
        &self,
        project: &str,
        method: Method,
        route: &Route,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        idempotent: bool,
        on_ambiguous: Option<
            &'c (dyn Fn() -> futures::future::BoxFuture<'c, Option<T>> + Send + Sync + 'c),
        >,
    ) -> StoreResult<T> {
        let mut last = None;
        let mut token_renewed = false;
        let mut attempt = 0;
        while attempt < self.opts.max_attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
            attempt += 1;
            let (outcome, token) = self
                .attempt(project, &method, route, query, body.as_deref())
                .await;
            match outcome {
                Attempt::Done((status, bytes)) => {
                    return read_answer(&method, route, status, &bytes);
                }
                Attempt::Fatal(e) if e.status() == 401 && !token_renewed => {
                    // A refused IAM token (revoked, or the service's clock says expired): the service
                    // did not act; drop the token and try once more with a new one.
                    let (CsmsAuth::Iam { tokens, .. }, Some(token)) = (&self.auth, token) else {
                        return Err(e);
                    };
                    warn!(%method, path = %route.path, project, "CSMS refused the IAM token; fetching a new one");
                    tokens.drop_refused(project, &token).await;
                    token_renewed = true;
                    attempt -= 1;
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { error, ambiguous } => {
                    warn!(%method, path = %route.path, attempt, error = %error, "CSMS call failed; will retry if attempts remain");
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

    /// The task a RotateSecret call that started at `started` made: the newest task of the secret that
    /// began since then, looked for a few times (the task list may lag behind the call).
    async fn find_rotation_task(&self, project: &str, name: &str, started: i64) -> Option<String> {
        for look in 0..3 {
            if look > 0 {
                tokio::time::sleep(self.opts.task_poll).await;
            }
            let page = self
                .list_tasks(
                    project,
                    TaskFilter {
                        secret_name: Some(name.to_owned()),
                        limit: Some(10),
                        ..TaskFilter::default()
                    },
                )
                .await
                .ok()?;
            if let Some(t) = page.tasks.into_iter().find(|t| {
                !t.task_id.is_empty()
                    && (t.secret_name.is_empty() || t.secret_name == name)
                    && t.task_time >= started - TASK_CLOCK_SLACK_MS
            }) {
                return Some(t.task_id);
            }
        }
        None
    }

    /// Waits for a rotation task to finish: SUCCESS, FAILED (an error), or the task timeout. A status this
    /// client does not know counts as not finished.
    async fn poll_task(&self, project: &str, name: &str, task_id: &str) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + self.opts.task_timeout;
        let mut warned = false;
        loop {
            let task = self.show_task(project, task_id).await?;
            match task.task_status {
                TaskStatus::Success => return Ok(()),
                TaskStatus::Failed => {
                    return Err(StoreError::RotationFailed {
                        name: name.to_owned(),
                        task_id: task_id.to_owned(),
                        code: if task.task_error_code.is_empty() {
                            codes::TARGET_FAILED.to_owned()
                        } else {
                            task.task_error_code
                        },
                        message: if task.task_error_msg.is_empty() {
                            "the rotation task failed without a message".to_owned()
                        } else {
                            task.task_error_msg
                        },
                    });
                }
                status if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError::Timeout {
                        operation: format!(
                            "waiting for rotation task {task_id} of {name} (still {})",
                            status.as_str()
                        ),
                    });
                }
                status => {
                    if status == TaskStatus::Unknown && !warned {
                        warned = true;
                        warn!(
                            secret = name,
                            task = task_id,
                            "the rotation task has no status this client knows; waiting for SUCCESS or FAILED"
                        );
                    }
                    tokio::time::sleep(self.opts.task_poll).await;
                }
            }
        }
    }

    /// Completes a version's metadata that an answer left short: its id and secret from the request, and
    /// its creation time (which the schedule depends on) read back from the version list.
    async fn complete_metadata(
        &self,
        project: &str,
        name: &str,
        requested: &str,
        md: &mut VersionMetadata,
    ) -> StoreResult<()> {
        if md.secret_name.is_empty() {
            md.secret_name = name.to_owned();
        }
        if md.id.is_empty() && requested != LATEST {
            md.id = requested.to_owned();
        }
        if !md.id.is_empty() && md.create_time > 0 {
            return Ok(());
        }
        let mut marker: Option<String> = None;
        for _ in 0..READ_BACK_PAGES {
            let page = self
                .list_versions(project, name, Some(50), marker.as_deref())
                .await?;
            // Newest first: `latest` is the first one.
            let found = if md.id.is_empty() {
                page.version_metadatas.first()
            } else {
                page.version_metadatas.iter().find(|v| v.id == md.id)
            };
            if let Some(v) = found {
                md.id.clone_from(&v.id);
                md.create_time = v.create_time;
                if md.version_stages.is_empty() {
                    md.version_stages.clone_from(&v.version_stages);
                }
                break;
            }
            match page.page_info.next_marker {
                Some(m) if !m.is_empty() && !page.version_metadatas.is_empty() => marker = Some(m),
                _ => break,
            }
        }
        if md.id.is_empty() || md.create_time <= 0 {
            return Err(StoreError::internal(
                format!("reading version {requested} of {name}"),
                "the answer gives no version id or creation time, and the version list does not either",
            ));
        }
        Ok(())
    }
}

/// The outcome of one answer: done (2xx), retried (429 and 5xx; 5xx may have taken effect), or fatal.
fn classify(
    method: &Method,
    route: &Route,
    status: u16,
    bytes: bytes::Bytes,
) -> Attempt<(u16, bytes::Bytes)> {
    if (200..300).contains(&status) {
        return Attempt::Done((status, bytes));
    }
    let error = answer_error(method, route, status, &bytes);
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

/// A 2xx answer's body, read leniently: an empty body, `null`, or one that does not parse as `T` counts
/// as `{}` (every field missing). The parse error is logged by its kind and position only, never the text
/// it would quote.
fn read_answer<T: DeserializeOwned>(
    method: &Method,
    route: &Route,
    status: u16,
    body: &[u8],
) -> StoreResult<T> {
    let blank = status == 204 || body.iter().all(u8::is_ascii_whitespace) || body == b"null";
    if !blank {
        match serde_json::from_slice(body) {
            Ok(v) => return Ok(v),
            Err(e) => {
                warn!(%method, path = %route.path, status, kind = ?e.classify(), line = e.line(), column = e.column(),
                    "CSMS answered with a body this client cannot read; reading back what it needs");
            }
        }
    }
    // `{}` for the answer types (every field has a default), `null` for `serde_json::Value`.
    serde_json::from_slice(b"{}")
        .or_else(|_| serde_json::from_slice(b"null"))
        .map_err(|e| {
            StoreError::internal(format!("reading the answer of {method} {}", route.path), e)
        })
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

/// A version read from an answer; its value is required.
fn version_from_wire(w: VersionWire, name: &str, requested: &str) -> StoreResult<Version> {
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
            format!("reading version {requested} of {name}"),
            "no secret_string or secret_binary in the answer",
        )),
    }
}

/// A secret from an answer, named as requested when the answer leaves its name out.
fn with_name(mut s: Secret, name: &str) -> Secret {
    if s.name.is_empty() {
        s.name = name.to_owned();
    }
    s
}

/// A stage from an answer, with its own and its secret's name filled in from the request.
fn with_stage_names(mut s: Stage, name: &str, stage: &str) -> Stage {
    if s.name.is_empty() {
        s.name = stage.to_owned();
    }
    if s.secret_name.is_empty() {
        s.secret_name = name.to_owned();
    }
    s
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
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::project(project, "secrets"),
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            // Created, but the answer does not say what: read it back.
            return self.show_secret(project, &name).await;
        }
        Ok(with_name(b.secret, &name))
    }

    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let b: SecretBody = self
            .call(
                project,
                Method::GET,
                &Route::secret(project, name),
                &[],
                None,
                true,
                None,
            )
            .await?;
        if b.secret == Secret::default() {
            return Err(StoreError::internal(
                format!("reading secret {name}"),
                "the answer holds no secret",
            ));
        }
        Ok(with_name(b.secret, name))
    }

    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let q = paging(limit, marker);
        let b: SecretsBody = self
            .call(
                project,
                Method::GET,
                &Route::project(project, "secrets"),
                &q,
                None,
                true,
                None,
            )
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
                &Route::secret(project, name),
                &[],
                Some(body),
                true,
                None,
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
    }

    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let _: serde_json::Value = self
            .call(
                project,
                Method::DELETE,
                &Route::secret(project, name),
                &[],
                None,
                true,
                None,
            )
            .await?;
        Ok(())
    }

    /// DeleteSecretForSchedule. After an ambiguous failure, a secret found PENDING_DELETE means it went
    /// through.
    async fn schedule_deletion(
        &self,
        project: &str,
        name: &str,
        recovery_window_in_days: Option<i64>,
    ) -> StoreResult<Secret> {
        let body = json(&ScheduleDeletionBody {
            recovery_window_in_days,
        })?;
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            Box::pin(async move {
                self.show_secret(project, name)
                    .await
                    .ok()
                    .filter(|s| s.state == SecretState::PendingDelete)
                    .map(|secret| SecretBody { secret })
            })
        };
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "scheduled-deleted-tasks/create"),
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
    }

    /// RestoreSecret. After an ambiguous failure, a secret found in another state than PENDING_DELETE
    /// means it went through.
    async fn restore_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            Box::pin(async move {
                self.show_secret(project, name)
                    .await
                    .ok()
                    .filter(|s| s.state != SecretState::PendingDelete)
                    .map(|secret| SecretBody { secret })
            })
        };
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "scheduled-deleted-tasks/cancel"),
                &[],
                None,
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
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
        // If the newest version holds our value, it is the one this call created.
        let ours = || -> futures::future::BoxFuture<'_, Option<VersionMetadataBody>> {
            let sent = sent.clone();
            Box::pin(async move {
                let latest = self.show_version(project, name, LATEST).await.ok()?;
                (Some(&latest.value) == sent.as_ref()).then_some(VersionMetadataBody {
                    version_metadata: latest.version_metadata,
                })
            })
        };
        let b: VersionMetadataBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "versions"),
                &[],
                Some(body),
                false,
                Some(&ours),
            )
            .await?;
        let mut md = b.version_metadata;
        if md.id.is_empty() {
            // Created, but the answer does not name it: the newest version holding our value is it.
            md = ours().await.map(|b| b.version_metadata).ok_or_else(|| {
                StoreError::internal(
                    format!("creating a version of {name}"),
                    "the answer names no version, and the newest version is not the one sent",
                )
            })?;
        }
        if md.secret_name.is_empty() {
            md.secret_name = name.to_owned();
        }
        Ok(md)
    }

    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        let b: VersionBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_item(project, name, "versions", version_id),
                &[],
                None,
                true,
                None,
            )
            .await?;
        let mut v = version_from_wire(b.version, name, version_id)?;
        self.complete_metadata(project, name, version_id, &mut v.version_metadata)
            .await?;
        Ok(v)
    }

    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let q = paging(limit, marker);
        let b: VersionMetadatasBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_action(project, name, "versions"),
                &q,
                None,
                true,
                None,
            )
            .await?;
        let mut version_metadatas = b.version_metadatas;
        for v in &mut version_metadatas {
            if v.secret_name.is_empty() {
                v.secret_name = name.to_owned();
            }
        }
        Ok(VersionPage {
            version_metadatas,
            page_info: b.page_info,
        })
    }

    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        let b: StageBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                None,
                true,
                None,
            )
            .await?;
        if b.stage.version_id.is_empty() {
            return Err(StoreError::internal(
                format!("reading stage {stage} of {name}"),
                "the answer names no version",
            ));
        }
        Ok(with_stage_names(b.stage, name, stage))
    }

    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        let body = json(&UpdateStageBody {
            version_id: version_id.to_owned(),
        })?;
        let b: StageBody = self
            .call(
                project,
                Method::PUT,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                Some(body),
                true,
                None,
            )
            .await?;
        let mut s = with_stage_names(b.stage, name, stage);
        if s.version_id.is_empty() {
            s.version_id = version_id.to_owned();
        }
        Ok(s)
    }

    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        let _: serde_json::Value = self
            .call(
                project,
                Method::DELETE,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                None,
                true,
                None,
            )
            .await?;
        Ok(())
    }

    /// CSMS changes the database through the secret's rotation function.
    fn changes_databases(&self) -> bool {
        false
    }

    /// RotateSecret, then: the task it started is polled until it finishes (when the answer names none,
    /// the secret's newest task since the call is), and the version it made current is read back (the
    /// answer's `version_id` may be missing, or name a version still pending).
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
                let task = self.find_rotation_task(project, name, started).await?;
                Some(RotateResult {
                    rotation_task_id: task,
                    ..RotateResult::default()
                })
            })
        };
        let answer: RotateResult = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "rotate"),
                &[],
                None,
                false,
                Some(&check),
            )
            .await?;
        let task_id = if answer.rotation_task_id.is_empty() {
            self.find_rotation_task(project, name, started).await
        } else {
            Some(answer.rotation_task_id)
        };
        match &task_id {
            Some(id) => self.poll_task(project, name, id).await?,
            None => warn!(
                secret = name,
                project,
                "RotateSecret named no task and none was found; reading the current version"
            ),
        }
        let current = self.show_stage(project, name, SYSCURRENT).await?;
        Ok(RotateResult {
            version_id: current.version_id,
            secret_name: name.to_owned(),
            rotation_task_id: task_id.unwrap_or_default(),
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
        let b: TasksBody = self
            .call(
                project,
                Method::GET,
                &Route::project(project, "csms/tasks"),
                &q,
                None,
                true,
                None,
            )
            .await?;
        Ok(TaskPage {
            total: b
                .total
                .max(u32::try_from(b.tasks.len()).unwrap_or(u32::MAX)),
            tasks: b.tasks,
            next_marker: b.next_marker.filter(|m| !m.is_empty()),
        })
    }

    /// One task by id; a service that ignores the `task_id` filter is read past.
    async fn show_task(&self, project: &str, task_id: &str) -> StoreResult<RotationTask> {
        let page = self
            .list_tasks(
                project,
                TaskFilter {
                    task_id: Some(task_id.to_owned()),
                    ..TaskFilter::default()
                },
            )
            .await?;
        page.tasks
            .into_iter()
            .find(|t| t.task_id == task_id)
            .ok_or_else(|| StoreError::NotFound {
                kind: "task",
                name: task_id.to_owned(),
            })
    }
}
