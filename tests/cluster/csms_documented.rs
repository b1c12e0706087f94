//! The `csms` client against a stand-in CSMS that answers the way the service's documentation shows
//!, over real HTTP: RotateSecret's example answer `{"rotation_task_id"}` alone, flat
//! `{"error_code", "error_msg"}` error bodies beside RotateSecret's nested one, "not found" as 400 with
//! CSMS.0106 or CSMS.0005, tasks that are PROCESSING (or in a status the client does not know) and finish
//! later, task lists with `page_info` instead of `total`, fields the SDK models do not have, and secrets
//! pending deletion (CSMS.0103, CSMS.0107). Requests are AK/SK-signed; the stand-in verifies each
//! signature over the path exactly as it arrived, as the service's API gateway does.
//!
//! The client goes through full rotation cycles through the `Store` trait: create, rotate, read the new
//! version, list the tasks; and the operator (`run --store csms`, on the local control plane) rotates a
//! database secret through it, then reports the secret's pending deletion as a condition of its own.

use crate::support::csms as csms_support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::csms::auth::AccessKey;
use secret_rotator_store::csms::{CsmsAuth, CsmsStore};
use secret_rotator_store::error::codes;
use secret_rotator_store::protocol::signer;
use secret_rotator_store::*;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const AK: &str = "DOCUMENTEDAK";
const SK: &str = "documented-sk-0123456789abcdef";
const PROJECT: &str = "proj-0a1b_2.c";
const DB: &str = "orders-db_v1.2";
const COMMON: &str = "api.key-1_x";

struct SecretRec {
    secret_type: String,
    description: String,
    rotation_config: String,
    /// (id, create_time, value), oldest first.
    versions: Vec<(String, i64, String)>,
    /// Stage name -> version id.
    stages: BTreeMap<String, String>,
    pending_delete: bool,
}

struct TaskRec {
    id: String,
    secret: String,
    time: i64,
    /// The statuses the task shows from now on, one per poll; the last stays.
    ahead: VecDeque<&'static str>,
    status: &'static str,
    /// The rotation ends FAILED with this code.
    fails: bool,
    polls: usize,
}

#[derive(Default)]
struct State {
    secrets: BTreeMap<String, SecretRec>,
    tasks: Vec<TaskRec>,
    /// `METHOD path?query` of each request, as received.
    requests: Vec<String>,
    /// RotateSecret answers `{}` (no task id) instead of the documented `{"rotation_task_id"}`.
    rotate_answers_nothing: bool,
    /// The next rotation fails.
    fail_next: bool,
    /// Version answers leave out `create_time` (only the version list has it).
    thin_versions: bool,
    /// The last time handed out, epoch ms.
    clock: i64,
}

/// Now, epoch ms; later than any time `clock` handed out before.
fn tick(clock: &mut i64) -> i64 {
    *clock = jiff::Timestamp::now().as_millisecond().max(*clock + 1);
    *clock
}

type Shared = Arc<Mutex<State>>;

fn flat(status: StatusCode, code: &str, msg: &str) -> (StatusCode, Value) {
    (status, json!({"error_code": code, "error_msg": msg}))
}

fn nested(status: StatusCode, code: &str, msg: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"error": {"error_code": code, "error_msg": msg}}),
    )
}

fn secret_json(name: &str, s: &SecretRec) -> Value {
    json!({
        "id": format!("id-{name}"),
        "name": name,
        "state": if s.pending_delete { "PENDING_DELETE" } else { "ENABLED" },
        "kms_key_id": "b168fe00ff56492495a7d22974df2d0b",
        "description": s.description,
        "create_time": 1_581_507_580_000i64,
        "update_time": 1_581_507_580_000i64,
        "scheduled_delete_time": 0,
        "secret_type": s.secret_type,
        "auto_rotation": false,
        "rotation_config": s.rotation_config,
        "enterprise_project_id": "0",
        "a_field_the_sdk_models_lack": {"nested": [1, 2]},
    })
}

