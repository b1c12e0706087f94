//! What the embedded store persists, as JSON inside redb. Values only ever appear sealed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::crypto::Sealed;
use crate::model::{Secret, ValueKind};

/// Where a stage points.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StageRecord {
    pub version_id: String,
    pub update_time: i64,
}

/// A secret, its stages and its version counter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretRecord {
    pub secret: Secret,
    /// The number the next version gets.
    pub next_version: u64,
    /// Stage name to version.
    pub stages: BTreeMap<String, StageRecord>,
    /// The rotation task in flight or interrupted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_task: Option<String>,
}

impl SecretRecord {
    /// The stages that point at a version, SYSCURRENT first.
    pub fn stages_of(&self, version_id: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .stages
            .iter()
            .filter(|(_, s)| s.version_id == version_id)
            .map(|(n, _)| n.clone())
            .collect();
        out.sort_by_key(|s| (s != "SYSCURRENT", s != "SYSPREVIOUS", s.clone()));
        out
    }
}

/// One version: metadata and the sealed value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct VersionRecord {
    pub id: String,
    pub create_time: i64,
    pub expire_time: i64,
    pub kms_key_id: String,
    pub kind: ValueKind,
    pub sealed: Sealed,
}
