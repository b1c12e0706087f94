//! The `SecretRotation` custom resource (`secretrotator.dev/v1alpha1`) and the project's public names.
//!
//! Doc comments on the spec and status fields become the descriptions that `kubectl explain` prints.
//! Every rule the OpenAPI schema can hold is expressed here (enums, bounds, patterns, defaults); rules
//! that cross fields live in the `validation` module.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use secret_rotator_core::engine::{DatabaseEngine, TlsMode};

mod server;

pub use server::*;

/// Annotation on a SecretRotation: a new value asks for one rotation.
pub const ANNOTATION_ROTATE_NOW: &str = "secretrotator.dev/rotate-now";
/// Annotation asking for a rollback: `vN`, or `vN/<anything new>` to ask again for the same version.
/// Handled once per value (`status.lastRollback.request`).
pub const ANNOTATION_ROLLBACK_TO: &str = "secretrotator.dev/rollback-to";
/// Annotation on the synced Secret: the store version it holds.
pub const ANNOTATION_VERSION_ID: &str = "secretrotator.dev/version-id";
/// Annotation on the synced Secret: the rotation task that produced it (empty for COMMON secrets).
pub const ANNOTATION_ROTATION_TASK_ID: &str = "secretrotator.dev/rotation-task-id";
/// Annotation set on the pod template of each restart target after a rotation.
pub const ANNOTATION_RESTARTED_AT: &str = "secretrotator.dev/restarted-at";
/// Annotation on an existing Secret, set by its owner: `"true"` lets the SecretRotation that names it as its
/// synced Secret take it over (and, for a database secret without an administrator, read the account's
/// current password from its key `password`). Without it the operator never writes a Secret it did not
/// create.
pub const ANNOTATION_ADOPT: &str = "secretrotator.dev/adopt";
/// Field manager used for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "secret-rotator";
/// Condition type: the synced Secret holds the store's SYSCURRENT value.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: a rotation is in progress.
pub const CONDITION_ROTATING: &str = "Rotating";

/// Desired state of a SecretRotation: which store secret to rotate, how often, how to generate values,
/// and which Kubernetes Secret to keep in sync with the store's current version.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "secretrotator.dev",
    version = "v1alpha1",
    kind = "SecretRotation",
    plural = "secretrotations",
    singular = "secretrotation",
    shortname = "srot",
    category = "secretrotator",
    namespaced,
    status = "SecretRotationStatus",
    doc = "SecretRotation rotates one secret in a CSMS-compatible store on a schedule and keeps a Kubernetes Secret in sync with its current version.",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.versionId","description":"The store version the synced Secret holds"}"#,
    printcolumn = r#"{"name":"Task","type":"string","jsonPath":".status.rotationTaskId","description":"The rotation task of the last database rotation"}"#,
    printcolumn = r#"{"name":"Last Rotation","type":"date","jsonPath":".status.lastRotationTime"}"#,
    printcolumn = r#"{"name":"Next Rotation","type":"string","jsonPath":".status.nextRotationTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Rotating","type":"string","jsonPath":".status.conditions[?(@.type==\"Rotating\")].reason","description":"Idle, InProgress, Retrying, or WaitingForWindow when a due rotation waits for its maintenance window"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationSpec {
    /// Name of the secret in the backing store. Defaults to "<namespace>.<metadata.name>". Unless the
    /// operator's policy grants more, it must start with "<namespace>.". Letters, digits, '.', '_' and '-',
    /// at most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub secret_name: Option<String>,

    /// Kind of secret, as CSMS names it. COMMON: a generated value (an API key, a token) written as a new
    /// version. RDS-FG and GaussDB-FG: a database credential rotated with CSMS RotateSecret semantics, which
    /// also changes the password on the database. GaussDB-FG needs database.engine mysql.
    #[serde(default)]
    pub secret_type: SecretType,

    /// CSMS project that holds the secret. Defaults to the operator's project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,64}$"))]
    pub project_id: Option<String>,

    /// When to rotate. Exactly one of period or schedule must be set.
    pub rotation: RotationSpec,

    /// The database whose password rotates. Required for RDS-FG and GaussDB-FG; must be absent for COMMON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSpec>,

    /// Policy for generated values (passwords and COMMON values), mirroring CSMS GenerateRandomPassword.
    #[serde(default)]
    pub password: PasswordSpec,

    /// The Kubernetes Secret kept in sync with the store's SYSCURRENT version.
    #[serde(default)]
    pub target: TargetSpec,

    /// Workloads in the same namespace whose pods are restarted (their pod template annotated with
    /// secretrotator.dev/restarted-at) after each rotation that changed the synced data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub restart_targets: Vec<RestartTarget>,

    /// Stops scheduled and requested rotations while true. The synced Secret is still kept in sync.
    #[serde(default)]
    pub suspend: bool,
}

