//! Namespace isolation: what a SecretRotation may make the operator do with its own privileges. By
//! default a resource may address only store secrets named `<its namespace>.…` and only the operator's
//! default CSMS project. Databases are not here: a resource reaches a database only through a server
//! object that allows it (`ClusterDatabaseServer`, `DatabaseServer`). The operator's policy file grants a
//! namespace more:
//!
//! ```yaml
//! namespaces:          # store secret name patterns
//!   payments: ["shared.payments-*", "legacy-api-key"]
//! projects:            # CSMS projects besides the operator's default
//!   payments: ["0a1b2c3d4e"]
//! adoptStoreSecrets: [migration]   # namespaces that may take over a store secret another resource made
//! ```
//!
//! `*` matches any run of characters.

use std::collections::BTreeMap;
use std::path::Path;

use secret_rotator_core::accounts::glob;

use serde::Deserialize;

/// The policy file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePolicy {
    /// Extra name patterns (`*` matches any run of characters) per namespace.
    #[serde(default)]
    pub namespaces: BTreeMap<String, Vec<String>>,
    /// CSMS projects a namespace may address besides the operator's default.
    #[serde(default)]
    pub projects: BTreeMap<String, Vec<String>>,
    /// Namespaces whose resources may take over a store secret that another resource created.
    #[serde(default, rename = "adoptStoreSecrets")]
    pub adopt_store_secrets: Vec<String>,
}

/// What a resource addresses, for [`NamespacePolicy::check`].
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The resource's namespace.
    pub namespace: &'a str,
    /// The store secret.
    pub store_secret: &'a str,
    /// `spec.projectId`, when set.
    pub project: Option<&'a str>,
    /// The operator's default project.
    pub default_project: &'a str,
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
                "expected `namespaces`, `projects` or `adoptStoreSecrets` (database hosts, accounts and superusers are granted by ClusterDatabaseServer and DatabaseServer objects; see the README): {e}"
            ))
        })
    }

    /// `Err` with what a person reads when the policy refuses what the resource addresses.
    pub fn check(&self, r: &Request<'_>) -> Result<(), String> {
        let ns = r.namespace;
        if !self.allows(ns, r.store_secret) {
            return Err(format!(
                "namespace {ns} may not address store secret {}: names must start with \"{ns}.\" unless the operator's policy grants more",
                r.store_secret
            ));
        }
        if let Some(p) = r.project
            && p != r.default_project
            && !granted(self.projects.get(ns), p)
        {
            return Err(format!(
                "namespace {ns} may not address CSMS project {p}: only the operator's default project unless the operator's policy grants it (projects)"
            ));
        }
        Ok(())
    }

    /// Whether resources of `namespace` may take over a store secret another resource created.
    pub fn adopts_store_secrets(&self, namespace: &str) -> bool {
        self.adopt_store_secrets.iter().any(|n| n == namespace)
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

fn granted(patterns: Option<&Vec<String>>, value: &str) -> bool {
    patterns.is_some_and(|ps| ps.iter().any(|p| glob(p, value)))
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

    #[test]
    fn projects_are_granted_per_namespace_and_database_grants_are_refused() {
        let p: NamespacePolicy = serde_saphyr::from_str("projects: {pay: [p2]}\n").unwrap();
        let req = |ns: &'static str, project: Option<&'static str>| Request {
            namespace: ns,
            store_secret: if ns == "pay" { "pay.db" } else { "shop.db" },
            project,
            default_project: "default",
        };
        assert!(p.check(&req("shop", Some("default"))).is_ok());
        let e = p.check(&req("shop", Some("p2"))).unwrap_err();
        assert!(e.contains("CSMS project p2"), "{e}");
        assert!(p.check(&req("pay", Some("p2"))).is_ok());
        // Database grants belong to the server objects now: a file that still has them is refused.
        for old in [
            "databases: {pay: {hosts: ['*'], accounts: ['*']}}\n",
            "superusers: [pay]\n",
        ] {
            assert!(
                serde_saphyr::from_str::<NamespacePolicy>(old).is_err(),
                "{old}"
            );
        }
    }
}
