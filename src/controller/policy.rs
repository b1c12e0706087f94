//! Namespace isolation: a SecretRotation may address only store secrets named `<its namespace>.…`,
//! unless the operator's policy file grants its namespace more name patterns.
//!
//! ```yaml
//! namespaces:
//!   payments: ["shared.payments-*", "legacy-api-key"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePolicy {
    /// Extra name patterns (`*` matches any run of characters) per namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Vec<String>>,
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
#[error("policy file {path}: {message}")]
pub struct PolicyError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl NamespacePolicy {
    /// Loads a policy file.
    pub fn load(path: &Path) -> Result<NamespacePolicy, PolicyError> {
        let err = |message: String| PolicyError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        serde_saphyr::from_str(&text).map_err(|e| {
            err(format!(
                "expected `namespaces: {{<namespace>: [patterns]}}`: {e}"
            ))
        })
    }

    /// Whether `namespace` may address the store secret `name`.
    pub fn allows(&self, namespace: &str, name: &str) -> bool {
        let own = name.len() > namespace.len() + 1
            && name.starts_with(namespace)
            && name.as_bytes()[namespace.len()] == b'.';
        own || self
            .namespaces
            .get(namespace)
            .is_some_and(|pats| pats.iter().any(|p| glob(p, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_prefix_and_granted_patterns() {
        let p: NamespacePolicy =
            serde_saphyr::from_str("namespaces:\n  pay: ['shared.pay-*', 'exact', 'a*b*c']\n")
                .unwrap();
        assert!(p.allows("shop", "shop.orders"));
        assert!(!p.allows("shop", "shop"));
        assert!(!p.allows("shop", "shop."));
        assert!(
            !p.allows("shop", "shopping.orders"),
            "a longer namespace is not the same prefix"
        );
        assert!(!p.allows("shop", "pay.orders"));
        assert!(p.allows("pay", "shared.pay-1"));
        assert!(!p.allows("pay", "shared.other"));
        assert!(p.allows("pay", "exact"));
        assert!(!p.allows("pay", "exactly"));
        assert!(p.allows("pay", "aXbYc") && p.allows("pay", "abc") && !p.allows("pay", "acb"));
        assert!(
            !p.allows("shop", "shared.pay-1"),
            "grants are per namespace"
        );
    }
}
