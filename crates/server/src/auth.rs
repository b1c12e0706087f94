//! Authentication of API requests: `X-Auth-Token` tokens and AK/SK signatures from the auth file, each
//! allowed a list of projects (`*` for all). Secrets are compared in constant time; none is logged.

use std::path::Path;

use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use secret_rotator_store::protocol::signer;

/// The auth file: `tokens: [{token, projects}]`, `access_keys: [{ak, sk, projects}]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// Static tokens checked against `X-Auth-Token`.
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    /// Access keys checked against the `SDK-HMAC-SHA256` signature.
    #[serde(default)]
    pub access_keys: Vec<AccessKeyEntry>,
}

/// A token and its projects.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// The token.
    pub token: Zeroizing<String>,
    /// Projects it may use; `*` for all.
    pub projects: Vec<String>,
}

/// An access key pair and its projects.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyEntry {
    /// Access key id.
    pub ak: String,
    /// Secret access key.
    pub sk: Zeroizing<String>,
    /// Projects it may use; `*` for all.
    pub projects: Vec<String>,
}

/// Why an auth file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// Unreadable.
    #[error("auth file {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not the expected YAML.
    #[error("auth file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong (no credential is quoted).
        message: String,
    },
}

impl AuthFile {
    /// Loads and checks an auth file.
    pub fn load(path: &Path) -> Result<AuthFile, AuthFileError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            AuthFileError::Read {
                path: path.display().to_string(),
                source,
            }
        })?);
        AuthFile::parse(&text, &path.display().to_string())
    }

    /// Parses auth file text.
    pub fn parse(text: &str, origin: &str) -> Result<AuthFile, AuthFileError> {
        let invalid = |message: String| AuthFileError::Invalid {
            path: origin.to_owned(),
            message,
        };
        // serde-saphyr's messages can quote the input; report only where it failed.
        let file: AuthFile = serde_saphyr::from_str(text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or_default().chars().take(80).collect::<String>();
            let where_ = first.split(':').next().unwrap_or_default().to_owned();
            invalid(format!("not a valid auth file (tokens: [{{token, projects}}], access_keys: [{{ak, sk, projects}}]) near {where_}"))
        })?;
        if file.tokens.is_empty() && file.access_keys.is_empty() {
            return Err(invalid(
                "no tokens and no access_keys: every request would be refused".into(),
            ));
        }
        for t in &file.tokens {
            if t.token.len() < 16 {
                return Err(invalid("a token is shorter than 16 characters".into()));
            }
            if t.projects.is_empty() {
                return Err(invalid("a token has no projects".into()));
            }
        }
        for k in &file.access_keys {
            if k.ak.is_empty() || k.sk.len() < 16 {
                return Err(invalid(format!(
                    "access key {}: empty ak or an sk shorter than 16 characters",
                    k.ak
                )));
            }
            if k.projects.is_empty() {
                return Err(invalid(format!("access key {} has no projects", k.ak)));
            }
        }
        Ok(file)
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `token#N` or the access key id.
    pub name: String,
    /// Allowed projects.
    pub projects: Vec<String>,
    /// For a signed request: its signature and the Unix second its X-Sdk-Date leaves the skew window.
    pub signature: Option<(String, i64)>,
}

impl Principal {
    /// Whether the principal may use a project.
    pub fn allows(&self, project: &str) -> bool {
        self.projects.iter().any(|p| p == "*" || p == project)
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("no credentials: send X-Auth-Token or an SDK-HMAC-SHA256 Authorization header")]
    Missing,
    /// Unknown token.
    #[error("the token is not valid")]
    BadToken,
    /// A malformed signature header.
    #[error("{0}")]
    Malformed(String),
    /// Unknown access key or wrong signature.
    #[error("the signature does not match")]
    BadSignature,
    /// X-Sdk-Date missing, malformed or outside the allowed skew.
    #[error("X-Sdk-Date is missing, malformed or more than {0} seconds from the server's clock")]
    Skew(i64),
}

/// The parts of a request that authentication reads.
pub struct RequestParts<'a> {
    /// Method.
    pub method: &'a str,
    /// Path, as sent.
    pub path: &'a str,
    /// Raw query, as sent.
    pub query: Option<&'a str>,
    /// Header lookup by lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The outcome of checking a request's headers, before its body is read.
