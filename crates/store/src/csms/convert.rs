//! Conversions between the store's model and the CSMS wire bodies.

use zeroize::Zeroizing;

use crate::model::*;
use crate::protocol::wire::*;
use crate::{StoreError, StoreResult};
use secret_rotator_core::secret_value::SecretValue;

/// The `limit` and `marker` query parameters of a list call.
pub(super) fn paging(limit: Option<u32>, marker: Option<&str>) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(("limit", l.to_string()));
    }
    if let Some(m) = marker {
        q.push(("marker", m.to_owned()));
    }
    q
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::internal("encoding a request", e))
}

/// A string value for the wire, wiped when dropped.
pub(super) fn wire_string(v: &Option<SecretValue>) -> Option<Zeroizing<String>> {
    v.as_ref()
        .map(|v| Zeroizing::new(String::from_utf8_lossy(v.expose()).into_owned()))
}

/// A binary value for the wire (base64), wiped when dropped.
pub(super) fn wire_binary(v: &Option<SecretValue>) -> Option<Zeroizing<String>> {
    use base64::Engine;
    v.as_ref()
        .map(|v| Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(v.expose())))
}

/// A version read from an answer; its value is required.
pub(super) fn version_from_wire(
    w: VersionWire,
    name: &str,
    requested: &str,
) -> StoreResult<Version> {
    match (w.secret_string, w.secret_binary) {
        (Some(s), _) => Ok(Version {
            version_metadata: w.version_metadata,
            value: SecretValue::from_str_value(&s),
            kind: ValueKind::String,
        }),
        (None, Some(b)) => Ok(Version {
            version_metadata: w.version_metadata,
            value: crate::protocol::wire::decode_binary(&b)?,
            kind: ValueKind::Binary,
        }),
        (None, None) => Err(StoreError::internal(
            format!("reading version {requested} of {name}"),
            "no secret_string or secret_binary in the answer",
        )),
    }
}

/// A secret from an answer, named as requested when the answer leaves its name out.
pub(super) fn with_name(mut s: Secret, name: &str) -> Secret {
    if s.name.is_empty() {
        s.name = name.to_owned();
    }
    s
}

/// A stage from an answer, with its own and its secret's name filled in from the request.
pub(super) fn with_stage_names(mut s: Stage, name: &str, stage: &str) -> Stage {
    if s.name.is_empty() {
        s.name = stage.to_owned();
    }
    if s.secret_name.is_empty() {
        s.secret_name = name.to_owned();
    }
    s
}
