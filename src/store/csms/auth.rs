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
//! ```

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::store::StoreError;

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

/// The client's credentials.
pub enum CsmsAuth {
    /// `X-Auth-Token: <token>`.
    Token(Zeroizing<String>),
    /// AK/SK signing.
    AkSk(AccessKey),
    /// An IAM token, fetched on first use and refreshed ahead of expiry.
    Iam {
        /// How to get one.
        config: IamConfig,
        /// The current token.
        cached: Mutex<Option<IamToken>>,
    },
}

impl std::fmt::Debug for CsmsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsmsAuth::Token(_) => f.write_str("CsmsAuth::Token(<redacted>)"),
            CsmsAuth::AkSk(k) => write!(f, "CsmsAuth::AkSk({})", k.ak),
            CsmsAuth::Iam { config, .. } => {
                write!(f, "CsmsAuth::Iam({}/{})", config.domain, config.user)
            }
        }
    }
}

/// Refresh an IAM token this long before it expires.
pub const IAM_REFRESH_MARGIN: Duration = Duration::from_secs(600);

impl CsmsAuth {
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
            .map_err(|_| err("expected one of token, access_key {ak, sk} or iam {endpoint, domain, user, password}".into()))?;
        match (file.token, file.access_key, file.iam) {
            (Some(t), None, None) if !t.is_empty() => Ok(CsmsAuth::Token(t)),
            (None, Some(k), None) if !k.ak.is_empty() && !k.sk.is_empty() => Ok(CsmsAuth::AkSk(k)),
            (None, None, Some(config)) => Ok(CsmsAuth::Iam {
                config,
                cached: Mutex::new(None),
            }),
            _ => Err(err(
                "give exactly one of token, access_key or iam, none empty".into(),
            )),
        }
    }
}
