//! What a request to CSMS addresses, how its path and query are written, and what an error answer means
//! for it.
//!
//! Paths and queries are encoded as the official SDKs encode them: the unreserved characters
//! (`A-Z a-z 0-9 - _ . ~`) stay as they are, so `orders-db` travels as `orders-db`, and the query is sorted
//! by key and value (the SDKs send their canonical query string). The URL is then the same as the SDK's,
//! and so is the canonical URI both sides sign.
//!
//! Error answers: the nested `{"error": {...}}` and the flat `{"error_code", "error_msg"}` body are both
//! read. "Not found" is a 404, or the real service's CSMS.0005 (the resource does not exist) and
//! CSMS.0106 (the secret name does not exist), which it answers with 400. A secret pending deletion
//! (CSMS.0103, CSMS.0107) is an error of its own.

use reqwest::Method;

use crate::StoreError;
use crate::error::codes;
use crate::protocol::signer::encode;
use crate::protocol::wire::read_error_body;

/// One request's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The path as sent, encoded.
    pub path: String,
    /// What a "not found" answer is missing: project, secret, version, stage or task.
    pub kind: &'static str,
    /// Its name as errors show it (`orders-db`, `orders-db/v2`).
    pub name: String,
    /// The secret the request addresses, if any.
    pub secret: Option<String>,
}

impl Route {
    /// `/v1/{project}/{rest}`, a collection of the project (`secrets`, `csms/tasks`).
    pub fn project(project: &str, rest: &str) -> Route {
        Route {
            path: format!("/v1/{}/{rest}", encode(project)),
            kind: "project",
            name: project.to_owned(),
            secret: None,
        }
    }

    /// `/v1/{project}/secrets/{name}`.
    pub fn secret(project: &str, name: &str) -> Route {
        Route {
            path: format!("/v1/{}/secrets/{}", encode(project), encode(name)),
            kind: "secret",
            name: name.to_owned(),
            secret: Some(name.to_owned()),
        }
    }

    /// `/v1/{project}/secrets/{name}/{action}` (`versions`, `rotate`): a missing secret is what is missing.
    pub fn secret_action(project: &str, name: &str, action: &str) -> Route {
        let mut r = Route::secret(project, name);
        r.path = format!("{}/{action}", r.path);
        r
    }

    /// `/v1/{project}/secrets/{name}/{collection}/{item}`: a version or a stage.
    pub fn secret_item(project: &str, name: &str, collection: &str, item: &str) -> Route {
        let mut r = Route::secret(project, name);
        r.path = format!("{}/{collection}/{}", r.path, encode(item));
        r.kind = match collection {
            "versions" => "version",
            _ => "stage",
        };
        r.name = format!("{name}/{}", item.chars().take(64).collect::<String>());
        r
    }
}

/// The query string of `pairs` as the SDKs send it: sorted by key, then value; each encoded.
pub(crate) fn query_string(pairs: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a CSMS error code says the secret is pending (scheduled for) deletion.
fn pending_deletion(code: &str) -> bool {
    code == codes::PENDING_DELETION || code == codes::SCHEDULED_DELETION
}

/// The store error of an answer with a status outside 2xx.
pub(crate) fn answer_error(method: &Method, route: &Route, status: u16, body: &[u8]) -> StoreError {
    let (code, message) = match read_error_body(body) {
        Some(e) => (e.error_code, e.error_msg),
        None => (
            format!("HTTP.{status}"),
            format!(
                "{method} {} answered {status} without a CSMS error body",
                route.path
            ),
        ),
    };
    if (400..500).contains(&status) {
        if let Some(secret) = &route.secret {
            if pending_deletion(&code) {
                return StoreError::PendingDeletion {
                    name: secret.clone(),
                };
            }
            if code == codes::SECRET_NAME_NOT_FOUND {
                return StoreError::NotFound {
                    kind: "secret",
                    name: secret.clone(),
                };
            }
        }
        if status == 404 || code == codes::NOT_FOUND || code == codes::SECRET_NAME_NOT_FOUND {
            return StoreError::NotFound {
                kind: route.kind,
                name: route.name.clone(),
            };
        }
    }
    StoreError::Upstream {
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_the_unreserved_characters() {
        assert_eq!(
            Route::secret("p-1", "orders-db_v1.2~x").path,
            "/v1/p-1/secrets/orders-db_v1.2~x"
        );
        assert_eq!(
            Route::secret_item("p", "a b", "versions", "v/2").path,
            "/v1/p/secrets/a%20b/versions/v%2F2"
        );
        assert_eq!(
            Route::secret_action("p", "db", "rotate").path,
            "/v1/p/secrets/db/rotate"
        );
        assert_eq!(Route::project("p", "csms/tasks").path, "/v1/p/csms/tasks");
    }

    #[test]
    fn queries_are_sorted_and_encoded_as_the_sdk_sends_them() {
        let q = [
            ("secret_name", "orders-db_1.x".to_owned()),
            ("limit", "5".to_owned()),
            ("marker", "a b&c".to_owned()),
        ];
        assert_eq!(
            query_string(&q),
            "limit=5&marker=a%20b%26c&secret_name=orders-db_1.x"
        );
        assert_eq!(query_string(&[]), "");
    }

    #[test]
    fn not_found_by_status_and_by_code() {
        let get = Method::GET;
        let version = Route::secret_item("p", "db", "versions", "v9");
        let nested = br#"{"error":{"error_code":"CSMS.0005","error_msg":"x"}}"#;
        let flat = br#"{"error_code":"CSMS.0005","error_msg":"x"}"#;
        for (status, body) in [(400, &nested[..]), (400, &flat[..]), (404, b"")] {
            assert_eq!(
                answer_error(&get, &version, status, body),
                StoreError::NotFound {
                    kind: "version",
                    name: "db/v9".into()
                },
                "{status}"
            );
        }
        // CSMS.0106 names the secret, whatever the path addressed under it.
        let e = answer_error(
            &get,
            &version,
            400,
            br#"{"error_code":"CSMS.0106","error_msg":"no such secret"}"#,
        );
        assert_eq!(
            e,
            StoreError::NotFound {
                kind: "secret",
                name: "db".into()
            }
        );
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn pending_deletion_is_its_own_error() {
        let r = Route::secret_action("p", "db", "rotate");
        for code in ["CSMS.0103", "CSMS.0107"] {
            let body = format!(r#"{{"error":{{"error_code":"{code}","error_msg":"x"}}}}"#);
            assert_eq!(
                answer_error(&Method::POST, &r, 400, body.as_bytes()),
                StoreError::PendingDeletion { name: "db".into() }
            );
        }
    }

    #[test]
    fn other_errors_pass_through() {
        let r = Route::secret("p", "db");
        assert_eq!(
            answer_error(
                &Method::GET,
                &r,
                400,
                br#"{"error_code":"CSMS.0002","error_msg":"bad value"}"#
            ),
            StoreError::Upstream {
                status: 400,
                code: "CSMS.0002".into(),
                message: "bad value".into()
            }
        );
        // A 5xx is never "not found", even with CSMS.0005 in it.
        let e = answer_error(
            &Method::GET,
            &r,
            500,
            br#"{"error":{"error_code":"CSMS.0005","error_msg":"m"}}"#,
        );
        assert_eq!(e.status(), 500);
        let e = answer_error(&Method::GET, &r, 502, b"<html>bad gateway</html>");
        assert_eq!(e.code(), "HTTP.502");
        assert!(e.to_string().contains("/v1/p/secrets/db"), "{e}");
    }
}
