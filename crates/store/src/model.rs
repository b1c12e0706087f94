//! CSMS resources, with the field names of the official SDK models (`huaweicloudsdkcsms` v1).
//! Times are Unix epoch milliseconds, as CSMS returns them.
//!
//! Reading is lenient, because these types also parse the answers of the real service, whose documented
//! examples leave fields out: every field may be missing (an empty string, zero or an empty list stands
//! for it, and the `csms` client reads back what it truly needs), unknown fields are ignored, and an
//! unknown state or task status is `Unknown`. Writing is complete: the API server sends every field.

use serde::{Deserialize, Serialize};

use secret_rotator_core::secret_value::SecretValue;

/// The stage of the version in use.
pub const SYSCURRENT: &str = "SYSCURRENT";
/// The stage of the version that was in use before.
pub const SYSPREVIOUS: &str = "SYSPREVIOUS";
/// The stage of a version whose rotation is in flight.
pub const SYSPENDING: &str = "SYSPENDING";
/// The version id that `show_version` resolves to the newest version.
pub const LATEST: &str = "latest";

/// Secret states.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SecretState {
    /// Readable and rotatable.
    #[default]
    Enabled,
    /// Neither readable nor rotatable.
    Disabled,
    /// Scheduled for deletion.
    PendingDelete,
    /// Frozen by the provider.
    Frozen,
    /// A state this version does not know (a newer service's); never accepted in a request.
    #[serde(other)]
    Unknown,
}

/// A secret's metadata (SDK model `Secret`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Secret {
    /// A UUID.
    pub id: String,
    /// The name, unique in a project.
    pub name: String,
    /// ENABLED, DISABLED, PENDING_DELETE or FROZEN.
    pub state: SecretState,
    /// The master key that wraps the data keys (the embedded store's key check id).
    #[serde(default)]
    pub kms_key_id: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Creation time, epoch ms.
    pub create_time: i64,
    /// Last change, epoch ms.
    pub update_time: i64,
    /// Scheduled deletion time, epoch ms (0 when none).
    #[serde(default)]
    pub scheduled_delete_time: i64,
    /// COMMON, RDS-FG or GaussDB-FG.
    pub secret_type: String,
    /// Whether CSMS rotates it on its own.
    #[serde(default)]
    pub auto_rotation: bool,
    /// For auto rotation, for example 30d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// JSON text; for database types `{"InstanceId":"","SecretSubType":"SingleUser|MultiUser"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_config: Option<String>,
    /// Last rotation, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_time: Option<i64>,
    /// Next automatic rotation, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<i64>,
    /// Event subscriptions (kept, not acted on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_subscriptions: Vec<String>,
    /// Enterprise project (kept, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
    /// Rotation function (kept, not acted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_func_urn: Option<String>,
}

/// A version's metadata (SDK model `VersionMetadata`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct VersionMetadata {
    /// `v1`, `v2`, ...
    pub id: String,
    /// Creation time, epoch ms.
    pub create_time: i64,
    /// Expiry, epoch ms (0 when none).
    #[serde(default)]
    pub expire_time: i64,
    /// The key id that protects it.
    #[serde(default)]
    pub kms_key_id: String,
    /// Its secret.
    pub secret_name: String,
    /// Stages that point at it.
    #[serde(default)]
    pub version_stages: Vec<String>,
}

/// Whether a version holds text or bytes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// `secret_string`.
    String,
    /// `secret_binary` (base64 on the wire).
    Binary,
}

/// A version with its value (SDK model `Version`). `Debug` never prints the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// Metadata.
    pub version_metadata: VersionMetadata,
    /// The value.
    pub value: SecretValue,
    /// Text or bytes.
    pub kind: ValueKind,
}

/// A stage (SDK model `Stage`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct Stage {
    /// Stage name.
    pub name: String,
    /// When it last moved, epoch ms.
    pub update_time: i64,
    /// Its secret.
    pub secret_name: String,
    /// The version it points at.
    pub version_id: String,
}

/// Task states.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// In flight, or interrupted and waiting to resume.
    Processing,
    /// Completed.
    Success,
    /// The last attempt failed; the next rotate resumes it.
    Failed,
    /// A status this version does not know (a newer service's), or none given: not finished as far as
    /// this client can tell.
    #[default]
    #[serde(other)]
    Unknown,
}

impl TaskStatus {
    /// The CSMS name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Processing => "PROCESSING",
            TaskStatus::Success => "SUCCESS",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Unknown => "UNKNOWN",
        }
    }
}

/// A rotation task (SDK model `SecretTask`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(default)]
pub struct RotationTask {
    /// A UUID.
    pub task_id: String,
    /// Its secret.
    pub secret_name: String,
    /// Rotation function (empty here).
    #[serde(default)]
    pub rotation_func_urn: String,
    /// PROCESSING, SUCCESS or FAILED.
    pub task_status: TaskStatus,
    /// What the task does: `ROTATE`.
    pub operate_type: String,
    /// Start of the last attempt, epoch ms.
    pub task_time: i64,
    /// Attempts so far.
    pub attempt_nums: u32,
    /// Error code of the last failure, empty otherwise.
    #[serde(default)]
    pub task_error_code: String,
    /// Error message of the last failure (never a value), empty otherwise.
    #[serde(default)]
    pub task_error_msg: String,
}