pub enum HeaderCheck<'f> {
    /// A token request: authenticated.
    Done(Principal),
    /// A signed request from a known access key, its date within the skew: the signature still has to be
    /// checked over the body.
    Signed {
        /// The access key.
        key: &'f AccessKeyEntry,
        /// The parsed Authorization header.
        parsed: signer::Authorization,
        /// Its X-Sdk-Date.
        date: jiff::Timestamp,
        /// The X-Sdk-Date as sent (what the signature covers).
        date_text: String,
    },
}

/// Checks a request's credentials as far as its headers go: a token is decided here; a signature is
/// accepted for checking only from a known access key, with a fresh date and host and date signed. The
/// body is read only after this, so an unauthenticated client cannot make the server buffer one.
pub fn check_headers<'f, 'h>(
    file: &'f AuthFile,
    header: &'h dyn Fn(&str) -> Option<&'h str>,
    now: jiff::Timestamp,
    max_skew_secs: i64,
) -> Result<HeaderCheck<'f>, AuthError> {
    if let Some(token) = header("x-auth-token") {
        // Compare against every entry, so timing does not tell which one (or whether any) matched.
        let mut found = None;
        for (i, t) in file.tokens.iter().enumerate() {
            if bool::from(t.token.as_bytes().ct_eq(token.as_bytes())) && found.is_none() {
                found = Some(i);
            }
        }
        return found
            .map(|i| {
                HeaderCheck::Done(Principal {
                    name: format!("token#{i}"),
                    projects: file.tokens[i].projects.clone(),
                    signature: None,
                })
            })
            .ok_or(AuthError::BadToken);
    }
    let Some(authz) = header("authorization") else {
        return Err(AuthError::Missing);
    };
    let parsed =
        signer::parse_authorization(authz).map_err(|e| AuthError::Malformed(e.to_string()))?;
    let date = header("x-sdk-date").ok_or(AuthError::Skew(max_skew_secs))?;
    let t = signer::parse_date(date).ok_or(AuthError::Skew(max_skew_secs))?;
    if (now.as_second() - t.as_second()).abs() > max_skew_secs {
        return Err(AuthError::Skew(max_skew_secs));
    }
    if !parsed.signed_headers.iter().any(|h| h == "x-sdk-date")
        || !parsed.signed_headers.iter().any(|h| h == "host")
    {
        return Err(AuthError::Malformed(
            "SignedHeaders must include host and x-sdk-date".into(),
        ));
    }
    let key = file
        .access_keys
        .iter()
        .find(|k| bool::from(k.ak.as_bytes().ct_eq(parsed.access.as_bytes())))
        .ok_or(AuthError::BadSignature)?;
    Ok(HeaderCheck::Signed {
        key,
        parsed,
        date: t,
        date_text: date.to_owned(),
    })
}