/// Kind of store secret, with CSMS's names.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum SecretType {
    /// A generic secret: each rotation generates a value and creates a new version.
    #[default]
    #[serde(rename = "COMMON")]
    Common,
    /// An RDS database credential (PostgreSQL or MySQL).
    #[serde(rename = "RDS-FG")]
    RdsFg,
    /// A GaussDB (TaurusDB) credential; speaks the MySQL protocol.
    #[serde(rename = "GaussDB-FG")]
    GaussDbFg,
}

impl SecretType {
    /// The name CSMS uses for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretType::Common => "COMMON",
            SecretType::RdsFg => "RDS-FG",
            SecretType::GaussDbFg => "GaussDB-FG",
        }
    }

    /// Whether this type is a database credential rotated by RotateSecret.
    pub fn is_database(self) -> bool {
        !matches!(self, SecretType::Common)
    }
}

impl std::fmt::Display for SecretType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When rotations happen.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// Time between rotations: a positive integer and a unit, s, m, h or d (for example 30d, 12h, 90m).
    /// Measured from the last rotation. Exclusive with schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,7}[smhd]$"))]
    pub period: Option<String>,

    /// Five-field cron expression (minute hour day-of-month month day-of-week), in timeZone (default
    /// UTC), for example "0 3 * * 0" for 03:00 every Sunday. Exclusive with period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\s*\S+(\s+\S+){4}\s*$"), length(max = 128))]
    pub schedule: Option<String>,

    /// With schedule only: a rotation may start only within this long after a cron tick (for example 2h).
    /// A tick missed for longer (the operator was down) waits for the next one. Without it, a missed tick
    /// rotates as soon as possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,7}[smhd]$"))]
    pub window: Option<String>,

    /// Rotate once as soon as the resource is created, instead of adopting the store's current version.
    #[serde(default = "default_true")]
    pub rotate_on_create: bool,

    /// IANA time zone (for example Europe/Berlin, Asia/Shanghai) in which schedule and
    /// maintenanceWindow.schedule are read. Default UTC. Across a daylight-saving change a tick that
    /// falls in the skipped hour runs right after it, and a tick in the repeated hour runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,

    /// When due rotations may start: a scheduled rotation (period elapsed or cron tick passed) that falls
    /// due outside the window waits for the next opening. rotate-now, the first value and rotateOnCreate
    /// do not wait. The status says when a rotation waits (Rotating=False, reason WaitingForWindow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindowSpec>,
}

/// Recurring times in which due rotations may start.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindowSpec {
    /// Five-field cron expression for the window's openings, in the rotation's timeZone, for example
    /// "0 1 * * *" for 01:00 every night.
    #[schemars(regex(pattern = r"^\s*\S+(\s+\S+){4}\s*$"), length(max = 128))]
    pub schedule: String,
    /// How long the window stays open after each opening: a positive integer and a unit, s, m, h or d
    /// (for example 3h). A rotation starts inside the window; it may finish after it closes.
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,7}[smhd]$"))]
    pub duration: String,
}

fn default_true() -> bool {
    true
}

/// The account whose credential rotates, and the server it is on. The server (a ClusterDatabaseServer or a
/// DatabaseServer) holds the host, TLS settings and administrator; the resource names only the server and
/// the account.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// The server: a ClusterDatabaseServer that allows this namespace (the default kind), or a
    /// DatabaseServer in this namespace.
    pub server_ref: ServerRef,

    /// Database to connect to and to write into the synced Secret; the server's when absent. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,

    /// SingleUser: every rotation resets one account's password. MultiUser: two accounts alternate; a
    /// rotation resets the password of the account not in use, then makes it current.
    #[serde(default)]
    pub mode: DatabaseMode,

    /// The account whose password rotates (SingleUser). The server's accounts patterns must allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$"))]
    pub username: Option<String>,

    /// The two accounts that alternate (MultiUser): exactly two, distinct, both allowed by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 2),
        inner(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$"))
    )]
    pub usernames: Option<Vec<String>>,
}

/// How accounts are rotated (CSMS SecretSubType).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DatabaseMode {
    /// One account; each rotation resets its password.
    #[default]
    SingleUser,
    /// Two accounts that alternate; the account in use is never the one whose password changes.
    MultiUser,
}

