//! MySQL and MariaDB (and GaussDB/TaurusDB): `ALTER USER ... IDENTIFIED BY` with values quoted for the
//! session's `sql_mode`.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, SslOpts};
use tracing::debug;

use std::sync::Arc;

use super::pool::{AdminConn, AdminPool};
use super::{CONNECT_TIMEOUT, Connection, describe, mysql_guard, tls};
use crate::changer::{ChangeError, PasswordChanger, login_failure};
use secret_rotator_core::engine::TlsMode;
use secret_rotator_core::secret_value::SecretValue;

/// A MySQL-protocol server.
pub struct Mysql {
    conn: Connection,
    pool: Arc<AdminPool>,
}

/// Quotes a string literal. With `NO_BACKSLASH_ESCAPES` only quotes are doubled; otherwise backslashes
/// and the characters MySQL treats specially are escaped too.
pub fn quote_string(s: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' if !no_backslash_escapes => out.push_str("\\\\"),
            '\0' if !no_backslash_escapes => out.push_str("\\0"),
            '\n' if !no_backslash_escapes => out.push_str("\\n"),
            '\r' if !no_backslash_escapes => out.push_str("\\r"),
            '\u{1a}' if !no_backslash_escapes => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

impl Mysql {
    /// A target for `conn`, keeping administrator connections in `pool`.
    pub fn new(conn: Connection, pool: Arc<AdminPool>) -> Mysql {
        Mysql { conn, pool }
    }

    async fn connect(
        &self,
        user: &str,
        password: &SecretValue,
    ) -> Result<mysql_async::Conn, ChangeError> {
        crate::tls::install_crypto_provider();
        let pw = password
            .expose_str()
            .ok_or_else(|| ChangeError::new("CONFIG", "a MySQL password must be UTF-8"))?;
        let where_ = describe(&self.conn);
        let mut opts = OptsBuilder::default()
            .user(Some(user))
            .pass(Some(pw))
            .db_name(self.conn.database.clone())
            .prefer_socket(false);
        // An unverified server talks to the driver through the relay, which refuses the steps that would
        // send the password itself; a verified one gets the driver directly.
        let relay = match self.conn.tls {
            TlsMode::VerifyFull => {
                let mut ssl = SslOpts::default();
                if let Some(ca) = &self.conn.ca_pem {
                    ssl = ssl.with_root_certs(vec![ca.clone().into()]);
                }
                opts = opts
                    .ip_or_hostname(self.conn.host.clone())
                    .tcp_port(self.conn.port)
                    .ssl_opts(ssl);
                None
            }
            mode => {
                let tls = match mode {
                    TlsMode::Require => Some(Arc::new(tls::client_config(false, None)?)),
                    _ => None,
                };
                let relay =
                    mysql_guard::start(&self.conn.host, self.conn.port, tls, &where_).await?;
                opts = opts.ip_or_hostname("127.0.0.1").tcp_port(relay.port);
                Some(relay)
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts)).await {
            Err(_) => Err(ChangeError::new(
                "TIMEOUT",
                format!("connecting to {where_} as {user} timed out"),
            )),
            Ok(Err(e)) => {
                if let Some(failure) = relay.as_ref().and_then(|r| r.failure()) {
                    return Err(ChangeError::new(
                        &failure.code,
                        format!("connecting as {user}: {}", failure.message),
                    ));
                }
                let code = match &e {
                    mysql_async::Error::Server(s) if s.code == 1045 || s.code == 1044 => "AUTH",
                    _ => "CONNECT",
                };
                Err(ChangeError::new(
                    code,
                    format!("connecting to {where_} as {user}: {e}"),
                ))
            }
            Ok(Ok(c)) => Ok(c),
        }
    }
}

async fn no_backslash_escapes(conn: &mut mysql_async::Conn) -> Result<bool, ChangeError> {
    let mode: Option<String> = conn
        .query_first("SELECT @@SESSION.sql_mode")
        .await
        .map_err(|e| ChangeError::new("SET_PASSWORD", format!("reading sql_mode: {e}")))?;
    Ok(mode.unwrap_or_default().contains("NO_BACKSLASH_ESCAPES"))
}

/// Server errors without the statement text (which would hold the password).
fn server_error(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("server error {} ({})", s.code, s.state),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// `ALTER USER` for every host of `user`, as the administrator on `c`. The error says whether the server
/// answered it (`true`: a refusal) or the connection failed (`false`).
async fn alter_as_admin(
    c: &mut mysql_async::Conn,
    user: &str,
    new: &str,
    where_: &str,
) -> Result<(), (ChangeError, bool)> {
    let answered = |e: &mysql_async::Error| matches!(e, mysql_async::Error::Server(_));
    let nbe = match no_backslash_escapes(c).await {
        Ok(n) => n,
        Err(e) => return Err((e, false)),
    };
    let hosts: Vec<String> = c
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
        .await
        .map_err(|e| {
            let t = ChangeError::new(
                "SET_PASSWORD",
                format!(
                    "looking up the hosts of {user} on {where_}: {}",
                    server_error(&e)
                ),
            );
            (t, answered(&e))
        })?;
    if hosts.is_empty() {
        return Err((
            ChangeError::new(
                "SET_PASSWORD",
                format!("no account named {user} on {where_}"),
            ),
            true,
        ));
    }
    for host in hosts {
        let stmt = format!(
            "ALTER USER {}@{} IDENTIFIED BY {}",
            quote_string(user, nbe),
            quote_string(&host, nbe),
            quote_string(new, nbe)
        );
        c.query_drop(stmt).await.map_err(|e| {
            let t = ChangeError::new(
                "SET_PASSWORD",
                format!("ALTER USER {user}@{host} on {where_}: {}", server_error(&e)),
            );
            (t, answered(&e))
        })?;
    }
    Ok(())
}

#[async_trait]
impl PasswordChanger for Mysql {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        let new = new
            .expose_str()
            .ok_or_else(|| ChangeError::new("CONFIG", "a MySQL password must be UTF-8"))?;
        let where_ = describe(&self.conn);
        match (&self.conn.admin, current) {
            (Some((admin, pw)), _) => {
                let key = self.pool.key(&self.conn);
                let pooled = key.as_deref().and_then(|k| match self.pool.take(k) {
                    Some(AdminConn::My(c)) => Some(c),
                    _ => None,
                });
                let conn = match pooled {
                    // A kept connection that broke meanwhile (not a refusal by the server): a new one, once.
                    Some(mut c) => match alter_as_admin(&mut c, user, new, &where_).await {
                        Ok(()) => Some(c),
                        Err((_, false)) => None,
                        Err((e, true)) => return Err(e),
                    },
                    None => None,
                };
                let conn = match conn {
                    Some(c) => c,
                    None => {
                        let mut c = self.connect(admin, pw).await?;
                        alter_as_admin(&mut c, user, new, &where_)
                            .await
                            .map_err(|(e, _)| e)?;
                        c
                    }
                };
                match key {
                    Some(k) => self.pool.give(k, AdminConn::My(conn)),
                    None => {
                        let _ = conn.disconnect().await;
                    }
                }
            }
            (None, Some(cur)) => {
                let mut c = self.connect(user, cur).await?;
                let nbe = no_backslash_escapes(&mut c).await?;
                c.query_drop(format!(
                    "ALTER USER CURRENT_USER() IDENTIFIED BY {}",
                    quote_string(new, nbe)
                ))
                .await
                .map_err(|e| {
                    ChangeError::new(
                        "SET_PASSWORD",
                        format!(
                            "ALTER USER CURRENT_USER() as {user} on {where_}: {}",
                            server_error(&e)
                        ),
                    )
                })?;
                let _ = c.disconnect().await;
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
        debug!(user, target = %where_, "password changed");
        Ok(())
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        let mut c = self.connect(user, password).await.map_err(login_failure)?;
        let one: Option<i64> = c.query_first("SELECT 1").await.map_err(|e| {
            ChangeError::new(
                "LOGIN_TEST",
                format!("SELECT 1 as {user}: {}", server_error(&e)),
            )
        })?;
        let _ = c.disconnect().await;
        if one == Some(1) {
            Ok(())
        } else {
            Err(ChangeError::new(
                "LOGIN_TEST",
                format!("SELECT 1 as {user} gave no row"),
            ))
        }
    }

    fn describe(&self) -> String {
        describe(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_for_both_sql_modes() {
        assert_eq!(quote_string("abc", false), "'abc'");
        assert_eq!(quote_string("a'b", false), "'a''b'");
        assert_eq!(quote_string("a\\b", false), "'a\\\\b'");
        assert_eq!(quote_string("a\\b", true), "'a\\b'");
        assert_eq!(quote_string("a'b", true), "'a''b'");
        assert_eq!(quote_string("\0\n\r\u{1a}", false), "'\\0\\n\\r\\Z'");
        // Every printable ASCII character survives a round trip through the default-mode rules.
        let all: String = (0x20u8..0x7f).map(char::from).collect();
        let q = quote_string(&all, false);
        let inner = &q[1..q.len() - 1];
        let mut back = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => back.push(chars.next().unwrap()),
                '\'' => {
                    assert_eq!(chars.next(), Some('\''));
                    back.push('\'');
                }
                c => back.push(c),
            }
        }
        assert_eq!(back, all);
    }
}
