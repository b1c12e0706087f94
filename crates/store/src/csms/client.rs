//! The HTTP client of the csms store: authentication (IAM token or AK/SK), one request with retries, and
//! how an answer is classified.

use std::time::Duration;

use rand::Rng;
use reqwest::Method;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use super::auth::CsmsAuth;
use super::auth::{IAM_REFRESH_MARGIN, IamToken};
use super::route::{Route, answer_error, query_string};
use crate::protocol::signer;
use crate::{StoreError, StoreResult};

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
    pub(super) http: reqwest::Client,
    pub(super) endpoint: String,
    pub(super) auth: CsmsAuth,
    pub(super) opts: CsmsOptions,
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
pub(super) enum Attempt<T> {
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
pub(super) const TASK_CLOCK_SLACK_MS: i64 = 60_000;

/// Pages of versions read back, at most, to find a version's creation time.
pub(super) const READ_BACK_PAGES: usize = 10;

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

    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.opts.backoff_cap);
        // Full jitter.
        Duration::from_millis(rand::rng().random_range(0..=cap.as_millis().max(1) as u64))
    }

    /// `project`'s IAM token: the cached one until ten minutes before it expires, else a new one.
    pub(super) async fn iam_token(
        &self,
        project: &str,
        config: &super::auth::IamSource,
        tokens: &super::auth::IamTokens,
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
    pub(super) async fn attempt(
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
    pub(super) async fn authenticate(
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
    pub(super) async fn call<'c, T: DeserializeOwned>(
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
}

/// The outcome of one answer: done (2xx), retried (429 and 5xx; 5xx may have taken effect), or fatal.
pub(super) fn classify(
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
pub(super) fn read_answer<T: DeserializeOwned>(
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
pub(super) fn without_url(e: &reqwest::Error) -> String {
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