/// Advances a task by one poll; a rotation that reaches SUCCESS makes its new version current.
fn advance(st: &mut State, i: usize) {
    let t = &mut st.tasks[i];
    t.polls += 1;
    if let Some(next) = t.ahead.pop_front() {
        t.status = next;
        if next == "SUCCESS" {
            let name = t.secret.clone();
            let now = tick(&mut st.clock);
            let s = st.secrets.get_mut(&name).unwrap();
            let id = format!("v{}", s.versions.len() + 1);
            let value = format!(
                r#"{{"username":"app","password":"rotated-{}"}}"#,
                s.versions.len() + 1
            );
            s.versions.push((id.clone(), now, value));
            if let Some(old) = s.stages.insert("SYSCURRENT".into(), id) {
                s.stages.insert("SYSPREVIOUS".into(), old);
            }
        }
    }
}

fn handle(
    st: &mut State,
    method: &Method,
    segs: &[String],
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> (StatusCode, Value) {
    let seg: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (method.as_str(), &seg[..]) {
        ("POST", ["secrets"]) => {
            let b: Value = serde_json::from_slice(body).unwrap();
            let name = b["name"].as_str().unwrap().to_owned();
            let now = tick(&mut st.clock);
            let rec = SecretRec {
                description: b["description"].as_str().unwrap_or_default().to_owned(),
                secret_type: b["secret_type"].as_str().unwrap_or("COMMON").to_owned(),
                rotation_config: b["rotation_config"].as_str().unwrap_or_default().to_owned(),
                versions: vec![(
                    "v1".into(),
                    now,
                    b["secret_string"].as_str().unwrap().to_owned(),
                )],
                stages: BTreeMap::from([("SYSCURRENT".into(), "v1".into())]),
                pending_delete: false,
            };
            let answer = json!({"secret": secret_json(&name, &rec)});
            st.secrets.insert(name, rec);
            (StatusCode::OK, answer)
        }
        ("GET", ["csms", "tasks"]) => {
            let idx: Vec<usize> = (0..st.tasks.len())
                .filter(|&i| {
                    let t = &st.tasks[i];
                    query.get("secret_name").is_none_or(|n| *n == t.secret)
                        && query.get("task_id").is_none_or(|id| *id == t.id)
                })
                .collect();
            if query.contains_key("task_id") {
                for &i in &idx {
                    advance(st, i);
                }
            }
            let tasks: Vec<Value> = idx
                .iter()
                .rev()
                .map(|&i| &st.tasks[i])
                .filter(|t| query.get("status").is_none_or(|s| s == t.status))
                .map(|t| {
                    json!({
                        "task_id": t.id, "secret_name": t.secret, "rotation_func_urn": "",
                        "task_status": t.status, "operate_type": "ROTATE", "task_time": t.time,
                        "attempt_nums": 1,
                        "task_error_code": if t.status == "FAILED" { "RDS.0500" } else { "" },
                        "task_error_msg": if t.status == "FAILED" { "the instance refused the password" } else { "" },
                    })
                })
                .collect();
            // No `total`: the page_info of the other list answers.
            let n = tasks.len();
            (
                StatusCode::OK,
                json!({"tasks": tasks, "page_info": {"current_count": n}}),
            )
        }
        (_, ["secrets", name, rest @ ..]) => {
            let name = name.to_string();
            let Some(s) = st.secrets.get_mut(&name) else {
                return if rest == ["rotate"] {
                    nested(
                        StatusCode::NOT_FOUND,
                        "CSMS.0005",
                        "The requested resource does not exist.",
                    )
                } else {
                    flat(
                        StatusCode::BAD_REQUEST,
                        "CSMS.0106",
                        "The secret name does not exist.",
                    )
                };
            };
            if s.pending_delete && !rest.is_empty() {
                return if rest == ["rotate"] {
                    nested(
                        StatusCode::BAD_REQUEST,
                        "CSMS.0107",
                        "The secret is pending deletion.",
                    )
                } else {
                    flat(
                        StatusCode::BAD_REQUEST,
                        "CSMS.0103",
                        "The secret is in the scheduled deletion state.",
                    )
                };
            }
            match (method.as_str(), rest) {
                ("GET", []) => (StatusCode::OK, json!({"secret": secret_json(&name, s)})),
                ("PUT", []) => {
                    let b: Value = serde_json::from_slice(body).unwrap();
                    if let Some(d) = b["description"].as_str() {
                        s.description = d.to_owned();
                    }
                    (StatusCode::OK, json!({"secret": secret_json(&name, s)}))
                }
                ("POST", ["versions"]) => {
                    let b: Value = serde_json::from_slice(body).unwrap();
                    let now = tick(&mut st.clock);
                    let id = format!("v{}", s.versions.len() + 1);
                    s.versions.push((
                        id.clone(),
                        now,
                        b["secret_string"].as_str().unwrap().to_owned(),
                    ));
                    if let Some(old) = s.stages.insert("SYSCURRENT".into(), id.clone()) {
                        s.stages.insert("SYSPREVIOUS".into(), old);
                    }
                    // Less than the SDK model: no create_time, stages or key.
                    (
                        StatusCode::OK,
                        json!({"version_metadata": {"id": id, "secret_name": name}}),
                    )
                }
                ("GET", ["versions"]) => {
                    let list: Vec<Value> = s
                        .versions
                        .iter()
                        .rev()
                        .map(|(id, t, _)| {
                            let stages: Vec<&String> = s.stages.iter().filter(|(_, v)| *v == id).map(|(k, _)| k).collect();
                            json!({"id": id, "create_time": t, "secret_name": name, "version_stages": stages})
                        })
                        .collect();
                    let n = list.len();
                    (
                        StatusCode::OK,
                        json!({"version_metadatas": list, "page_info": {"current_count": n}}),
                    )
                }
                ("GET", ["versions", id]) => {
                    let found = if *id == "latest" {
                        s.versions.last()
                    } else {
                        s.versions.iter().find(|v| v.0 == *id)
                    };
                    match found {
                        None => flat(
                            StatusCode::BAD_REQUEST,
                            "CSMS.0005",
                            "The resource does not exist.",
                        ),
                        Some((id, t, value)) => {
                            let stages: Vec<&String> = s
                                .stages
                                .iter()
                                .filter(|(_, v)| *v == id)
                                .map(|(k, _)| k)
                                .collect();
                            let mut md = json!({"id": id, "secret_name": name, "version_stages": stages, "kms_key_id": "k"});
                            if !st.thin_versions {
                                md["create_time"] = json!(t);
                            }
                            (
                                StatusCode::OK,
                                json!({"version": {"version_metadata": md, "secret_string": value}}),
                            )
                        }
                    }
                }
                ("GET", ["stages", stage]) => match s.stages.get(*stage) {
                    None => flat(
                        StatusCode::BAD_REQUEST,
                        "CSMS.0005",
                        "The resource does not exist.",
                    ),
                    Some(v) => (
                        StatusCode::OK,
                        json!({"stage": {"name": stage, "update_time": 1_581_507_580_000i64, "secret_name": name, "version_id": v}}),
                    ),
                },
                ("POST", ["rotate"]) => {
                    if s.secret_type == "COMMON" {
                        return nested(
                            StatusCode::BAD_REQUEST,
                            "CSMS.0002",
                            "COMMON secrets cannot be rotated.",
                        );
                    }
                    let id = uuid::Uuid::new_v4().to_string();
                    let fails = std::mem::take(&mut st.fail_next);
                    // Processing for a while, in a status no client knows first.
                    let end = if fails { "FAILED" } else { "SUCCESS" };
                    st.tasks.push(TaskRec {
                        id: id.clone(),
                        secret: name,
                        time: jiff::Timestamp::now().as_millisecond(),
                        ahead: VecDeque::from(["WAITING", "PROCESSING", "PROCESSING", end]),
                        status: "PROCESSING",
                        fails,
                        polls: 0,
                    });
                    if st.rotate_answers_nothing {
                        (StatusCode::OK, json!({}))
                    } else {
                        // RotateSecret's documented example answer, exactly.
                        (StatusCode::OK, json!({"rotation_task_id": id}))
                    }
                }
                _ => flat(
                    StatusCode::BAD_REQUEST,
                    "CSMS.0003",
                    "The request URL is invalid.",
                ),
            }
        }
        _ => flat(
            StatusCode::BAD_REQUEST,
            "CSMS.0003",
            "The request URL is invalid.",
        ),
    }
}

/// Checks the AK/SK signature over the request as it arrived (the raw path, the raw query).
fn verify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(auth) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| signer::parse_authorization(v).ok())
    else {
        return false;
    };
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let date = get("x-sdk-date").unwrap_or_default();
    let cr = signer::canonical_request(
        method.as_str(),
        uri.path(),
        uri.query(),
        &auth.signed_headers,
        get,
        body,
    );
    auth.access == AK
        && auth.signed_headers.iter().any(|h| h == "host")
        && signer::sign(SK.as_bytes(), date, &cr) == auth.signature
}

