//! Request and response bodies, field for field as the official SDK models name them.

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::secret_value::SecretValue;
use crate::store::model::{PageInfo, RotationTask, Secret, Stage, VersionMetadata};
use crate::store::{StoreError, StoreResult};

/// `POST /v1/{project_id}/secrets`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateSecretBody {
    /// Name.
    pub name: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Base64 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<Zeroizing<String>>,
    /// Text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<Zeroizing<String>>,
    /// COMMON, RDS-FG or GaussDB-FG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Auto rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rotation: Option<bool>,
    /// Auto rotation period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// Rotation configuration (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_config: Option<String>,
    /// Event subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_subscriptions: Option<Vec<String>>,
    /// Enterprise project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_project_id: Option<String>,
    /// Rotation function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_func_urn: Option<String>,
}

/// `PUT /v1/{project_id}/secrets/{secret_name}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateSecretBody {
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Auto rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rotation: Option<bool>,
    /// Auto rotation period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_period: Option<String>,
    /// Event subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_subscriptions: Option<Vec<String>>,
    /// Rotation function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_func_urn: Option<String>,
    /// ENABLED or DISABLED (an extension of this server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::store::model::SecretState>,
}

/// `POST /v1/{project_id}/secrets/{secret_name}/versions`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateVersionBody {
    /// Base64 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<Zeroizing<String>>,
    /// Text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<Zeroizing<String>>,
    /// Stages to mark the version with (default SYSCURRENT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    /// Expiry, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_time: Option<i64>,
}

/// `PUT .../stages/{stage_name}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateStageBody {
    /// The version the stage points at.
    pub version_id: String,
}

/// `POST /v1/{project_id}/csms/generate-password`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct GeneratePasswordBody {
    /// Policy name (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy_name: Option<String>,
    /// Length (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Characters never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_characters: Option<String>,
    /// No lower-case letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_lowercase: Option<bool>,
    /// No upper-case letters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_uppercase: Option<bool>,
    /// No digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_numbers: Option<bool>,
    /// No punctuation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_punctuation: Option<bool>,
    /// Allow spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_space: Option<bool>,
    /// One of each included class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_each_included_type: Option<bool>,
}

impl From<GeneratePasswordBody> for crate::password::PasswordPolicy {
    /// Absent fields take CSMS's defaults (length 32, every type required).
    fn from(b: GeneratePasswordBody) -> Self {
        let d = crate::password::PasswordPolicy::default();
        crate::password::PasswordPolicy {
            length: b.length.unwrap_or(d.length),
            exclude_characters: b.exclude_characters.unwrap_or_default(),
            exclude_lowercase: b.exclude_lowercase.unwrap_or(false),
            exclude_uppercase: b.exclude_uppercase.unwrap_or(false),
            exclude_numbers: b.exclude_numbers.unwrap_or(false),
            exclude_punctuation: b.exclude_punctuation.unwrap_or(false),
            include_space: b.include_space.unwrap_or(false),
            require_each_included_type: b.require_each_included_type.unwrap_or(true),
        }
    }
}

/// `{"password": ...}`.
#[derive(Serialize, Deserialize)]
pub struct PasswordBody {
    /// The generated password.
    pub password: Zeroizing<String>,
}

/// `{"secret": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct SecretBody {
    /// The secret.
    pub secret: Secret,
}

/// `{"secrets": [...], "page_info": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct SecretsBody {
    /// The secrets.
    pub secrets: Vec<Secret>,
    /// Paging.
    pub page_info: PageInfo,
}

/// `{"version_metadata": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct VersionMetadataBody {
    /// The new version.
    pub version_metadata: VersionMetadata,
}

/// `{"version_metadatas": [...], "page_info": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct VersionMetadatasBody {
    /// Versions, newest first.
    pub version_metadatas: Vec<VersionMetadata>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A version with its value.
#[derive(Serialize, Deserialize)]
pub struct VersionWire {
    /// Metadata.
    pub version_metadata: VersionMetadata,
    /// Base64 value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<Zeroizing<String>>,
    /// Text value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for VersionWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionWire")
            .field("version_metadata", &self.version_metadata)
            .finish_non_exhaustive()
    }
}

/// `{"version": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct VersionBody {
    /// The version.
    pub version: VersionWire,
}

/// `{"stage": ...}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct StageBody {
    /// The stage.
    pub stage: Stage,
}

/// `{"total", "tasks", "next_marker"}`.
#[derive(Serialize, Deserialize, Debug)]
pub struct TasksBody {
    /// Total matching.
    pub total: u32,
    /// Tasks, newest first.
    pub tasks: Vec<RotationTask>,
    /// Next page marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// `{"error": {"error_code", "error_msg"}}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorInfo,
}

/// The error's code and message.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    /// `CSMS.xxxx`.
    pub error_code: String,
    /// What went wrong.
    pub error_msg: String,
}

/// Decodes the base64 `secret_binary` of the API.
pub fn decode_binary(text: &str) -> StoreResult<SecretValue> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(SecretValue::new)
        .map_err(|_| StoreError::invalid("secret_binary", "must be base64"))
}
