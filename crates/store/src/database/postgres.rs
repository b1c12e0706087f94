//! PostgreSQL: the new password goes to the server only as a SCRAM-SHA-256 verifier computed here, so the
//! plaintext never reaches the server or its logs.

use async_trait::async_trait;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::config::{ChannelBinding, SslMode};
use tracing::debug;

use std::sync::Arc;

use super::pool::{AdminConn, AdminPool};
use super::{CONNECT_TIMEOUT, Connection, describe, postgres_guard, tls};
use crate::changer::{ChangeError, PasswordChanger, login_failure};
use secret_rotator_core::engine::TlsMode;
use secret_rotator_core::secret_value::SecretValue;

/// A PostgreSQL server.
pub struct Postgres {
    conn: Connection,
    pool: Arc<AdminPool>,
}

impl Postgres {
    /// A target for `conn`, keeping administrator connections in `pool`.
    pub fn new(conn: Connection, pool: Arc<AdminPool>) -> Postgres {
        Postgres { conn, pool }
    }

    async fn connect(
        &self,
        user: &str,
        password: &SecretValue,
    ) -> Result<tokio_postgres::Client, ChangeError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.conn.host)
            .port(self.conn.port)
            .user(user)
            .password(password.expose())
            .dbname(self.conn.database.as_deref().unwrap_or("postgres"))
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("secret-rotator");
        let where_ = describe(&self.conn);
        let classify = |e: tokio_postgres::Error| classify(e, &where_, user);
        let client = match self.conn.tls {
            TlsMode::Disable => {
                // No TLS: the driver would answer a cleartext or MD5 request, so the socket is watched.
                cfg.ssl_mode(SslMode::Disable);
                let socket = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((self.conn.host.as_str(), self.conn.port)),
                )
                .await
                .map_err(|_| {
                    ChangeError::new(
                        "TIMEOUT",
                        format!("connecting to {where_} as {user} timed out"),
                    )
                })?
                .map_err(|e| ChangeError::new("CONNECT", format!("connecting to {where_}: {e}")))?;
                let _ = socket.set_nodelay(true);
                let guarded = postgres_guard::GuardedStream::new(socket);
                let (client, connection) = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    cfg.connect_raw(guarded, tokio_postgres::NoTls),
                )
                .await
                .map_err(|_| {
                    ChangeError::new(
                        "TIMEOUT",
                        format!("authenticating to {where_} as {user} timed out"),
                    )
                })?
                .map_err(classify)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            mode => {
                cfg.ssl_mode(SslMode::Require);
                let verify = mode == TlsMode::VerifyFull;
                if !verify {
                    // An unverified server gets SCRAM with channel binding or nothing: cleartext and MD5
                    // requests fail in the driver, and so does SCRAM without the binding.
                    cfg.channel_binding(ChannelBinding::Require);
                }
                let config = tls::client_config(verify, self.conn.ca_pem.as_deref())?;
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(config);
                let (client, connection) = cfg.connect(connector).await.map_err(classify)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }
}

/// A connection failure as a target error: INSECURE_AUTH when a guard refused the server's method, AUTH
/// when the server refused the credentials, CONNECT otherwise. Never the password.
fn classify(e: tokio_postgres::Error, where_: &str, user: &str) -> ChangeError {
    let db_code = e.code().map(|c| c.code().to_owned());
    if let Some(method) = postgres_guard::insecure_method(&e) {
        return ChangeError::new(
            "INSECURE_AUTH",
            format!(
                "connecting to {where_} as {user}: the server asked for {method}; without tls.mode \
                         verify-full the password goes only through SCRAM (set the account's method to \
                         scram-sha-256 in pg_hba.conf, or verify the server)"
            ),
        );
    }
    let cause = std::error::Error::source(&e).map(|c| c.to_string());
    let e = match &cause {
        Some(c) => format!("{e}: {c}"),
        None => e.to_string(),
    };
    if cause.as_deref() == Some("server did not use channel binding") {
        return ChangeError::new(
            "INSECURE_AUTH",
            format!(
                "connecting to {where_} as {user}: the server did not authenticate with SCRAM and \
                         channel binding; over TLS that is not verified the password goes only that way (use \
                         scram-sha-256 in pg_hba.conf, or tls.mode verify-full)"
            ),
        );
    }
    let code = match db_code {
        Some(c) if c.starts_with("28") => "AUTH",
        _ => "CONNECT",
    };
    // The driver's messages name the user and the server's reason, never the password.
    ChangeError::new(code, format!("connecting to {where_} as {user}: {e}"))
}

/// The statement that sets `user`'s password to the SCRAM verifier of `password`.
pub fn alter_role_statement(user: &str, password: &SecretValue) -> String {
    let verifier = postgres_protocol::password::scram_sha_256(password.expose());
    format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        escape_identifier(user),
        escape_literal(&verifier)
    )
}

#[async_trait]
impl PasswordChanger for Postgres {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        let statement = alter_role_statement(user, new);
        let failed = |e: tokio_postgres::Error| {
            ChangeError::new(
                "SET_PASSWORD",
                format!("ALTER ROLE {user} on {}: {e}", describe(&self.conn)),
            )
        };
        match (&self.conn.admin, current) {
            (Some((admin, pw)), _) => {
                let key = self.pool.key(&self.conn);
                let pooled = key.as_deref().and_then(|k| match self.pool.take(k) {
                    Some(AdminConn::Pg(c)) => Some(c),
                    _ => None,
                });
                let client = match pooled {
                    // A kept connection the server closed meanwhile: a new one, once.
                    Some(c) => match c.batch_execute(&statement).await {
                        Ok(()) => Some(c),
                        Err(_) if c.is_closed() => None,
                        Err(e) => return Err(failed(e)),
                    },
                    None => None,
                };
                let client = match client {
                    Some(c) => c,
                    None => {
                        let c = self.connect(admin, pw).await?;
                        c.batch_execute(&statement).await.map_err(failed)?;
                        c
                    }
                };
                if let Some(k) = key {
                    self.pool.give(k, AdminConn::Pg(client));
                }
            }
            (None, Some(cur)) => {
                let client = self.connect(user, cur).await?;
                client.batch_execute(&statement).await.map_err(failed)?;
            }
            (None, None) => {
                return Err(ChangeError::new(
                    "CONFIG",
                    format!(
                        "no administrator and no current password for {user}: set adminSecretRef"
                    ),
                ));
            }
        }
        debug!(user, target = %describe(&self.conn), "password changed");
        Ok(())
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        let client = self.connect(user, password).await.map_err(login_failure)?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| ChangeError::new("LOGIN_TEST", format!("SELECT 1 as {user}: {e}")))?;
        Ok(())
    }

    fn describe(&self) -> String {
        describe(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_carries_a_verifier_not_the_password() {
        let pw = SecretValue::from_str_value("pa'ss\"word\\x");
        let s = alter_role_statement("app\"user", &pw);
        assert!(
            s.starts_with("ALTER ROLE \"app\"\"user\" WITH PASSWORD 'SCRAM-SHA-256$4096:"),
            "{s}"
        );
        assert!(!s.contains("pa'ss"), "{s}");
        assert!(!s.contains("word"), "{s}");
    }
}
