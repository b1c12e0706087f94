//! An apiserver in the test process: the few resources a reconcile touches (Secrets, SecretRotations and
//! their status, Events), kept as JSON, every request recorded. It serves kube's `Client` directly as a
//! tower service, so no socket is opened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// What the fake holds and saw.
#[derive(Default)]
pub struct Objects {
    /// Objects by path (`/api/v1/namespaces/shop/secrets/api`).
    pub objects: BTreeMap<String, Value>,
    /// Every request, as `METHOD path`.
    pub requests: Vec<String>,
    /// Answer every status write with this code instead.
    pub refuse_status: Option<u16>,
    /// Answer every write of a Secret with this code instead.
    pub refuse_secrets: Option<u16>,
    revision: u64,
}

/// A shared handle on the fake's state.
#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<Objects>>);

impl Fake {
    /// A kube client served by this fake.
    pub fn client(&self) -> kube::Client {
        let router = Router::new().fallback(handle).with_state(self.clone());
        kube::Client::new(router, "default")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Objects> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts an object at `path`, with a new resourceVersion.
    pub fn put(&self, path: &str, mut obj: Value) {
        let mut o = self.lock();
        o.revision += 1;
        obj["metadata"]["resourceVersion"] = json!(o.revision.to_string());
        o.objects.insert(path.to_owned(), obj);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.lock().objects.get(path).cloned()
    }

    /// The requests so far that change something (everything but GET), and forgets all.
    pub fn take_writes(&self) -> Vec<String> {
        let mut o = self.lock();
        let all = std::mem::take(&mut o.requests);
        all.into_iter().filter(|r| !r.starts_with("GET ")).collect()
    }

    /// Every request so far, and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().requests)
    }

    /// Answers every status write with `code`.
    pub fn refuse_status(&self, code: u16) {
        self.lock().refuse_status = Some(code);
    }

    /// Answers every Secret write with `code`.
    pub fn refuse_secrets(&self, code: u16) {
        self.lock().refuse_secrets = Some(code);
    }

    /// Removes the object at `path`.
    pub fn delete(&self, path: &str) {
        self.lock().objects.remove(path);
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

/// RFC 7386: `patch` merged into `target`.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn handle(State(fake): State<Fake>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    let mut o = fake.lock();
    o.requests.push(format!("{method} {path}"));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if path.ends_with("/events") && method == Method::POST {
        return (StatusCode::CREATED, axum::Json(body)).into_response();
    }
    if let Some(object) = path.strip_suffix("/status") {
        if let Some(code) = o.refuse_status {
            return status(code, "InternalError", "status writes refused by the test");
        }
        let Some(mut current) = o.objects.get(object).cloned() else {
            return status(404, "NotFound", "no such object");
        };
        merge(&mut current, &body);
        o.revision += 1;
        current["metadata"]["resourceVersion"] = json!(o.revision.to_string());
        o.objects.insert(object.to_owned(), current.clone());
        return axum::Json(current).into_response();
    }
    match method {
        Method::GET => match o.objects.get(&path) {
            Some(obj) => axum::Json(obj.clone()).into_response(),
            None => status(404, "NotFound", "not found"),
        },
        Method::POST if path.ends_with("/secrets") => {
            if let Some(code) = o.refuse_secrets {
                return status(code, "Invalid", "Secret refused by the test");
            }
            let name = body["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let at = format!("{path}/{name}");
            if o.objects.contains_key(&at) {
                return status(409, "AlreadyExists", "secrets already exists");
            }
            let mut obj = body;
            o.revision += 1;
            obj["metadata"]["resourceVersion"] = json!(o.revision.to_string());
            obj["metadata"]["uid"] = json!(format!("uid-{}", o.revision));
            o.objects.insert(at, obj.clone());
            (StatusCode::CREATED, axum::Json(obj)).into_response()
        }
        Method::PATCH if path.contains("/secrets/") => {
            if let Some(code) = o.refuse_secrets {
                return status(code, "Invalid", "Secret refused by the test");
            }
            // The UID in an applied object is a precondition.
            let stored_uid = o.objects.get(&path).map(|s| s["metadata"]["uid"].clone());
            if let (Some(want), Some(have)) = (body["metadata"].get("uid"), &stored_uid)
                && want != have
            {
                return status(409, "Conflict", "Precondition failed: UID in precondition");
            }
            let keep_uid = stored_uid.filter(|u| !u.is_null());
            // Server-side apply of a whole object: the fake keeps what was applied.
            let mut obj = body;
            o.revision += 1;
            obj["metadata"]["resourceVersion"] = json!(o.revision.to_string());
            obj["metadata"]["uid"] =
                keep_uid.unwrap_or_else(|| json!(format!("uid-{}", o.revision)));
            o.objects.insert(path, obj.clone());
            axum::Json(obj).into_response()
        }
        _ => status(405, "MethodNotAllowed", "the fake does not serve this"),
    }
}
