//! The process-wide rustls crypto provider (ring), shared by the HTTP client and server.

/// Installs ring as the default rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
