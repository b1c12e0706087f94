//! A database server as the operator uses it, from either kind, and the access rule: which namespaces and
//! accounts it serves. Pure: the gate gives it the server object and the namespace's labels.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::core::labels::{Selector, SelectorExt};

use super::spec::{Accounts, Database, DatabaseRequest};
use crate::api::{ClusterDatabaseServer, DatabaseEngine, DatabaseServer, ServerKind, TlsMode};
use secret_rotator_core::accounts::{SUPERUSERS, glob_in_segment};

/// A key of a Secret, with the namespace it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretKey {
    /// The Secret's namespace: the server's own, or the one a ClusterDatabaseServer names.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
}

/// Where the administrator's credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeys {
    /// The user name.
    pub username: SecretKey,
    /// The password.
    pub password: SecretKey,
}

/// Which namespaces a server serves.
#[derive(Debug, Clone)]
pub enum Serves {
    /// A DatabaseServer: its own namespace.
    Own(String),
    /// A ClusterDatabaseServer: those named and those the selector matches (none when both are empty).
    Namespaces {
        /// By name.
        names: Vec<String>,
        /// By labels.
        selector: Option<Selector>,
    },
}

/// A database server whose spec is valid.
#[derive(Debug, Clone)]
pub struct Server {
    /// `ClusterDatabaseServer orders-pg`, `DatabaseServer shop/orders-pg`: for messages.
    pub title: String,
    /// The wire protocol.
    pub engine: DatabaseEngine,
    /// Host name or address.
    pub host: String,
    /// The port (the engine's usual one when the spec names none).
    pub port: u16,
    /// Where logins go unless a resource names another database.
    pub database: Option<String>,
    /// TLS mode.
    pub tls_mode: TlsMode,
    /// The CA that verifies the server.
    pub ca: Option<SecretKey>,
    /// The administrator.
    pub admin: Option<AdminKeys>,
    /// The namespaces served.
    pub serves: Serves,
    /// Account patterns a resource may rotate.
    pub accounts: Vec<String>,
    /// Whether built-in superusers may be rotated.
    pub allow_superusers: bool,
}

/// Why a server's spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{title}: {message}")]
pub struct InvalidServer {
    /// The server.
    pub title: String,
    /// The rule broken.
    pub message: String,
}

fn port(engine: DatabaseEngine, port: Option<i32>) -> Option<u16> {
    match port {
        None => Some(engine.default_port()),
        Some(p) => u16::try_from(p).ok().filter(|p| *p != 0),
    }
}

fn check_tls(title: &str, mode: TlsMode, has_ca: bool) -> Result<(), InvalidServer> {
    if mode == TlsMode::Disable && has_ca {
        return Err(InvalidServer {
            title: title.to_owned(),
            message: "spec.tls.caSecretRef: a CA is set but tls.mode is disable; use verify-full"
                .into(),
        });
    }
    Ok(())
}

impl Server {
    /// A ClusterDatabaseServer.
    pub fn of_cluster(obj: &ClusterDatabaseServer) -> Result<Server, InvalidServer> {
        let title = format!("ClusterDatabaseServer {}", obj.name_any());
        let s = &obj.spec;
        check_tls(&title, s.tls.mode, s.tls.ca_secret_ref.is_some())?;
        let invalid = |message: String| InvalidServer {
            title: title.clone(),
            message,
        };
        let port = port(s.engine, s.port).ok_or_else(|| invalid("spec.port: 1 to 65535".into()))?;
        let (names, selector) = match &s.allowed_namespaces {
            None => (Vec::new(), None),
            Some(a) => {
                let selector =
                    match &a.selector {
                        None => None,
                        Some(ls) => Some(Selector::try_from(ls.clone()).map_err(|e| {
                            invalid(format!("spec.allowedNamespaces.selector: {e}"))
                        })?),
                    };
                (a.names.clone(), selector)
            }
        };
        Ok(Server {
            engine: s.engine,
            host: s.host.clone(),
            port,
            database: s.database.clone(),
            tls_mode: s.tls.mode,
            ca: s.tls.ca_secret_ref.as_ref().map(|r| SecretKey {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
            }),
            admin: s.admin_secret_ref.as_ref().map(|r| AdminKeys {
                username: SecretKey {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    key: r.username_key.clone(),
                },
                password: SecretKey {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    key: r.password_key.clone(),
                },
            }),
            serves: Serves::Namespaces { names, selector },
            accounts: s.accounts.clone(),
            allow_superusers: s.allow_superusers,
            title,
        })
    }

