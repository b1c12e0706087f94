//! How the `csms` client authenticates: a static token, an IAM token fetched and refreshed, or AK/SK
//! request signing. Loaded from the YAML file named by `--csms-auth-file`:
//!
//! ```yaml
//! token: "..."                      # a static X-Auth-Token; or
//! access_key: {ak: "...", sk: "..."}  # SDK-HMAC-SHA256 signing; or
//! iam:                              # a project-scoped IAM token, refreshed before it expires
//!   endpoint: https://iam.ap-southeast-1.myhuaweicloud.com
//!   domain: my-account
//!   user: rotator
//!   password: "..."
//! workload_identity:                # or: the pod's projected ServiceAccount token exchanged at IAM
//!   endpoint: https://iam.ap-southeast-1.myhuaweicloud.com
//!   idp_id: my-cce-cluster          # the OpenID Connect identity provider configured in IAM
//!   token_file: /var/run/secrets/tokens/csms/token
//! ```
//!
//! Workload identity (CCE): IAM trusts the cluster's ServiceAccount issuer as an OpenID Connect identity
//! provider; the operator posts the kubelet-rotated projected token to `POST /v3.0/OS-AUTH/id-token/tokens`
//! (header `X-Idp-Id`, scoped to the project) and gets a project-scoped token, so no long-lived AK/SK or
//! password sits in a Secret. The token file is read afresh for every exchange.
//!
//! An IAM token is scoped to one project, so the client keeps one per project: a token of one tenant's
//! project never stands in for another's. A token the service refuses (401) is dropped and fetched again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::StoreError;

/// The auth file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsmsAuthFile {
    /// A static token.
    #[serde(default)]
    pub token: Option<Zeroizing<String>>,
    /// An access key pair.
    #[serde(default)]
    pub access_key: Option<AccessKey>,
    /// IAM password authentication.
    #[serde(default)]
    pub iam: Option<IamConfig>,
    /// Workload identity: the projected ServiceAccount token exchanged at IAM.
    #[serde(default)]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// The projected ServiceAccount token that IAM exchanges for a project-scoped token.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// IAM endpoint.
    pub endpoint: String,
    /// The identity provider's id in IAM (sent as `X-Idp-Id`).
    pub idp_id: String,
    /// The projected token's file (the chart mounts it here).
    #[serde(default = "default_token_file")]
    pub token_file: std::path::PathBuf,
}

/// Where the chart mounts the projected ServiceAccount token for IAM.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/tokens/csms/token";

fn default_token_file() -> std::path::PathBuf {
    DEFAULT_TOKEN_FILE.into()
}

/// How IAM tokens are obtained.
#[derive(Clone)]
pub enum IamSource {
    /// An IAM user's password.
    Password(IamConfig),
    /// A projected ServiceAccount token (OpenID Connect federation).
    IdToken(WorkloadIdentity),
}

impl IamSource {
    /// The IAM endpoint.
    pub fn endpoint(&self) -> &str {
        match self {
            IamSource::Password(c) => &c.endpoint,
            IamSource::IdToken(w) => &w.endpoint,
        }
    }

    /// The token request for `project`: the URL, the JSON body and, for workload identity, the `X-Idp-Id`.
    /// The projected token is read afresh each time (the kubelet rotates it).
    pub async fn token_request(
        &self,
        project: &str,
    ) -> Result<(String, serde_json::Value, Option<String>), StoreError> {
        Ok(match self {
            IamSource::Password(c) => (
                format!("{}/v3/auth/tokens", c.endpoint.trim_end_matches('/')),
                serde_json::json!({
                    "auth": {
                        "identity": {
                            "methods": ["password"],
                            "password": {"user": {"name": c.user, "password": c.password.as_str(), "domain": {"name": c.domain}}}
                        },
                        "scope": {"project": {"id": project}}
                    }
                }),
                None,
            ),
            IamSource::IdToken(w) => {
                let jwt = Zeroizing::new(
                    tokio::fs::read_to_string(&w.token_file)
                        .await
                        .map_err(|e| {
                            StoreError::internal(
                                format!(
                                    "reading the projected ServiceAccount token {}",
                                    w.token_file.display()
                                ),
                                e,
                            )
                        })?
                        .trim()
                        .to_owned(),
                );
                (
                    format!(
                        "{}/v3.0/OS-AUTH/id-token/tokens",
                        w.endpoint.trim_end_matches('/')
                    ),
                    serde_json::json!({
                        "auth": {
                            "id_token": {"id": jwt.as_str()},
                            "scope": {"project": {"id": project}}
                        }
                    }),
                    Some(w.idp_id.clone()),
                )
            }
        })
    }

    /// Who asks, for messages (never a credential).
    pub fn who(&self) -> String {
        match self {
            IamSource::Password(c) => format!("user {}/{}", c.domain, c.user),
            IamSource::IdToken(w) => format!("workload identity (identity provider {})", w.idp_id),
        }
    }
}