/// A reference to administrator credentials in a Secret of the DatabaseServer's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminSecretRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key of the administrator's user name.
    #[serde(default = "default_username_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub username_key: String,
    /// Key of the administrator's password.
    #[serde(default = "default_password_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub password_key: String,
}

pub(crate) fn default_username_key() -> String {
    "username".to_owned()
}

pub(crate) fn default_password_key() -> String {
    "password".to_owned()
}

/// TLS settings for database connections.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTls {
    /// disable: plain TCP. require: TLS without verifying the server's certificate. verify-full: TLS, the
    /// certificate verified against caSecretRef (or, without one, the Mozilla roots the operator ships)
    /// and the host name checked.
    #[serde(default)]
    pub mode: TlsMode,
    /// A key of a Secret in the DatabaseServer's namespace holding the PEM CA bundle for verify-full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// A key in a Secret of the DatabaseServer's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_ca_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]{1,253}$"))]
    pub key: String,
}

pub(crate) fn default_ca_key() -> String {
    "ca.crt".to_owned()
}

/// Policy for generated values, with the names of CSMS GenerateRandomPassword in camelCase.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSpec {
    /// Number of characters, 12 to 256.
    #[serde(default = "default_length")]
    #[schemars(range(min = 12, max = 256))]
    pub length: u32,
    /// Characters never used.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 128))]
    pub exclude_characters: String,
    /// Use no lower-case letters.
    #[serde(default)]
    pub exclude_lowercase: bool,
    /// Use no upper-case letters.
    #[serde(default)]
    pub exclude_uppercase: bool,
    /// Use no digits.
    #[serde(default)]
    pub exclude_numbers: bool,
    /// Use no punctuation.
    #[serde(default)]
    pub exclude_punctuation: bool,
    /// Allow the space character.
    #[serde(default)]
    pub include_space: bool,
    /// Use at least one character of every included type.
    #[serde(default = "default_true")]
    pub require_each_included_type: bool,
}

impl From<&PasswordSpec> for secret_rotator_core::password::PasswordPolicy {
    fn from(p: &PasswordSpec) -> Self {
        secret_rotator_core::password::PasswordPolicy {
            length: p.length,
            exclude_characters: p.exclude_characters.clone(),
            exclude_lowercase: p.exclude_lowercase,
            exclude_uppercase: p.exclude_uppercase,
            exclude_numbers: p.exclude_numbers,
            exclude_punctuation: p.exclude_punctuation,
            include_space: p.include_space,
            require_each_included_type: p.require_each_included_type,
        }
    }
}

fn default_length() -> u32 {
    secret_rotator_core::password::DEFAULT_LENGTH
}