    /// A DatabaseServer: its Secrets are read from its own namespace.
    pub fn of_namespaced(obj: &DatabaseServer) -> Result<Server, InvalidServer> {
        let ns = obj.namespace().unwrap_or_default();
        let title = format!("DatabaseServer {ns}/{}", obj.name_any());
        let s = &obj.spec;
        check_tls(&title, s.tls.mode, s.tls.ca_secret_ref.is_some())?;
        let port = port(s.engine, s.port).ok_or_else(|| InvalidServer {
            title: title.clone(),
            message: "spec.port: 1 to 65535".into(),
        })?;
        let key = |name: &str, key: &str| SecretKey {
            namespace: ns.clone(),
            name: name.to_owned(),
            key: key.to_owned(),
        };
        Ok(Server {
            engine: s.engine,
            host: s.host.clone(),
            port,
            database: s.database.clone(),
            tls_mode: s.tls.mode,
            ca: s.tls.ca_secret_ref.as_ref().map(|r| key(&r.name, &r.key)),
            admin: s.admin_secret_ref.as_ref().map(|r| AdminKeys {
                username: key(&r.name, &r.username_key),
                password: key(&r.name, &r.password_key),
            }),
            serves: Serves::Own(ns.clone()),
            accounts: s.accounts.clone(),
            allow_superusers: s.allow_superusers,
            title,
        })
    }

    /// Whether the server allows namespaces by their labels (so the gate reads them).
    pub fn selects_by_labels(&self) -> bool {
        matches!(
            &self.serves,
            Serves::Namespaces {
                selector: Some(_),
                ..
            }
        )
    }

    /// Whether this server serves `namespace`, whose labels are `labels`.
    pub fn serves(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        match &self.serves {
            Serves::Own(ns) => ns == namespace,
            Serves::Namespaces { names, selector } => {
                names.iter().any(|n| n == namespace)
                    || selector
                        .as_ref()
                        .is_some_and(|s| !s.selects_all() && s.matches(labels))
            }
        }
    }

    /// Why `account` may not be rotated on this server, if it may not: not allowed by the accounts
    /// patterns, or a built-in superuser the server does not allow.
    pub fn refuses_account(&self, account: &str) -> Option<String> {
        if !self.allow_superusers && SUPERUSERS.contains(&account.to_ascii_lowercase().as_str()) {
            return Some(format!(
                "{account} is a built-in superuser of the engine; {} does not allow superusers (allowSuperusers)",
                self.title
            ));
        }
        if !self.accounts.iter().any(|p| glob_in_segment(p, account)) {
            return Some(format!(
                "{} does not allow the account {account}: its accounts patterns are [{}]",
                self.title,
                self.accounts.join(", ")
            ));
        }
        None
    }
}

/// Why a resource may not use a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No server of that kind and name.
    NotFound(String),
    /// The server's spec is not usable.
    Invalid(String),
    /// The server does not serve the namespace, or the account.
    Forbidden(String),
}

