//! Start-up of the binary's subcommands: the arguments of each (clap), and what they start. `main.rs` only
//! parses and dispatches.

mod health;
pub mod notify_args;
pub mod operator;
pub mod serve;
pub mod store_args;

/// An error that ends a subcommand, printed by `main`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
