//! The operator's metrics and health endpoints: `/metrics` (OpenMetrics), `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{StatusCode, header};
use axum::routing::get;

use super::BoxError;
use crate::metrics::Metrics;

/// The endpoints' router; `/readyz` answers 200 once `ready` is set.
pub fn router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> axum::Router {
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS)], m.encode()) }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let r = ready.clone();
                async move {
                    if r.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
}

/// Binds `addr` and serves the endpoints in the background until `stop` resolves.
pub async fn start(
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding --metrics-addr {addr}: {e}"))?;
    tracing::info!(%addr, "metrics and health endpoints listening");
    let app = router(metrics, ready);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
    });
    Ok(())
}