impl Default for PasswordSpec {
    fn default() -> Self {
        PasswordSpec {
            length: default_length(),
            exclude_characters: String::new(),
            exclude_lowercase: false,
            exclude_uppercase: false,
            exclude_numbers: false,
            exclude_punctuation: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// The Kubernetes Secret kept in sync.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// Name of the Secret, in the SecretRotation's namespace. Defaults to the SecretRotation's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: Option<String>,
    /// Keys of the Secret, each a template over {{ username }}, {{ password }}, {{ host }}, {{ port }},
    /// {{ database }}, {{ value }} and {{ versionId }}, and over the previous version (the store's
    /// SYSPREVIOUS): {{ previous.value }}, {{ previous.username }}, {{ previous.password }} and
    /// {{ previous.versionId }}, empty until a second version exists, so that a consumer that accepts two keys
    /// during a rotation can be configured from one Secret. Empty: the default keys (value for COMMON;
    /// username, password, host, port and database for database types).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub template: BTreeMap<String, String>,
    /// Labels put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations put on the Secret (besides the operator's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Delete: the Secret is owned by the SecretRotation and deleted with it. Retain: it is left behind.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What happens to the synced Secret when the SecretRotation is deleted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum DeletionPolicy {
    /// Deleted with the SecretRotation (an owner reference).
    #[default]
    Delete,
    /// Left in place.
    Retain,
}

/// Workloads restarted after a rotation: one by name, or every one of a kind whose labels match.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestartTarget {
    /// Deployment, StatefulSet, DaemonSet, or Rollout (Argo Rollouts, restarted through its spec.restartAt).
    pub kind: RestartKind,
    /// Name of the workload, in the SecretRotation's namespace. Exclusive with selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: Option<String>,
    /// Every workload of this kind in the SecretRotation's namespace whose labels match (matchLabels and
    /// matchExpressions, as in a Deployment's selector); at most 50 matches, more is refused. Not empty.
    /// Exclusive with name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Kinds of workload that can be restarted.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RestartKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// argoproj.io/v1alpha1 Rollout (Argo Rollouts): spec.restartAt is set.
    Rollout,
}

/// Observed state of a SecretRotation. Written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationStatus {
    /// The store version (SYSCURRENT) the synced Secret holds, for example v3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// The rotation task of the last database rotation (a UUID). Empty for COMMON secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_task_id: Option<String>,
    /// The store secret this resource rotates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The database account in use (the one SYSCURRENT references).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_user: Option<String>,
    /// When the last rotation completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When the next scheduled rotation is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,
    /// The last secretrotator.dev/rotate-now value handled; the same value never rotates twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_now: Option<String>,
    /// A rotate-now being carried out: recorded before the rotation, so that after a restart the operator
    /// can tell from the store whether it already happened (SYSCURRENT moved past fromVersion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_rotate_now: Option<PendingRotateNowStatus>,
    /// Failed rotation attempts since the last success.
    // The maximum keeps every stored value readable: a status edited by hand to a number the operator
    // cannot read would otherwise stop the watch for every resource.
    #[serde(default)]
    #[schemars(range(max = 4294967295u32))]
    pub failed_attempts: u32,
    /// The last failure, cleared by a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<RotationFailure>,
    /// HMAC-SHA256 (keyed by the operator) of the synced Secret's data: detects drift without revealing
    /// values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hmac: Option<String>,
    /// The store version for which the restart targets were last restarted: they roll once for each new
    /// version the synced Secret receives, whoever made it (this operator, the CSMS console, another
    /// cluster), including after a crash between the store's rotation and the Secret's write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub restarted_version: Option<String>,
    /// The versions the store holds for this secret, newest first (at most 20): what `kubectl srot
    /// history` shows and what a rollback may choose. Refreshed when SYSCURRENT changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub versions: Vec<VersionStatus>,
    /// The last rollback request handled (the secretrotator.dev/rollback-to annotation) and how it went. A
    /// refused or failed rollback changes nothing else, Ready included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<RollbackStatus>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the synced Secret holds the store's current version. Rotating: a rotation is in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A version the store holds.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// The version id, for example v3.
    pub version_id: String,
    /// When it was created.
    pub created: Time,
    /// The stages pointing at it (SYSCURRENT, SYSPREVIOUS, SYSPENDING, custom ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub stages: Vec<String>,
}

/// A rollback request and its outcome.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStatus {
    /// The annotation's value, handled once.
    #[schemars(length(max = 128))]
    pub request: String,
    /// The version asked for.
    #[schemars(length(max = 64))]
    pub version_id: String,
    /// Done, Refused (nothing was tried: suspended, a version the store does not hold, a malformed
    /// request) or Failed (the store or the database refused; SYSCURRENT unchanged).
    pub result: RollbackResult,
    /// What happened, never a value.
    #[schemars(length(max = 1024))]
    pub message: String,
    /// When it was handled.
    pub time: Time,
    /// The store's ROLLBACK task, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// How a rollback request went.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RollbackResult {
    /// SYSCURRENT is the version asked for.
    Done,
    /// Not tried.
    Refused,
    /// Tried and failed; nothing changed.
    Failed,
}

/// A rotate-now request in flight.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRotateNowStatus {
    /// The annotation value being handled.
    pub value: String,
    /// The store's SYSCURRENT version when the rotation was decided.
    pub from_version: String,
}

/// A failed rotation attempt.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationFailure {
    /// When it failed.
    pub time: Time,
    /// A CSMS-style error code, for example CSMS.0005.
    pub error_code: String,
    /// What failed, never containing a secret value.
    pub message: String,
}

impl SecretRotation {
    /// The store secret name: `spec.secretName`, or "<namespace>.<name>".
    pub fn store_secret_name(&self) -> String {
        match &self.spec.secret_name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => format!(
                "{}.{}",
                self.metadata.namespace.as_deref().unwrap_or_default(),
                self.metadata.name.as_deref().unwrap_or_default()
            ),
        }
    }

    /// The synced Secret's name: `spec.target.name`, or the resource's name.
    pub fn synced_secret_name(&self) -> String {
        match &self.spec.target.name {
            Some(n) if !n.is_empty() => n.clone(),
            _ => self.metadata.name.clone().unwrap_or_default(),
        }
    }
}