/// An access key pair.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    /// Access key id.
    pub ak: String,
    /// Secret access key.
    pub sk: Zeroizing<String>,
}

/// IAM password authentication for a project-scoped token.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IamConfig {
    /// IAM endpoint, for example `https://iam.ap-southeast-1.myhuaweicloud.com`.
    pub endpoint: String,
    /// Account (domain) name.
    pub domain: String,
    /// IAM user name.
    pub user: String,
    /// The user's password.
    pub password: Zeroizing<String>,
}

/// A cached IAM token.
pub struct IamToken {
    pub(crate) value: Zeroizing<String>,
    pub(crate) expires_at: jiff::Timestamp,
}

/// The slot of one project's token; its lock is held while the token is fetched, so concurrent calls for
/// one project fetch it once, and calls for other projects do not wait.
pub(crate) type TokenSlot = Arc<Mutex<Option<IamToken>>>;

/// IAM tokens, one per project.
#[derive(Default)]
pub struct IamTokens {
    by_project: Mutex<HashMap<String, TokenSlot>>,
}

impl IamTokens {
    /// The slot of `project`'s token (made empty on first use).
    pub(crate) async fn slot(&self, project: &str) -> TokenSlot {
        self.by_project
            .lock()
            .await
            .entry(project.to_owned())
            .or_default()
            .clone()
    }

    /// Drops `project`'s token if it is still `refused` (a call that fetched a newer one meanwhile keeps it).
    pub(crate) async fn drop_refused(&self, project: &str, refused: &str) {
        let slot = self.slot(project).await;
        let mut token = slot.lock().await;
        if token.as_ref().is_some_and(|t| t.value.as_str() == refused) {
            *token = None;
        }
    }

    /// The projects that hold a token now (for tests and diagnostics).
    pub async fn projects(&self) -> Vec<String> {
        let slots: Vec<(String, TokenSlot)> = self
            .by_project
            .lock()
            .await
            .iter()
            .map(|(p, s)| (p.clone(), s.clone()))
            .collect();
        let mut out = Vec::new();
        for (p, s) in slots {
            if s.lock().await.is_some() {
                out.push(p);
            }
        }
        out.sort();
        out
    }
}

/// The client's credentials.
pub enum CsmsAuth {
    /// `X-Auth-Token: <token>`.
    Token(Zeroizing<String>),
    /// AK/SK signing.
    AkSk(AccessKey),
    /// IAM tokens, one per project, each fetched on first use, refreshed ahead of expiry and fetched again
    /// when refused.
    Iam {
        /// How to get one.
        config: IamSource,
        /// The current tokens.
        tokens: IamTokens,
    },
}

impl std::fmt::Debug for CsmsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsmsAuth::Token(_) => f.write_str("CsmsAuth::Token(<redacted>)"),
            CsmsAuth::AkSk(k) => write!(f, "CsmsAuth::AkSk({})", k.ak),
            CsmsAuth::Iam { config, .. } => write!(f, "CsmsAuth::Iam({})", config.who()),
        }
    }
}

/// Refresh an IAM token this long before it expires.
pub const IAM_REFRESH_MARGIN: Duration = Duration::from_secs(600);

impl CsmsAuth {
    /// IAM password authentication, with no token fetched yet.
    pub fn iam(config: IamConfig) -> CsmsAuth {
        CsmsAuth::Iam {
            config: IamSource::Password(config),
            tokens: IamTokens::default(),
        }
    }

    /// Workload identity, with no token fetched yet.
    pub fn workload(identity: WorkloadIdentity) -> CsmsAuth {
        CsmsAuth::Iam {
            config: IamSource::IdToken(identity),
            tokens: IamTokens::default(),
        }
    }

    /// Loads the auth file; exactly one method must be given.
    pub fn load(path: &Path) -> Result<CsmsAuth, StoreError> {
        let err = |message: String| StoreError::InvalidParameter {
            field: format!("--csms-auth-file {}", path.display()),
            message,
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?,
        );
        let file: CsmsAuthFile = serde_saphyr::from_str(&text)
            .map_err(|_| err("expected one of token, access_key {ak, sk}, iam {endpoint, domain, user, password} or workload_identity {endpoint, idp_id, token_file}".into()))?;
        match (
            file.token,
            file.access_key,
            file.iam,
            file.workload_identity,
        ) {
            (Some(t), None, None, None) if !t.is_empty() => Ok(CsmsAuth::Token(t)),
            (None, Some(k), None, None) if !k.ak.is_empty() && !k.sk.is_empty() => {
                Ok(CsmsAuth::AkSk(k))
            }
            (None, None, Some(config), None) => Ok(CsmsAuth::iam(config)),
            (None, None, None, Some(w)) if !w.idp_id.is_empty() && !w.endpoint.is_empty() => {
                Ok(CsmsAuth::workload(w))
            }
            _ => Err(err(
                "give exactly one of token, access_key, iam or workload_identity, none empty"
                    .into(),
            )),
        }
    }
}
