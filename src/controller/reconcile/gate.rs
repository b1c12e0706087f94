//! The gate: a resource enters the reconcile only as a [`ValidatedSpec`] that the namespace policy allows.

use super::{Blocked, Then};
use crate::api::SecretRotation;
use crate::controller::policy::NamespacePolicy;
use crate::controller::reasons::Reason;
use crate::validation::{ValidatedSpec, validate};

/// The typed spec, or why the resource waits for a change.
pub fn admit(sr: &SecretRotation, policy: &NamespacePolicy) -> Result<ValidatedSpec, Blocked> {
    let spec = validate(sr).map_err(|invalid| Blocked {
        reason: Reason::InvalidSpec,
        message: invalid.rules(),
        announce: true,
        then: Then::AwaitChange,
    })?;
    let ns = sr.metadata.namespace.as_deref().unwrap_or_default();
    let store_secret = spec.store_secret.as_str();
    if !policy.allows(ns, store_secret) {
        return Err(Blocked {
            reason: Reason::Forbidden,
            message: format!(
                "namespace {ns} may not address store secret {store_secret}: names must start with \"{ns}.\" unless the operator's policy grants more"
            ),
            announce: true,
            then: Then::AwaitChange,
        });
    }
    Ok(spec)
}