async fn serve_documented(state: Shared) -> String {
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let mut st = state.lock().unwrap();
                st.requests.push(match uri.query() {
                    Some(q) => format!("{method} {}?{q}", uri.path()),
                    None => format!("{method} {}", uri.path()),
                });
                if !verify(&method, &uri, &headers, &body) {
                    let (s, b) = flat(
                        StatusCode::UNAUTHORIZED,
                        "APIGW.0301",
                        "Incorrect IAM authentication information: verify aksk signature fail",
                    );
                    return (s, axum::Json(b));
                }
                let decoded: Vec<String> = uri
                    .path()
                    .split('/')
                    .map(|s| {
                        percent_encoding::percent_decode_str(s)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .collect();
                // "", "v1", project, ...
                if decoded.get(1).map(String::as_str) != Some("v1")
                    || decoded.get(2).map(String::as_str) != Some(PROJECT)
                {
                    let (s, b) = flat(
                        StatusCode::BAD_REQUEST,
                        "CSMS.0003",
                        "The request URL is invalid.",
                    );
                    return (s, axum::Json(b));
                }
                let query: BTreeMap<String, String> = uri
                    .query()
                    .map(|q| {
                        q.split('&')
                            .filter_map(|p| p.split_once('='))
                            .map(|(k, v)| {
                                (
                                    k.to_owned(),
                                    percent_encoding::percent_decode_str(v)
                                        .decode_utf8_lossy()
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let (s, b) = handle(&mut st, &method, &decoded[3..], &query, &body);
                (s, axum::Json(b))
            }
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    url
}

fn csms_client(url: &str) -> CsmsStore {
    CsmsStore::new(
        url,
        CsmsAuth::AkSk(AccessKey {
            ak: AK.into(),
            sk: Zeroizing::new(SK.into()),
        }),
        csms_support::fast_opts(),
        None,
    )
    .unwrap()
}

fn password(v: &Version) -> String {
    DatabaseCredential::from_value(&v.value)
        .unwrap()
        .password
        .clone()
}

#[tokio::test]
async fn a_full_rotation_cycle_against_the_documented_answers() {
    let state: Shared = Arc::default();
    let url = serve_documented(state.clone()).await;
    let c = csms_client(&url);
    let s: &dyn Store = &c;

    // Create a database secret; read its SYSCURRENT.
    let created = s
        .create_secret(
            PROJECT,
            CreateSecret {
                name: DB.into(),
                secret_type: Some("RDS-FG".into()),
                secret_string: Some(SecretValue::from_str_value(
                    r#"{"username":"app","password":"initial"}"#,
                )),
                rotation_config: Some(
                    r#"{"InstanceId":"rds-1","SecretSubType":"SingleUser"}"#.into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (created.name.as_str(), created.secret_type.as_str()),
        (DB, "RDS-FG")
    );
    let v1 = s
        .show_version_by_stage(PROJECT, DB, SYSCURRENT)
        .await
        .unwrap();
    assert_eq!(v1.version_metadata.id, "v1");
    assert_eq!(password(&v1), "initial");

    // Rotate: the answer is {"rotation_task_id"} alone; the task is WAITING (a status the client does not
    // know), then PROCESSING, then SUCCESS. The result names the version the task made current.
    let r = s
        .rotate(PROJECT, DB, RotateOptions::default())
        .await
        .unwrap();
    let task = state.lock().unwrap().tasks[0].id.clone();
    assert_eq!(
        (
            r.version_id.as_str(),
            r.secret_name.as_str(),
            r.rotation_task_id.as_str()
        ),
        ("v2", DB, task.as_str())
    );
    assert_eq!(
        state.lock().unwrap().tasks[0].polls,
        4,
        "polled until SUCCESS"
    );
    let v2 = s
        .show_version_by_stage(PROJECT, DB, SYSCURRENT)
        .await
        .unwrap();
    assert_eq!(v2.version_metadata.id, "v2");
    assert_eq!(password(&v2), "rotated-2");
    assert!(v2.version_metadata.create_time > v1.version_metadata.create_time);
    let prev = s.show_stage(PROJECT, DB, SYSPREVIOUS).await.unwrap();
    assert_eq!(
        (prev.version_id.as_str(), prev.secret_name.as_str()),
        ("v1", DB)
    );

    // The task list has page_info and no total; the client counts.
    let page = s
        .list_tasks(
            PROJECT,
            TaskFilter {
                secret_name: Some(DB.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.tasks[0].task_id, task);
    assert_eq!(page.tasks[0].task_status, TaskStatus::Success);

    // An answer that names no task at all: the client finds the secret's task started by its call.
    state.lock().unwrap().rotate_answers_nothing = true;
    let r = s
        .rotate(PROJECT, DB, RotateOptions::default())
        .await
        .unwrap();
    let task = state.lock().unwrap().tasks[1].id.clone();
    assert_eq!(
        (r.version_id.as_str(), r.rotation_task_id.as_str()),
        ("v3", task.as_str())
    );
    state.lock().unwrap().rotate_answers_nothing = false;

    // A rotation task that ends FAILED is the store's RotationFailed, with the task's code; SYSCURRENT
    // stays.
    state.lock().unwrap().fail_next = true;
    let e = s
        .rotate(PROJECT, DB, RotateOptions::default())
        .await
        .unwrap_err();
    match &e {
        StoreError::RotationFailed {
            name,
            code,
            task_id,
            ..
        } => {
            assert_eq!((name.as_str(), code.as_str()), (DB, "RDS.0500"));
            assert_eq!(*task_id, state.lock().unwrap().tasks[2].id);
            assert!(state.lock().unwrap().tasks[2].fails);
        }
        other => panic!("expected RotationFailed, got {other:?}"),
    }
    let current = s
        .show_version_by_stage(PROJECT, DB, SYSCURRENT)
        .await
        .unwrap();
    assert_eq!(current.version_metadata.id, "v3");

    // "Not found", answered 400 with CSMS.0106 (flat body) or CSMS.0005, or 404 (nested): all are
    // NotFound, which the operator reads as "no such secret".
    for e in [
        s.show_secret(PROJECT, "no-such_secret.x")
            .await
            .unwrap_err(),
        s.show_version_by_stage(PROJECT, "no-such_secret.x", SYSCURRENT)
            .await
            .unwrap_err(),
        s.rotate(PROJECT, "no-such_secret.x", RotateOptions::default())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&e, StoreError::NotFound { kind: "secret", name } if name == "no-such_secret.x"),
            "{e:?}"
        );
        assert_eq!((e.status(), e.code()), (404, codes::NOT_FOUND));
    }
    let e = s.show_version(PROJECT, DB, "v9").await.unwrap_err();
    assert!(
        matches!(
            &e,
            StoreError::NotFound {
                kind: "version",
                ..
            }
        ),
        "{e:?}"
    );
    let e = s.show_stage(PROJECT, DB, SYSPENDING).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound { kind: "stage", .. }),
        "{e:?}"
    );

    // A COMMON secret with answers thinner than the SDK models: CreateSecretVersion names the version
    // only, ShowSecretVersion leaves out its creation time, which the client reads back from the list.
    state.lock().unwrap().thin_versions = true;
    s.create_secret(
        PROJECT,
        CreateSecret {
            name: COMMON.into(),
            secret_string: Some(SecretValue::from_str_value("first")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let md = s
        .create_version(
            PROJECT,
            COMMON,
            CreateVersion {
                secret_string: Some(SecretValue::from_str_value("second")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((md.id.as_str(), md.secret_name.as_str()), ("v2", COMMON));
    let v = s
        .show_version_by_stage(PROJECT, COMMON, SYSCURRENT)
        .await
        .unwrap();
    assert_eq!(v.version_metadata.id, "v2");
    assert_eq!(v.value.expose(), b"second");
    let listed = s.list_versions(PROJECT, COMMON, None, None).await.unwrap();
    assert_eq!(
        v.version_metadata.create_time,
        listed.version_metadatas[0].create_time
    );
    assert!(v.version_metadata.create_time > 0);
    let latest = s.show_version(PROJECT, COMMON, LATEST).await.unwrap();
    assert_eq!(latest.version_metadata.id, "v2");
    assert_eq!(
        latest.version_metadata.create_time,
        v.version_metadata.create_time
    );
    let e = s
        .rotate(PROJECT, COMMON, RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "CSMS.0002"), "{e}");

    // The secret is scheduled for deletion: CSMS.0103 (flat, reading) and CSMS.0107 (nested, rotating)
    // are the store's PendingDeletion, code CSMS.0107.
    state
        .lock()
        .unwrap()
        .secrets
        .get_mut(DB)
        .unwrap()
        .pending_delete = true;
    let read = s
        .show_version_by_stage(PROJECT, DB, SYSCURRENT)
        .await
        .unwrap_err();
    let rotate = s
        .rotate(PROJECT, DB, RotateOptions::default())
        .await
        .unwrap_err();
    for e in [read, rotate] {
        assert_eq!(e, StoreError::PendingDeletion { name: DB.into() });
        assert_eq!((e.status(), e.code()), (400, "CSMS.0107"));
    }
    assert_eq!(
        s.show_secret(PROJECT, DB).await.unwrap().state,
        SecretState::PendingDelete
    );

    // Every request reached the service with the names as written (no %2D, %5F, %2E), the query sorted,
    // and a signature the service verified over that path (a refused one would have failed the calls).
    let requests = state.lock().unwrap().requests.clone();
    assert!(requests.len() > 20, "{requests:#?}");
    for r in &requests {
        assert!(!r.contains('%'), "an encoded unreserved character: {r}");
        assert!(r.contains(&format!("/v1/{PROJECT}/")), "{r}");
    }
    assert!(
        requests.contains(&format!("POST /v1/{PROJECT}/secrets/{DB}/rotate")),
        "{requests:#?}"
    );
    assert!(
        requests.contains(&format!(
            "GET /v1/{PROJECT}/csms/tasks?limit=10&secret_name={DB}"
        )),
        "{requests:#?}"
    );
}

/// The operator on the csms backend against the stand-in: a rotation on create through the documented
/// answers lands in the status and the synced Secret; a store secret pending deletion is
/// `Ready=False StoreSecretPendingDeletion` with an event; once the deletion is cancelled, rotations resume.
#[tokio::test]
async fn the_operator_rotates_through_the_documented_answers_and_reports_a_pending_deletion() {
    use crate::support::operator::*;
    use crate::support::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    let state: Shared = Arc::default();
    let url = serve_documented(state.clone()).await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "csms-docs").await;
    let store_name = format!("{}.orders-db", ns.name);
    // The csms backend never creates secrets: the database secret exists in CSMS first.
    csms_client(&url)
        .create_secret(
            PROJECT,
            CreateSecret {
                name: store_name.clone(),
                secret_type: Some("RDS-FG".into()),
                secret_string: Some(SecretValue::from_str_value(
                    r#"{"username":"app","password":"initial"}"#,
                )),
                rotation_config: Some(
                    r#"{"InstanceId":"rds-1","SecretSubType":"SingleUser"}"#.into(),
                ),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // rotateOnCreate rotates a value older than the resource, whose creation time has whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("csms-auth.yaml");
    let hmac = dir.path().join("hmac.key");
    std::fs::write(&auth, format!("access_key: {{ak: {AK}, sk: {SK}}}\n")).unwrap();
    std::fs::write(&hmac, [9u8; 32]).unwrap();
    for f in [&auth, &hmac] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = dir.path().join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["run", "--store", "csms", "--leader-election=false"])
        .args(["--csms-endpoint", &url])
        .arg("--csms-auth-file")
        .arg(&auth)
        .arg("--hmac-key-file")
        .arg(&hmac)
        .args(["--csms-project-id", PROJECT])
        .args(["--csms-timeout-secs", "5", "--csms-max-attempts", "2"])
        .args(["--namespace", &ns.name, "--metrics-addr", &metrics_addr])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        // As the other tests' operators: a rotate-now may follow the first rotation at once.
        .env("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1s")
        .env("RUST_LOG", "info,secret_rotator=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut op = Operator {
        child: Some(child),
        log,
        metrics_addr,
    };

    crate::support::db::local_server(&c, &ns.name, "orders-pg", "postgresql", 5432, None).await;
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: orders-db\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database: {serverRef: {name: orders-pg, kind: DatabaseServer}, username: app}\n",
    )
    .await;
    // rotateOnCreate: RotateSecret answers {"rotation_task_id"} alone, the task finishes later.
    let sr = wait_version(&c, &ns.name, "orders-db", "v2", 60).await;
    let task = state.lock().unwrap().tasks[0].id.clone();
    let st = sr.status.unwrap();
    assert_eq!(
        st.rotation_task_id.as_deref(),
        Some(task.as_str()),
        "{}",
        op.log_text()
    );
    let synced = eventually(30, "the synced Secret at v2", || async {
        get_secret(&c, &ns.name, "orders-db")
            .await
            .filter(|s| secret_text(s, "password") == "rotated-2")
    })
    .await;
    assert_eq!(secret_text(&synced, "username"), "app");
    wait_ready(&c, &ns.name, "orders-db", "True", "Synced", 30).await;

    // Scheduled for deletion in CSMS: reads answer CSMS.0103. A rotate-now wakes the operator.
    state
        .lock()
        .unwrap()
        .secrets
        .get_mut(&store_name)
        .unwrap()
        .pending_delete = true;
    annotate(
        &c,
        &ns.name,
        "orders-db",
        "secretrotator.dev/rotate-now",
        "1",
    )
    .await;
    let sr = wait_ready(
        &c,
        &ns.name,
        "orders-db",
        "False",
        "StoreSecretPendingDeletion",
        60,
    )
    .await;
    let ready = ready_condition(&sr);
    assert!(
        ready.message.contains(&store_name) && ready.message.contains("pending deletion"),
        "{}",
        ready.message
    );
    eventually(30, "a StoreSecretPendingDeletion event", || async {
        event_text(&c, &ns.name)
            .await
            .contains("StoreSecretPendingDeletion")
            .then_some(())
    })
    .await;
    // Nothing was rotated meanwhile; the synced Secret keeps v2.
    assert_eq!(state.lock().unwrap().tasks.len(), 1);
    let synced = get_secret(&c, &ns.name, "orders-db").await.unwrap();
    assert_eq!(secret_text(&synced, "password"), "rotated-2");

    // The deletion is cancelled: the next rotate-now rotates again.
    state
        .lock()
        .unwrap()
        .secrets
        .get_mut(&store_name)
        .unwrap()
        .pending_delete = false;
    annotate(
        &c,
        &ns.name,
        "orders-db",
        "secretrotator.dev/rotate-now",
        "2",
    )
    .await;
    wait_version(&c, &ns.name, "orders-db", "v3", 60).await;
    wait_ready(&c, &ns.name, "orders-db", "True", "Synced", 30).await;
    assert!(op.alive(), "the operator exited:\n{}", op.log_text());
    op.stop();
    // Every request kept the names as written: '-' and '.' are in the namespace and the store name.
    for r in &state.lock().unwrap().requests {
        assert!(!r.contains('%'), "an encoded unreserved character: {r}");
    }
}
