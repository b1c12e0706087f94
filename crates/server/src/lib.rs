//! `secret-rotator serve`: the CSMS REST API over any [`Store`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod error;
mod handlers;
pub mod replay;
pub mod targets;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{info, warn};

use auth::{AuthError, AuthFile, RequestParts};
use error::ApiError;
use secret_rotator_store::Store;
use secret_rotator_store::changer::ChangerResolver;
use secret_rotator_store::error::codes;

/// The largest request body accepted (values are at most 32 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The default tolerated difference between `X-Sdk-Date` and the server's clock.
pub const DEFAULT_MAX_SKEW_SECS: i64 = 900;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The backing store.
    pub store: Arc<dyn Store>,
    /// Credentials.
    pub auth: Arc<AuthFile>,
    /// Databases for rotations over the API.
    pub resolver: Option<Arc<dyn ChangerResolver>>,
    /// Allowed clock skew of signed requests, in seconds.
    pub max_skew_secs: i64,
    /// With `--refuse-replayed-signatures`: signatures of recent signed writes, refused a second time.
    pub replay: Option<Arc<replay::ReplayGuard>>,
    /// How RotateSecret answers.
    pub rotation: RotationMode,
}

/// How RotateSecret answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RotationMode {
    /// As the real service: at once, with the task; the database steps run in the background and the task
    /// becomes SUCCESS or FAILED (the default).
    #[default]
    Background,
    /// Once the rotation has finished: the new SYSCURRENT version, or the failure as an error answer
    /// (`--synchronous-rotation`).
    Synchronous,
}

/// The router with every CSMS path, authentication and the body limit.
pub fn router(state: AppState) -> Router {
    use handlers as h;
    let api = Router::new()
        .route(
            "/v1/{project}/secrets",
            post(h::create_secret).get(h::list_secrets),
        )
        .route(
            "/v1/{project}/secrets/{name}",
            get(h::show_secret)
                .put(h::update_secret)
                .delete(h::delete_secret),
        )
        .route(
            "/v1/{project}/secrets/{name}/versions",
            post(h::create_version).get(h::list_versions),
        )
        .route(
            "/v1/{project}/secrets/{name}/versions/{version}",
            get(h::show_version),
        )
        .route(
            "/v1/{project}/secrets/{name}/stages/{stage}",
            get(h::show_stage)
                .put(h::update_stage)
                .delete(h::delete_stage),
        )
        .route("/v1/{project}/secrets/{name}/rotate", post(h::rotate))
        .route(
            "/v1/{project}/secrets/{name}/scheduled-deleted-tasks/create",
            post(h::schedule_deletion),
        )
        .route(
            "/v1/{project}/secrets/{name}/scheduled-deleted-tasks/cancel",
            post(h::restore_secret),
        )
        .route("/v1/{project}/csms/tasks", get(h::list_tasks))
        .route(
            "/v1/{project}/csms/generate-password",
            post(h::generate_password),
        )
        .method_not_allowed_fallback(h::method_not_allowed)
        .fallback(h::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state);
    Router::new().route("/healthz", get(h::healthz)).merge(api)
}

/// The project segment of `/v1/{project}/...`.
/// How long a client may take to send its body, once its headers are in.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The body, bounded in size and in time.
async fn read_body(body: axum::body::Body) -> Result<bytes::Bytes, Response> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::BODY_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response()),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            codes::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} seconds",
                BODY_TIMEOUT.as_secs()
            ),
        )
        .into_response()),
    }
}

fn project_of(path: &str) -> Option<&str> {
    let mut parts = path.split('/');
    (parts.next() == Some("") && parts.next() == Some("v1"))
        .then(|| parts.next())
        .flatten()
}

/// Buffers the body (bounded), authenticates, and checks the project.
async fn authenticate(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let path = parts.uri.path();
    let now = jiff::Timestamp::now();
    // Headers first: nothing of an unauthenticated request's body is read.
    let checked = auth::check_headers(&st.auth, &header, now, st.max_skew_secs);
    let bytes = match &checked {
        Err(_) => bytes::Bytes::new(),
        Ok(_) => match read_body(body).await {
            Ok(b) => b,
            Err(refusal) => return refusal,
        },
    };
    let result = checked.and_then(|c| match c {
        auth::HeaderCheck::Done(p) => Ok(p),
        auth::HeaderCheck::Signed {
            key,
            parsed,
            date,
            date_text,
        } => auth::check_signature(
            key,
            &parsed,
            (date, &date_text),
            &RequestParts {
                method: parts.method.as_str(),
                path,
                query: parts.uri.query(),
                header: &header,
                body: &bytes,
            },
            st.max_skew_secs,
        ),
    });
    let principal = match result {
        Ok(p)
            if p.signature.as_ref().is_some_and(|(sig, expires)| {
                !matches!(parts.method, Method::GET | Method::HEAD)
                    && st.replay.as_ref().is_some_and(|guard| {
                        !guard.first_use(sig, *expires, jiff::Timestamp::now().as_second())
                    })
            }) =>
        {
            warn!(method = %parts.method, path, "refused a replayed signed request");
            return ApiError::unauthorized(
                "this signed request was already used: sign each request anew (a new X-Sdk-Date)",
            )
            .into_response();
        }
        Ok(p) => p,
        Err(e) => {
            warn!(method = %parts.method, path, error = %e, "refused an unauthenticated request");
            return match e {
                AuthError::Malformed(_) => ApiError::unauthorized(e.to_string()),
                _ => ApiError::unauthorized(e.to_string()),
            }
            .into_response();
        }
    };
    if let Some(project) = project_of(path)
        && !principal.allows(project)
    {
        warn!(principal = %principal.name, project, "refused a request for a project the credentials do not cover");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "these credentials do not grant access to this project",
        )
        .into_response();
    }
    let method = parts.method.clone();
    let path = path.to_owned();
    let response = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    info!(principal = %principal.name, %method, path, status = response.status().as_u16(), "request");
    response
}

/// TLS files for `serve`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or serving failed.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS files are unusable.
    #[error("TLS certificate {cert} or key {key}: {message}")]
    Tls {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// The cause.
        message: String,
    },
}

/// Serves the router on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<TlsFiles>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Io { addr, source })?;
    match tls {
        None => {
            let mut server = axum_server::from_tcp(listener)
                .map_err(|source| ServeError::Io { addr, source })?;
            server
                .http_builder()
                .http1()
                .header_read_timeout(HEADER_TIMEOUT);
            info!(%addr, "CSMS API listening (plain HTTP)");
            server
                .handle(shutdown_handle(shutdown))
                .serve(app.into_make_service())
                .await
                .map_err(|source| ServeError::Io { addr, source })
        }
        Some(files) => {
            secret_rotator_store::tls::install_crypto_provider();
            let config =
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|e| ServeError::Tls {
                        cert: files.cert.display().to_string(),
                        key: files.key.display().to_string(),
                        message: e.to_string(),
                    })?;
            let mut server = axum_server::from_tcp_rustls(listener, config)
                .map_err(|source| ServeError::Io { addr, source })?;
            server
                .http_builder()
                .http1()
                .header_read_timeout(HEADER_TIMEOUT);
            info!(%addr, "CSMS API listening (TLS)");
            server
                .handle(shutdown_handle(shutdown))
                .serve(app.into_make_service())
                .await
                .map_err(|source| ServeError::Io { addr, source })
        }
    }
}

/// A handle that shuts the server down gracefully (10 s at most) once `shutdown` resolves.
fn shutdown_handle(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> axum_server::Handle<SocketAddr> {
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    handle
}
