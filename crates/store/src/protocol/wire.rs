//! Request and response bodies, field for field as the official SDK models name them.
//!
//! Requests are parsed strictly (the API server refuses unknown fields); answers leniently (the `csms`
//! client reads the real service's minimal answers: a missing field takes its default, an unknown one is
//! ignored).

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::model::{PageInfo, RotationTask, Secret, Stage, VersionMetadata};
use crate::{StoreError, StoreResult};
use secret_rotator_core::secret_value::SecretValue;

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
    pub state: Option<crate::model::SecretState>,
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

impl From<GeneratePasswordBody> for secret_rotator_core::password::PasswordPolicy {
    /// Absent fields take CSMS's defaults (length 32, every type required).
    fn from(b: GeneratePasswordBody) -> Self {
        let d = secret_rotator_core::password::PasswordPolicy::default();
        secret_rotator_core::password::PasswordPolicy {
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

/// `POST /v1/{project_id}/secrets/{secret_name}/scheduled-deleted-tasks/create` (SDK:
/// DeleteSecretForScheduleRequestBody). An empty body means the default window.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDeletionBody {
    /// Days before the secret is deleted, 7 to 30 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_window_in_days: Option<i64>,
}

/// `{"secret": ...}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct SecretBody {
    /// The secret.
    pub secret: Secret,
}

/// `{"secrets": [...], "page_info": ...}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct SecretsBody {
    /// The secrets.
    pub secrets: Vec<Secret>,
    /// Paging.
    pub page_info: PageInfo,
}

/// `{"version_metadata": ...}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct VersionMetadataBody {
    /// The new version.
    pub version_metadata: VersionMetadata,
}

/// `{"version_metadatas": [...], "page_info": ...}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct VersionMetadatasBody {
    /// Versions, newest first.
    pub version_metadatas: Vec<VersionMetadata>,
    /// Paging.
    pub page_info: PageInfo,
}

/// A version with its value.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
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
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct VersionBody {
    /// The version.
    pub version: VersionWire,
}

/// `{"stage": ...}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
pub struct StageBody {
    /// The stage.
    pub stage: Stage,
}

/// `{"total", "tasks", "next_marker"}`.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(default)]
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

/// Reads an error answer in any of the shapes CSMS documents: nested `{"error": {"error_code",
/// "error_msg"}}` (RotateSecret's page, and what this project's server sends) or flat `{"error_code",
/// "error_msg"}` (ListSecretTask's and UpdateSecret's pages, and Huawei Cloud's API gateway). Unknown fields
/// are ignored; a body with no error code is `None`. A missing message is empty; a long one is cut.
pub fn read_error_body(body: &[u8]) -> Option<ErrorInfo> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |o: &serde_json::Value, k: &str| -> Option<String> {
        match o.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let from = |o: &serde_json::Value| {
        let code = text(o, "error_code").filter(|c| !c.is_empty())?;
        let message = text(o, "error_msg").unwrap_or_default();
        Some(ErrorInfo {
            error_code: code.chars().take(64).collect(),
            error_msg: message.chars().take(512).collect(),
        })
    };
    v.get("error").and_then(from).or_else(|| from(&v))
}

/// Decodes the base64 `secret_binary` of the API.
pub fn decode_binary(text: &str) -> StoreResult<SecretValue> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(SecretValue::new)
        .map_err(|_| StoreError::invalid("secret_binary", "must be base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(code: &str, msg: &str) -> Option<ErrorInfo> {
        Some(ErrorInfo {
            error_code: code.into(),
            error_msg: msg.into(),
        })
    }

    #[test]
    fn error_bodies_nested_and_flat() {
        assert_eq!(
            read_error_body(br#"{"error":{"error_code":"CSMS.0005","error_msg":"gone"}}"#),
            info("CSMS.0005", "gone")
        );
        assert_eq!(
            read_error_body(
                br#"{"error_code":"CSMS.0106","error_msg":"no name","request_id":"r"}"#
            ),
            info("CSMS.0106", "no name")
        );
        // Unknown fields on either level, a missing message.
        assert_eq!(
            read_error_body(br#"{"error":{"error_code":"CSMS.0107","x":1},"encoded":"e"}"#),
            info("CSMS.0107", "")
        );
        // A nested error without a code falls back to the flat fields.
        assert_eq!(
            read_error_body(
                br#"{"error":{"message":"m"},"error_code":"APIGW.0301","error_msg":"bad"}"#
            ),
            info("APIGW.0301", "bad")
        );
        for none in [
            &b""[..],
            b"<html>502</html>",
            b"null",
            b"{}",
            br#"{"error":{"code":401,"message":"m"}}"#,
            br#"{"error_code":""}"#,
        ] {
            assert_eq!(
                read_error_body(none),
                None,
                "{}",
                String::from_utf8_lossy(none)
            );
        }
        let long = format!(r#"{{"error_code":"C","error_msg":"{}"}}"#, "m".repeat(2000));
        assert_eq!(
            read_error_body(long.as_bytes()).unwrap().error_msg.len(),
            512
        );
    }

    #[test]
    fn answers_are_read_leniently() {
        // RotateSecret's documented example answer.
        let r: crate::model::RotateResult =
            serde_json::from_str(r#"{"rotation_task_id":"a71a4b47-6cac-4f11-92c1-21a165bb6401"}"#)
                .unwrap();
        assert_eq!(r.rotation_task_id, "a71a4b47-6cac-4f11-92c1-21a165bb6401");
        assert!(r.version_id.is_empty() && r.secret_name.is_empty());
        // Unknown task statuses and fields, missing ones.
        let t: TasksBody = serde_json::from_str(
            r#"{"tasks":[{"task_id":"t1","task_status":"WAITING","new_field":{"a":1}},{"task_id":"t2"}]}"#,
        )
        .unwrap();
        use crate::model::TaskStatus;
        assert_eq!(t.tasks[0].task_status, TaskStatus::Unknown);
        assert_eq!(t.tasks[1].task_status, TaskStatus::Unknown);
        assert_eq!((t.total, t.tasks.len()), (0, 2));
        // Unknown secret states; a secret answer with a few fields.
        let s: SecretBody =
            serde_json::from_str(r#"{"secret":{"name":"n","state":"ARCHIVED","extra":true}}"#)
                .unwrap();
        assert_eq!(s.secret.state, crate::model::SecretState::Unknown);
        assert_eq!(s.secret.name, "n");
        let v: VersionBody = serde_json::from_str(
            r#"{"version":{"version_metadata":{"id":"v3","create_time":1700000000000},"secret_string":"x"}}"#,
        )
        .unwrap();
        assert_eq!(v.version.version_metadata.id, "v3");
        assert!(v.version.version_metadata.version_stages.is_empty());
        let empty: StageBody = serde_json::from_str("{}").unwrap();
        assert!(empty.stage.version_id.is_empty());
    }
}