/// The request resolved on `server` (none when there is no such server) for a resource in `namespace`.
pub fn resolve(
    request: DatabaseRequest,
    server: Option<Result<Server, InvalidServer>>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Database, Refusal> {
    let server = match server {
        None => {
            let r = &request.server_ref;
            let where_ = match r.kind {
                ServerKind::ClusterDatabaseServer => String::new(),
                ServerKind::DatabaseServer => format!(" in namespace {namespace}"),
            };
            return Err(Refusal::NotFound(format!(
                "spec.database.serverRef: there is no {:?} {}{where_}",
                r.kind, r.name
            )));
        }
        Some(Err(e)) => return Err(Refusal::Invalid(e.to_string())),
        Some(Ok(s)) => s,
    };
    if !server.serves(namespace, labels) {
        return Err(Refusal::Forbidden(format!(
            "{} does not allow namespace {namespace} (spec.allowedNamespaces)",
            server.title
        )));
    }
    for account in request.accounts.names() {
        if let Some(why) = server.refuses_account(account) {
            return Err(Refusal::Forbidden(why));
        }
    }
    if matches!(request.accounts, Accounts::MultiUser(_)) && server.admin.is_none() {
        return Err(Refusal::Invalid(format!(
            "MultiUser needs a server with an administrator (adminSecretRef): the account being reset is not the one in use, so it cannot change its own password; {} has none",
            server.title
        )));
    }
    Ok(Database {
        database: request.database.or_else(|| server.database.clone()),
        server_ref: request.server_ref,
        accounts: request.accounts,
        server,
    })
}

/// The accounts of `accounts` the server refuses, checked again on what the store will rotate.
pub fn refused_in_store(server: &Server, rotated: &Accounts) -> Option<String> {
    rotated.names().find_map(|a| server.refuses_account(a))
}

/// `spec` resolved on a ClusterDatabaseServer with `server` in its spec (YAML flow mappings' inside), which
/// allows the namespace `shop`, every account, and has an administrator.
#[cfg(test)]
pub(crate) fn resolved_on(
    spec: super::ValidatedSpec<DatabaseRequest>,
    server: &str,
) -> super::ValidatedSpec {
    let yaml = format!(
        "metadata: {{name: s}}\nspec: {{{server}, accounts: ['*'], allowedNamespaces: {{names: [shop]}}, adminSecretRef: {{namespace: data, name: admin}}}}"
    );
    let obj: ClusterDatabaseServer = serde_saphyr::from_str(&yaml).unwrap();
    spec.resolve(|r| resolve(r, Some(Server::of_cluster(&obj)), "shop", &BTreeMap::new()))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{SecretRotation, ServerRef};

    fn server(spec: &str) -> Result<Server, InvalidServer> {
        let obj: ClusterDatabaseServer =
            serde_saphyr::from_str(&format!("metadata: {{name: orders-pg}}\nspec: {spec}"))
                .unwrap();
        Server::of_cluster(&obj)
    }

    fn request(accounts: Accounts) -> DatabaseRequest {
        DatabaseRequest {
            server_ref: ServerRef {
                name: "orders-pg".into(),
                kind: ServerKind::ClusterDatabaseServer,
            },
            database: None,
            accounts,
        }
    }

    const PG: &str = "{engine: postgresql, host: pg.data.svc, database: postgres, accounts: ['app_*'], allowedNamespaces: {names: [shop], selector: {matchLabels: {team: shop}}}, adminSecretRef: {namespace: data, name: pg-admin}}";

    #[test]
    fn a_cluster_server_serves_the_namespaces_it_allows_and_nothing_by_default() {
        let s = server(PG).unwrap();
        let none = BTreeMap::new();
        let labelled: BTreeMap<String, String> = [("team".into(), "shop".into())].into();
        assert!(s.serves("shop", &none));
        assert!(s.serves("other", &labelled));
        assert!(!s.serves("other", &none));
        let closed = server("{engine: postgresql, host: pg, accounts: ['*']}").unwrap();
        assert!(
            !closed.serves("shop", &labelled),
            "no allowedNamespaces: none"
        );
        let everything =
            server("{engine: postgresql, host: pg, allowedNamespaces: {selector: {}}}").unwrap();
        assert!(
            !everything.serves("shop", &labelled),
            "an empty selector selects no namespace"
        );
    }

    #[test]
    fn accounts_are_checked_against_the_patterns_and_the_superusers() {
        let s = server(PG).unwrap();
        assert_eq!(s.refuses_account("app_orders"), None);
        assert!(
            s.refuses_account("dba")
                .unwrap()
                .contains("does not allow the account dba")
        );
        assert!(
            s.refuses_account("app_x.y").is_some(),
            "a pattern stops at a dot"
        );
        let open = server("{engine: postgresql, host: pg, accounts: ['*']}").unwrap();
        assert!(
            open.refuses_account("postgres")
                .unwrap()
                .contains("superuser")
        );
        let su = server("{engine: postgresql, host: pg, accounts: ['*'], allowSuperusers: true}")
            .unwrap();
        assert_eq!(su.refuses_account("postgres"), None);
        assert!(
            server("{engine: postgresql, host: pg}")
                .unwrap()
                .refuses_account("app")
                .is_some(),
            "no accounts: none"
        );
    }

    #[test]
    fn resolving_refuses_what_the_server_does_not_allow() {
        let none = BTreeMap::new();
        let ok = resolve(
            request(Accounts::SingleUser("app_orders".into())),
            Some(server(PG)),
            "shop",
            &none,
        )
        .unwrap();
        assert_eq!(
            (ok.server.host.as_str(), ok.server.port),
            ("pg.data.svc", 5432)
        );
        assert_eq!(
            ok.database.as_deref(),
            Some("postgres"),
            "the server's database by default"
        );
        assert_eq!(ok.server.admin.as_ref().unwrap().password.namespace, "data");
        assert!(matches!(
            resolve(request(Accounts::SingleUser("app_orders".into())), None, "shop", &none),
            Err(Refusal::NotFound(m)) if m.contains("ClusterDatabaseServer orders-pg")
        ));
        assert!(matches!(
            resolve(request(Accounts::SingleUser("app_orders".into())), Some(server(PG)), "billing", &none),
            Err(Refusal::Forbidden(m)) if m.contains("does not allow namespace billing")
        ));
        assert!(matches!(
            resolve(
                request(Accounts::MultiUser(["app_a".into(), "root".into()])),
                Some(server(PG)),
                "shop",
                &none
            ),
            Err(Refusal::Forbidden(_))
        ));
        let no_admin = server(
            "{engine: mysql, host: my, accounts: ['*'], allowedNamespaces: {names: [shop]}}",
        );
        assert!(matches!(
            resolve(request(Accounts::MultiUser(["a".into(), "b".into()])), Some(no_admin), "shop", &none),
            Err(Refusal::Invalid(m)) if m.contains("MultiUser needs a server with an administrator")
        ));
        assert!(matches!(
            resolve(request(Accounts::SingleUser("a".into())), Some(server("{engine: mysql, host: h, tls: {mode: disable, caSecretRef: {namespace: d, name: ca}}}")), "shop", &none),
            Err(Refusal::Invalid(m)) if m.contains("caSecretRef")
        ));
    }

    #[test]
    fn a_namespaced_server_serves_its_namespace_and_reads_its_own_secrets() {
        let obj: DatabaseServer = serde_saphyr::from_str(
            "metadata: {name: pg, namespace: shop}\nspec: {engine: postgresql, host: pg, accounts: ['*'], adminSecretRef: {name: admin}, tls: {mode: verify-full, caSecretRef: {name: ca}}}",
        )
        .unwrap();
        let s = Server::of_namespaced(&obj).unwrap();
        assert!(s.serves("shop", &BTreeMap::new()));
        assert!(!s.serves("other", &BTreeMap::new()));
        assert_eq!(s.admin.unwrap().username.namespace, "shop");
        assert_eq!(s.ca.unwrap().namespace, "shop");
        let _ = std::any::type_name::<SecretRotation>();
    }
}
