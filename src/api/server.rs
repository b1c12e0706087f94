//! The database servers the platform team declares: `ClusterDatabaseServer` (cluster-scoped, serving the
//! namespaces it allows) and `DatabaseServer` (namespaced, serving its own namespace). A SecretRotation
//! names a server and an account; the host, the TLS settings and the administrator's Secret belong to the
//! server, and the operator reads that Secret only from the server's namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AdminSecretRef, DatabaseEngine, DatabaseTls, TlsMode};

const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A database server for the whole cluster, written by cluster administrators: where it is, how to reach
/// it, whose credentials change passwords on it, which namespaces may use it and which accounts they may
/// rotate.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretrotator.dev",
    version = "v1alpha1",
    kind = "ClusterDatabaseServer",
    plural = "clusterdatabaseservers",
    singular = "clusterdatabaseserver",
    shortname = "cdbs",
    category = "secretrotator",
    status = "DatabaseServerStatus",
    doc = "ClusterDatabaseServer is a database server that SecretRotations of the namespaces it allows may rotate accounts on.",
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterDatabaseServerSpec {
    /// Database engine: postgresql or mysql (MySQL, MariaDB, GaussDB/TaurusDB).
    pub engine: DatabaseEngine,
    /// Host name or IP address of the database server.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.:\[\]_-]+$"))]
    pub host: String,
    /// TCP port. Defaults to 5432 for postgresql and 3306 for mysql.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The database logins go to unless a SecretRotation names another. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
    /// TLS for connections to the server.
    #[serde(default)]
    pub tls: ClusterServerTls,
    /// The Secret holding the administrator's credentials that change passwords, in the namespace it
    /// names (read only there, never on a tenant's behalf). Without it, SingleUser rotations log in as the
    /// account itself with its current password, which its owner hands over once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret_ref: Option<NamespacedAdminSecretRef>,
    /// The namespaces whose SecretRotations may use this server: those named, and those whose labels the
    /// selector matches. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<AllowedNamespaces>,
    /// Account name patterns a SecretRotation may rotate on this server (`*` matches any run of characters
    /// except a dot). Absent or empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub accounts: Vec<String>,
    /// Whether built-in superusers (postgres, root, mysql.sys, ...) may be rotated. Default false.
    #[serde(default)]
    pub allow_superusers: bool,
}

/// A database server for one namespace, written by that namespace's administrators: the same as a
/// ClusterDatabaseServer, with its Secrets in its own namespace and serving that namespace only.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretrotator.dev",
    version = "v1alpha1",
    kind = "DatabaseServer",
    plural = "databaseservers",
    singular = "databaseserver",
    shortname = "dbs",
    category = "secretrotator",
    namespaced,
    status = "DatabaseServerStatus",
    doc = "DatabaseServer is a database server that SecretRotations of its own namespace may rotate accounts on.",
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerSpec {
    /// Database engine: postgresql or mysql (MySQL, MariaDB, GaussDB/TaurusDB).
    pub engine: DatabaseEngine,
    /// Host name or IP address of the database server.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.:\[\]_-]+$"))]
    pub host: String,
    /// TCP port. Defaults to 5432 for postgresql and 3306 for mysql.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// The database logins go to unless a SecretRotation names another. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
    /// TLS for connections to the server; its CA Secret is in this server's namespace.
    #[serde(default)]
    pub tls: DatabaseTls,
    /// The Secret in this server's namespace holding the administrator's credentials that change
    /// passwords. Without it, SingleUser rotations log in as the account itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret_ref: Option<AdminSecretRef>,
    /// Account name patterns a SecretRotation may rotate on this server (`*` matches any run of characters
    /// except a dot). Absent or empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    pub accounts: Vec<String>,
    /// Whether built-in superusers (postgres, root, mysql.sys, ...) may be rotated. Default false.
    #[serde(default)]
    pub allow_superusers: bool,
}

/// TLS settings of a ClusterDatabaseServer.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterServerTls {
    /// disable: plain TCP. require: TLS without verifying the server's certificate. verify-full: TLS, the
    /// certificate verified against caSecretRef (or, without one, the Mozilla roots the operator ships)
    /// and the host name checked.
    #[serde(default)]
    pub mode: TlsMode,
    /// A key of a Secret holding the PEM CA bundle for verify-full, in the namespace it names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<NamespacedKeyRef>,
}

/// Administrator credentials in a Secret of the namespace named.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedAdminSecretRef {
    /// The Secret's namespace.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Key of the administrator's user name.
    #[serde(default = "super::default_username_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub username_key: String,
    /// Key of the administrator's password.
    #[serde(default = "super::default_password_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub password_key: String,
}

/// A key of a Secret in the namespace named.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedKeyRef {
    /// The Secret's namespace.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "super::default_ca_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub key: String,
}

/// The namespaces a ClusterDatabaseServer serves.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub names: Vec<String>,
    /// Namespaces whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// What the operator last found about a server.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerStatus {
    /// The generation the conditions are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: True once the administrator logged in (or, without one, once the spec is valid); False with
    /// the reason otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub conditions: Vec<Condition>,
}

/// Which server a SecretRotation's account is on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerRef {
    /// The server's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
    /// ClusterDatabaseServer (the default) or DatabaseServer (in the SecretRotation's namespace).
    #[serde(default)]
    pub kind: ServerKind,
}

/// The two kinds of server.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServerKind {
    /// Cluster-scoped, serving the namespaces it allows.
    #[default]
    ClusterDatabaseServer,
    /// In the SecretRotation's own namespace.
    DatabaseServer,
}

impl std::fmt::Display for ServerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}", self.kind, self.name)
    }
}
