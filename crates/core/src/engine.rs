//! The database engines and TLS modes the operator, the store and the server agree on.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Database engine.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseEngine {
    /// PostgreSQL.
    Postgresql,
    /// MySQL, MariaDB, or GaussDB (TaurusDB).
    Mysql,
}

impl DatabaseEngine {
    /// The engine's usual port.
    pub fn default_port(self) -> u16 {
        match self {
            DatabaseEngine::Postgresql => 5432,
            DatabaseEngine::Mysql => 3306,
        }
    }
}

/// TLS mode for database connections.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TlsMode {
    /// Plain TCP, no encryption.
    #[serde(rename = "disable")]
    Disable,
    /// Encrypted, the server's certificate not verified.
    #[default]
    #[serde(rename = "require")]
    Require,
    /// Encrypted, the certificate and host name verified.
    #[serde(rename = "verify-full")]
    VerifyFull,
}
