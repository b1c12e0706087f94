//! Namespace isolation: what a SecretRotation may make the operator do with its own privileges. By
//! default a resource may address only store secrets named `<its namespace>.…`, only the operator's
//! default CSMS project, any database host, and no built-in superuser account of an engine. The operator's
//! policy file grants a namespace more:
//!
//! ```yaml
//! namespaces:          # store secret name patterns
//!   payments: ["shared.payments-*", "legacy-api-key"]
//! projects:            # CSMS projects besides the operator's default
//!   payments: ["0a1b2c3d4e"]
//! databases:           # once a namespace is listed, only these hosts and accounts
//!   payments: {hosts: ["*.payments.svc"], accounts: ["app_*"]}
//! superusers: [dba]    # namespaces that may rotate postgres, root, ...
//! adoptStoreSecrets: [migration]   # namespaces that may take over a store secret another resource made
//! ```
//!
//! `*` matches any run of characters.

use std::collections::BTreeMap;
use std::path::Path;

use secret_rotator_core::accounts::{SUPERUSERS, glob};

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
    /// The database hosts and accounts a namespace may address; a namespace not listed may address any
    /// host and any account but the engines' superusers.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseGrant>,
    /// Namespaces whose resources may rotate an engine's built-in superuser.
    #[serde(default)]
    pub superusers: Vec<String>,
    /// Namespaces whose resources may take over a store secret that another resource created.
    #[serde(default, rename = "adoptStoreSecrets")]
    pub adopt_store_secrets: Vec<String>,
}

/// Database hosts and accounts granted to one namespace.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseGrant {
    /// Host patterns.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Account patterns.
    #[serde(default)]
    pub accounts: Vec<String>,
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
    /// The database host, for database secrets.
    pub host: Option<&'a str>,
    /// The rotated accounts, for database secrets.
    pub accounts: &'a [&'a str],
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
                "expected `namespaces`, `projects`, `databases`, `superusers` or `adoptStoreSecrets` (see the README): {e}"
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
        if let Some(host) = r.host
            && let Some(grant) = self.databases.get(ns)
            && !grant.hosts.iter().any(|p| glob(p, host))
        {
            return Err(format!(
                "namespace {ns} may not address database host {host}: the operator's policy grants it only {:?}",
                grant.hosts
            ));
        }
        for account in r.accounts {
            if SUPERUSERS.contains(&account.to_ascii_lowercase().as_str())
                && !self.superusers.iter().any(|n| n == ns)
            {
                return Err(format!(
                    "namespace {ns} may not rotate {account}, a built-in superuser, unless the operator's policy grants it (superusers)"
                ));
            }
            if let Some(grant) = self.databases.get(ns)
                && !grant.accounts.iter().any(|p| glob(p, account))
            {
                return Err(format!(
                    "namespace {ns} may not rotate account {account}: the operator's policy grants it only {:?}",
                    grant.accounts
                ));
            }
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
    fn projects_hosts_accounts_and_superusers() {
        let p: NamespacePolicy = serde_saphyr::from_str(
            "projects: {pay: [p2]}\ndatabases: {pay: {hosts: ['*.pay.svc'], accounts: ['app_*', postgres]}}\nsuperusers: [pay]\n",
        )
        .unwrap();
        fn req<'a>(
            ns: &'a str,
            project: Option<&'a str>,
            host: Option<&'a str>,
            accounts: &'a [&'a str],
        ) -> Request<'a> {
            Request {
                namespace: ns,
                store_secret: if ns == "pay" { "pay.db" } else { "shop.db" },
                project,
                default_project: "default",
                host,
                accounts,
            }
        }
        assert!(
            p.check(&req("shop", None, Some("evil.example"), &["app"]))
                .is_ok()
        );
        assert!(p.check(&req("shop", Some("default"), None, &[])).is_ok());
        let e = p.check(&req("shop", Some("p2"), None, &[])).unwrap_err();
        assert!(e.contains("CSMS project p2"), "{e}");
        assert!(p.check(&req("pay", Some("p2"), None, &[])).is_ok());
        for su in ["postgres", "root", "ROOT", "mariadb.sys"] {
            let accounts = [su];
            let e = p
                .check(&req("shop", None, Some("db"), &accounts))
                .unwrap_err();
            assert!(e.contains("superuser"), "{su}: {e}");
        }
        assert!(
            p.check(&req("pay", None, Some("pg.pay.svc"), &["postgres"]))
                .is_ok()
        );
        let e = p
            .check(&req("pay", None, Some("10.0.0.9"), &["app_1"]))
            .unwrap_err();
        assert!(e.contains("database host 10.0.0.9"), "{e}");
        let e = p
            .check(&req("pay", None, Some("pg.pay.svc"), &["other"]))
            .unwrap_err();
        assert!(e.contains("account other"), "{e}");
    }
}
