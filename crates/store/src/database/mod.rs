//! Password changers for PostgreSQL and MySQL/MariaDB behind the store's [`PasswordChanger`] trait.

pub mod mysql;
mod mysql_guard;
pub mod pool;
pub mod postgres;
mod postgres_guard;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use crate::changer::PasswordChanger;
use secret_rotator_core::engine::{DatabaseEngine, TlsMode};
use secret_rotator_core::secret_value::SecretValue;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to connect.
#[derive(Clone)]
pub struct Connection {
    /// Engine.
    pub engine: DatabaseEngine,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database to connect to (PostgreSQL default `postgres`).
    pub database: Option<String>,
    /// TLS mode.
    pub tls: TlsMode,
    /// PEM CA bundle for verify-full.
    pub ca_pem: Option<Vec<u8>>,
    /// Administrator credentials; without them an account changes its own password.
    pub admin: Option<(String, SecretValue)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("admin", &self.admin.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// The target for a connection, with administrator connections kept for its own reuse only.
pub fn target(conn: Connection) -> Arc<dyn PasswordChanger> {
    changer_in(conn, Arc::new(pool::AdminPool::default()))
}

/// The target for a connection, keeping administrator connections in a shared `pool` (the operator's).
pub fn changer_in(conn: Connection, pool: Arc<pool::AdminPool>) -> Arc<dyn PasswordChanger> {
    match conn.engine {
        DatabaseEngine::Postgresql => Arc::new(postgres::Postgres::new(conn, pool)),
        DatabaseEngine::Mysql => Arc::new(mysql::Mysql::new(conn, pool)),
    }
}

/// A short description of a connection for messages: engine, host and port, never a credential.
pub fn describe(conn: &Connection) -> String {
    format!("{:?} {}:{}", conn.engine, conn.host, conn.port).to_lowercase()
}