/// Checks a signature over the whole request, body included. `X-Sdk-Content-Sha256` stands in for the
/// body's hash only when it is itself signed, and then it must be the body's SHA-256; `UNSIGNED-PAYLOAD`
/// is accepted only on reads.
pub fn check_signature(
    key: &AccessKeyEntry,
    parsed: &signer::Authorization,
    (date, date_text): (jiff::Timestamp, &str),
    req: &RequestParts<'_>,
    max_skew_secs: i64,
) -> Result<Principal, AuthError> {
    const CONTENT_SHA: &str = "x-sdk-content-sha256";
    let signed_sha = parsed.signed_headers.iter().any(|h| h == CONTENT_SHA);
    if signed_sha && let Some(claimed) = (req.header)(CONTENT_SHA) {
        let write = !matches!(req.method, "GET" | "HEAD");
        if claimed == signer::UNSIGNED_PAYLOAD {
            if write {
                return Err(AuthError::Malformed(
                    "X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD is refused on writes; sign the body"
                        .into(),
                ));
            }
        } else if !req.body.is_empty()
            && !claimed.eq_ignore_ascii_case(&signer::sha256_hex(req.body))
        {
            return Err(AuthError::BadSignature);
        }
    }
    // An unsigned X-Sdk-Content-Sha256 is not the sender's word: the body's own hash is signed instead.
    let lookup = |name: &str| {
        if name == CONTENT_SHA && !signed_sha {
            None
        } else {
            (req.header)(name)
        }
    };
    let canonical = signer::canonical_request(
        req.method,
        req.path,
        req.query,
        &parsed.signed_headers,
        lookup,
        req.body,
    );
    let expected = signer::sign(key.sk.as_bytes(), date_text, &canonical);
    if bool::from(expected.as_bytes().ct_eq(parsed.signature.as_bytes())) {
        Ok(Principal {
            name: key.ak.clone(),
            projects: key.projects.clone(),
            signature: Some((parsed.signature.clone(), date.as_second() + max_skew_secs)),
        })
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Checks a request's credentials, headers and body together.
pub fn authenticate(
    file: &AuthFile,
    req: &RequestParts<'_>,
    now: jiff::Timestamp,
    max_skew_secs: i64,
) -> Result<Principal, AuthError> {
    match check_headers(file, req.header, now, max_skew_secs)? {
        HeaderCheck::Done(p) => Ok(p),
        HeaderCheck::Signed {
            key,
            parsed,
            date,
            date_text,
        } => check_signature(key, &parsed, (date, &date_text), req, max_skew_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "
tokens:
- token: tok-0123456789abcdef
  projects: [p1]
access_keys:
- ak: AK1
  sk: SK1-0123456789abcdef
  projects: ['*']
";

    fn parts<'a>(h: &'a dyn Fn(&str) -> Option<&'a str>) -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            path: "/v1/p1/secrets",
            query: Some("limit=2"),
            header: h,
            body: b"",
        }
    }

    #[test]
    fn tokens_and_projects() {
        let f = AuthFile::parse(FILE, "t").unwrap();
        let now = jiff::Timestamp::now();
        let ok = |h: &str| (h == "x-auth-token").then_some("tok-0123456789abcdef");
        let p = authenticate(&f, &parts(&ok), now, 900).unwrap();
        assert!(p.allows("p1") && !p.allows("p2"));
        let bad = |h: &str| (h == "x-auth-token").then_some("tok-0123456789abcdeX");
        assert_eq!(
            authenticate(&f, &parts(&bad), now, 900),
            Err(AuthError::BadToken)
        );
        let none = |_: &str| None;
        assert_eq!(
            authenticate(&f, &parts(&none), now, 900),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn signatures_skew_and_tampering() {
        let f = AuthFile::parse(FILE, "t").unwrap();
        let now = jiff::Timestamp::now();
        let date = signer::format_date(now);
        let unsigned = |n: &str| -> Option<&str> {
            match n {
                "host" => Some("localhost"),
                "x-sdk-date" => Some(date.as_str()),
                _ => None,
            }
        };
        let authz = signer::sign_request(
            "AK1",
            b"SK1-0123456789abcdef",
            &signer::Request {
                method: "GET",
                path: "/v1/p1/secrets",
                query: Some("limit=2"),
                headers: &[("host", "localhost"), ("x-sdk-date", date.as_str())],
                body: b"",
            },
        );
        let lookup = |n: &str| -> Option<&str> {
            match n {
                "authorization" => Some(authz.as_str()),
                other => unsigned(other),
            }
        };
        let p = authenticate(&f, &parts(&lookup), now, 900).unwrap();
        assert_eq!(p.name, "AK1");
        assert!(p.allows("anything"));
        // Another query: the signature no longer matches.
        let mut tampered = parts(&lookup);
        tampered.query = Some("limit=3");
        assert_eq!(
            authenticate(&f, &tampered, now, 900),
            Err(AuthError::BadSignature)
        );
        // Too far from the clock.
        let later = now
            .checked_add(jiff::SignedDuration::from_secs(1000))
            .unwrap();
        assert_eq!(
            authenticate(&f, &parts(&lookup), later, 900),
            Err(AuthError::Skew(900))
        );
    }

    #[test]
    fn auth_file_errors_do_not_quote_secrets() {
        let e = AuthFile::parse("tokens:\n- token: short-secret-x\n  projects: [p]\n", "f")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("shorter than 16") && !e.contains("short-secret-x"),
            "{e}"
        );
        let e = AuthFile::parse(
            "tokens: [{token: 'my-hidden-token-value-1234', projects: [p], extra: 1}]",
            "f",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(!e.contains("my-hidden-token-value-1234"), "{e}");
        assert!(AuthFile::parse("{}", "f").is_err());
    }
}
