//! Administrator connections kept open for a short, bounded idle time, so that a rotation does not pay
//! for a new connection and authentication each time.
//!
//! A connection is reused only for the same server and the same administrator credentials: the key holds
//! the engine, host, port, database, TLS mode and CA, the administrator's name, and a salted SHA-256 of the
//! password (the salt is random per process, so the key reveals nothing). One tenant's SecretRotation never
//! rides another's authenticated connection unless it holds the same password. Idle connections are dropped
//! after [`IDLE`]; at most [`MAX_IDLE_PER_KEY`] per key and [`MAX_KEYS`] keys are kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::Connection;

/// How long an unused administrator connection stays open.
pub const IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per server and administrator.
pub const MAX_IDLE_PER_KEY: usize = 2;
/// Servers and administrators with idle connections, at most.
pub const MAX_KEYS: usize = 256;

/// An open administrator connection.
pub enum AdminConn {
    /// PostgreSQL.
    Pg(tokio_postgres::Client),
    /// MySQL, MariaDB, GaussDB.
    My(mysql_async::Conn),
}

struct Idle {
    conn: AdminConn,
    since: Instant,
}

/// The idle administrator connections.
pub struct AdminPool {
    salt: [u8; 32],
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Default for AdminPool {
    fn default() -> Self {
        AdminPool {
            salt: rand::random(),
            idle: Mutex::new(HashMap::new()),
        }
    }
}

impl AdminPool {
    /// The key of `conn`'s administrator connections; `None` without an administrator.
    pub fn key(&self, conn: &Connection) -> Option<String> {
        let (user, password) = conn.admin.as_ref()?;
        let hash = |bytes: &[u8]| {
            let mut h = Sha256::new();
            h.update(self.salt);
            h.update(bytes);
            hex::encode(h.finalize())
        };
        Some(format!(
            "{:?}|{}|{}|{}|{:?}|{}|{}|{}",
            conn.engine,
            conn.host,
            conn.port,
            conn.database.as_deref().unwrap_or_default(),
            conn.tls,
            conn.ca_pem.as_deref().map(hash).unwrap_or_default(),
            user,
            hash(password.expose())
        ))
    }

    /// An idle connection for `key`, if one is fresh enough; stale ones are dropped on the way.
    pub fn take(&self, key: &str) -> Option<AdminConn> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(i) = list.pop() {
            let alive = match &i.conn {
                AdminConn::Pg(c) => !c.is_closed(),
                AdminConn::My(_) => true,
            };
            if alive && i.since.elapsed() < IDLE {
                found = Some(i.conn);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps `conn` for reuse, within the bounds; expired connections of every key go.
    pub fn give(&self, key: String, conn: AdminConn) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        idle.retain(|_, list| {
            list.retain(|i| i.since.elapsed() < IDLE);
            !list.is_empty()
        });
        if idle.len() >= MAX_KEYS && !idle.contains_key(&key) {
            return;
        }
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_KEY {
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections now (for tests).
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .map(|i| i.values().map(Vec::len).sum())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secret_rotator_core::engine::{DatabaseEngine, TlsMode};
    use secret_rotator_core::secret_value::SecretValue;

    fn conn(user: &str, pw: &str) -> Connection {
        Connection {
            engine: DatabaseEngine::Postgresql,
            host: "db".into(),
            port: 5432,
            database: None,
            tls: TlsMode::Require,
            ca_pem: None,
            admin: Some((user.into(), SecretValue::from_str_value(pw))),
        }
    }

    #[test]
    fn keys_separate_servers_and_credentials_and_hide_the_password() {
        let pool = AdminPool::default();
        let k = pool.key(&conn("dba", "secret-pw")).unwrap();
        assert!(!k.contains("secret-pw"), "{k}");
        assert_eq!(Some(k.clone()), pool.key(&conn("dba", "secret-pw")));
        assert_ne!(Some(k.clone()), pool.key(&conn("dba", "other-pw")));
        assert_ne!(Some(k.clone()), pool.key(&conn("root", "secret-pw")));
        let mut other_port = conn("dba", "secret-pw");
        other_port.port = 5433;
        assert_ne!(Some(k.clone()), pool.key(&other_port));
        let mut no_admin = conn("dba", "secret-pw");
        no_admin.admin = None;
        assert_eq!(pool.key(&no_admin), None);
        // Another process (another salt) makes another key for the same credentials.
        assert_ne!(Some(k), AdminPool::default().key(&conn("dba", "secret-pw")));
    }
}