/// The answer to RotateSecret. The service's own example answer holds `rotation_task_id` alone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default)]
pub struct RotateResult {
    /// The new SYSCURRENT version.
    pub version_id: String,
    /// The secret.
    pub secret_name: String,
    /// The task that did it.
    pub rotation_task_id: String,
}

/// A request to create a secret. Exactly one of `secret_string` and `secret_binary` is given.
#[derive(Clone, Debug, Default)]
pub struct CreateSecret {
    /// Name.
    pub name: String,
    /// COMMON (default), RDS-FG or GaussDB-FG.
    pub secret_type: Option<String>,
    /// The first version's text value.
    pub secret_string: Option<SecretValue>,
    /// The first version's binary value.
    pub secret_binary: Option<SecretValue>,
    /// Free text.
    pub description: Option<String>,
    /// Key id (informational for the embedded store).
    pub kms_key_id: Option<String>,
    /// Auto rotation flag.
    pub auto_rotation: Option<bool>,
    /// Auto rotation period.
    pub rotation_period: Option<String>,
    /// Rotation configuration (JSON text).
    pub rotation_config: Option<String>,
    /// Event subscriptions.
    pub event_subscriptions: Vec<String>,
    /// Enterprise project.
    pub enterprise_project_id: Option<String>,
    /// Rotation function.
    pub rotation_func_urn: Option<String>,
}

/// A request to change a secret's metadata. `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UpdateSecret {
    /// Free text.
    pub description: Option<String>,
    /// Key id.
    pub kms_key_id: Option<String>,
    /// Auto rotation flag.
    pub auto_rotation: Option<bool>,
    /// Auto rotation period.
    pub rotation_period: Option<String>,
    /// Event subscriptions.
    pub event_subscriptions: Option<Vec<String>>,
    /// Rotation function.
    pub rotation_func_urn: Option<String>,
    /// ENABLED or DISABLED (an extension of this store; CSMS changes state through other calls).
    pub state: Option<SecretState>,
}

/// A request to add a version.
#[derive(Clone, Debug, Default)]
pub struct CreateVersion {
    /// Text value.
    pub secret_string: Option<SecretValue>,
    /// Binary value.
    pub secret_binary: Option<SecretValue>,
    /// Stages for it; empty means `[SYSCURRENT]`.
    pub version_stages: Vec<String>,
    /// Expiry, epoch ms.
    pub expire_time: Option<i64>,
}

/// Paging information (SDK model `PageInfo`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(default)]
pub struct PageInfo {
    /// Marker of the next page, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    /// Marker this page started after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_marker: Option<String>,
    /// Items in this page.
    pub current_count: u32,
}

/// A page of secrets.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SecretPage {
    /// The secrets, by name.
    pub secrets: Vec<Secret>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A page of version metadata.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct VersionPage {
    /// Newest first.
    pub version_metadatas: Vec<VersionMetadata>,
    /// Paging.
    pub page_info: PageInfo,
}

/// Filters of ListSecretTask.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Only this secret's tasks.
    pub secret_name: Option<String>,
    /// Only tasks in this state.
    pub status: Option<TaskStatus>,
    /// Only this task.
    pub task_id: Option<String>,
    /// Page size (default 50).
    pub limit: Option<u32>,
    /// Start after this task id.
    pub marker: Option<String>,
}

/// A page of tasks.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TaskPage {
    /// Total matching the filter.
    pub total: u32,
    /// Newest first.
    pub tasks: Vec<RotationTask>,
    /// Marker of the next page.
    pub next_marker: Option<String>,
}

/// The value of a database secret: the account and its password, as JSON text.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct DatabaseCredential {
    /// Account name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for DatabaseCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseCredential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Drop for DatabaseCredential {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl DatabaseCredential {
    /// Parses a version's value.
    pub fn from_value(v: &SecretValue) -> Option<DatabaseCredential> {
        serde_json::from_slice(v.expose()).ok()
    }

    /// Serializes as a version's value.
    pub fn to_value(&self) -> SecretValue {
        SecretValue::new(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Rotation configuration of database secrets (`rotation_config` JSON). `Usernames` is an extension of
/// this project for MultiUser; without it the second account is `<username>_clone`, as CSMS names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RotationConfig {
    /// The database instance.
    #[serde(rename = "InstanceId", default)]
    pub instance_id: String,
    /// SingleUser or MultiUser.
    #[serde(rename = "SecretSubType", default)]
    pub secret_sub_type: String,
    /// The two MultiUser accounts.
    #[serde(rename = "Usernames", default, skip_serializing_if = "Vec::is_empty")]
    pub usernames: Vec<String>,
}
