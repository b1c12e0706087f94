//! The official Huawei Cloud Python SDK (`huaweicloudsdkcsms`, AK/SK signing) against the real
//! `secret-rotator serve` binary over HTTP; and the `csms` client's requests compared byte for byte with
//! the SDK's.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn python() -> PathBuf {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/testenv"))
        .arg("venv")
        .output()
        .expect("scripts/testenv venv");
    let venv = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let py = venv.join("bin/python");
    assert!(
        py.is_file()
            && Command::new(&py)
                .args(["-c", "import huaweicloudsdkcsms"])
                .status()
                .is_ok_and(|s| s.success()),
        "the Huawei Cloud Python SDK is missing from {}: run `scripts/testenv install`",
        venv.display()
    );
    py
}

/// `serve` as a process on a free loopback port, with `args`; its stderr piped.
fn start_serve(
    dir: &std::path::Path,
    key: &std::path::Path,
    auth: &std::path::Path,
    store: &str,
    args: &[&str],
) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .arg("--store-path")
        .arg(dir.join(store))
        .arg("--master-key-file")
        .arg(key)
        .arg("--auth-file")
        .arg(auth)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting serve");
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(up, "serve did not start");
    (server, format!("http://127.0.0.1:{port}"))
}

fn stop(mut server: std::process::Child) -> String {
    let _ = server.kill();
    let _ = server.wait();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

const DB_USER: &str = "sdk_app";
const DB_PASSWORD: &str = "initial-pw-sdk-0123456789";

/// The official SDK's scenario (tests/sdk/interop.py) against the `serve` binary: every operation it
/// offers, a RotateSecret that changes a real PostgreSQL password through `--targets-file` (answered at
/// once, the task polled to SUCCESS), scheduled deletion and restore, and the error answers, one of them
/// from a second `serve` without a targets file. Afterwards the database is checked: the store's
/// SYSCURRENT password logs in, the initial one no longer does.
#[test]
fn the_official_python_sdk_works_against_serve() {
    let py = python();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = crate::support::db::Postgres::start();
    rt.block_on(pg.admin_sql(&format!(
        "CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'"
    )));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    std::fs::write(
        &key,
        secret_rotator_store::embedded::crypto::MasterKey::generate()
            .unwrap()
            .to_base64()
            .as_bytes(),
    )
    .unwrap();
    let auth = dir.path().join("auth.yaml");
    std::fs::write(&auth, "access_keys:\n- ak: SDKTESTAK\n  sk: sdk-test-secret-key-0123456789\n  projects: [sdkproject]\n").unwrap();
    let admin = dir.path().join("pg-admin.yaml");
    std::fs::write(
        &admin,
        format!(
            "username: admin\npassword: {}\n",
            crate::support::db::ADMIN_PASSWORD
        ),
    )
    .unwrap();
    for f in [&key, &auth, &admin] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let targets = dir.path().join("targets.yaml");
    std::fs::write(
        &targets,
        format!(
            "instances:\n  sdk-rds:\n    engine: postgresql\n    host: 127.0.0.1\n    port: {}\n    tls: {{mode: disable}}\n    admin_credentials_file: pg-admin.yaml\n    projects: [sdkproject]\n",
            pg.port
        ),
    )
    .unwrap();
    let targets_arg = targets.display().to_string();
    let (server, url) = start_serve(
        dir.path(),
        &key,
        &auth,
        "store.redb",
        &["--targets-file", &targets_arg],
    );
    let (bare, bare_url) = start_serve(dir.path(), &key, &auth, "bare.redb", &[]);
    let out = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/interop.py"))
        .env("CSMS_ENDPOINT", &url)
        .env("CSMS_ENDPOINT_NO_TARGETS", &bare_url)
        .env("CSMS_PROJECT", "sdkproject")
        .env("CSMS_AK", "SDKTESTAK")
        .env("CSMS_SK", "sdk-test-secret-key-0123456789")
        .env("CSMS_DB_INSTANCE", "sdk-rds")
        .env("CSMS_DB_USER", DB_USER)
        .env("CSMS_DB_PASSWORD", DB_PASSWORD)
        .output()
        .expect("running the SDK script");
    // The database: SYSCURRENT, read through the csms client, logs in; the initial password does not.
    let current = rt.block_on(async {
        use secret_rotator_store::Store;
        let client = secret_rotator_store::csms::CsmsStore::new(
            &url,
            secret_rotator_store::csms::CsmsAuth::AkSk(
                secret_rotator_store::csms::auth::AccessKey {
                    ak: "SDKTESTAK".into(),
                    sk: zeroize::Zeroizing::new("sdk-test-secret-key-0123456789".into()),
                },
            ),
            secret_rotator_store::csms::CsmsOptions::default(),
            None,
        )
        .unwrap();
        client
            .show_version_by_stage("sdkproject", "sdk-db", secret_rotator_store::SYSCURRENT)
            .await
            .ok()
            .and_then(|v| secret_rotator_store::DatabaseCredential::from_value(&v.value))
    });
    let log = stop(server);
    let bare_log = stop(bare);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("sdk interop: all steps passed"),
        "SDK script failed:\n{stdout}\n{}\nserver log:\n{log}\nserver without targets:\n{bare_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("ok: ").count(), 39, "{stdout}");
    let current = current.expect("the store's SYSCURRENT of sdk-db");
    assert_eq!(current.username, DB_USER);
    assert_ne!(current.password, DB_PASSWORD);
    assert!(
        rt.block_on(pg.login(DB_USER, &current.password)),
        "the rotated password does not log in to PostgreSQL"
    );
    assert!(
        !rt.block_on(pg.login(DB_USER, DB_PASSWORD)),
        "the initial password still logs in"
    );
    // Neither the secret key, the administrator's password nor the values reach the servers' logs.
    for needle in [
        "sdk-test-secret-key-0123456789",
        crate::support::db::ADMIN_PASSWORD,
        current.password.as_str(),
        DB_PASSWORD,
        "first-value",
        "second-value",
        "signed-value",
        "forged-value",
    ] {
        assert!(!log.contains(needle), "the server log contains {needle}");
        assert!(
            !bare_log.contains(needle),
            "the second server's log contains {needle}"
        );
    }
}

/// One request as the capturing listener received it.
#[derive(Clone, Debug)]
struct Captured {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn target(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn authorization(&self) -> secret_rotator_store::protocol::signer::Authorization {
        secret_rotator_store::protocol::signer::parse_authorization(
            self.header("authorization").unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", self.target()))
    }

    /// The headers the request signed, with their values.
    fn signed_headers(&self) -> Vec<(String, String)> {
        self.authorization()
            .signed_headers
            .iter()
            .map(|h| (h.clone(), self.header(h).unwrap_or_default().to_owned()))
            .collect()
    }
}

/// A listener that records every request and answers it with the smallest body both clients accept.
async fn capturing_listener(
    secret: &'static str,
    task: &'static str,
) -> (String, Arc<Mutex<Vec<Captured>>>) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let seen: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push(Captured {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    query: uri.query().unwrap_or_default().to_owned(),
                    headers: headers
                        .iter()
                        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect(),
                    body: body.to_vec(),
                });
                let path = uri.path();
                let metadata = serde_json::json!({"id": "v1", "create_time": 1_700_000_000_000i64, "secret_name": secret, "version_stages": ["SYSCURRENT"]});
                let answer = if path.ends_with("/rotate") {
                    serde_json::json!({"rotation_task_id": task})
                } else if path.ends_with("/csms/tasks") {
                    serde_json::json!({"total": 1, "tasks": [{"task_id": task, "secret_name": secret, "task_status": "SUCCESS",
                        "task_time": jiff::Timestamp::now().as_millisecond()}]})
                } else if path.contains("/stages/") {
                    serde_json::json!({"stage": {"name": "SYSCURRENT", "secret_name": secret, "version_id": "v1", "update_time": 1}})
                } else if path.ends_with("/versions") && method == Method::POST {
                    serde_json::json!({"version_metadata": metadata})
                } else if path.contains("/versions/") {
                    serde_json::json!({"version": {"version_metadata": metadata, "secret_string": "x"}})
                } else {
                    return (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({"error_code": "CSMS.0003", "error_msg": "no such path"})));
                };
                (StatusCode::OK, axum::Json(answer))
            }
        },
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

/// The Rust `csms` client and the official Python SDK send the same calls for a secret whose name holds
/// `-`, `_` and `.`, in a project whose id does too. Compared byte for byte: the request line (path and
/// query), and the signature — the SDK's signer signing the Rust client's request (its headers, date and
/// body) gives the Rust client's Authorization, and the Rust signer signing the Rust client's path with
/// the SDK's headers, date and body gives the SDK's.
#[tokio::test(flavor = "multi_thread")]
async fn the_client_sends_and_signs_paths_as_the_official_sdk_does() {
    use secret_rotator_core::secret_value::SecretValue;
    use secret_rotator_store::csms::auth::AccessKey;
    use secret_rotator_store::csms::{CsmsAuth, CsmsOptions, CsmsStore};
    use secret_rotator_store::protocol::signer;
    use secret_rotator_store::*;

    const SECRET: &str = "orders-db_v1.2";
    const PROJECT: &str = "proj-0a1b_2.c";
    const TASK: &str = "a71a4b47-6cac-4f11-92c1-21a165bb6401";
    const AK: &str = "SDKTESTAK";
    const SK: &str = "sdk-test-secret-key-0123456789";
    let py = python();
    let (url, seen) = capturing_listener(SECRET, TASK).await;

    // The Rust client's calls.
    let client = CsmsStore::new(
        &url,
        CsmsAuth::AkSk(AccessKey {
            ak: AK.into(),
            sk: zeroize::Zeroizing::new(SK.into()),
        }),
        CsmsOptions {
            max_attempts: 1,
            task_poll: Duration::from_millis(10),
            ..CsmsOptions::default()
        },
        None,
    )
    .unwrap();
    let rotated = client
        .rotate(PROJECT, SECRET, RotateOptions::default())
        .await
        .unwrap();
    assert_eq!(rotated.rotation_task_id, TASK);
    client
        .list_tasks(
            PROJECT,
            TaskFilter {
                secret_name: Some(SECRET.into()),
                limit: Some(10),
                ..TaskFilter::default()
            },
        )
        .await
        .unwrap();
    client.show_version(PROJECT, SECRET, "v1").await.unwrap();
    client
        .create_version(
            PROJECT,
            SECRET,
            CreateVersion {
                secret_string: Some(SecretValue::from_str_value("rust-capture-value")),
                ..CreateVersion::default()
            },
        )
        .await
        .unwrap();
    let rust: Vec<Captured> = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        rust.iter().all(|r| r
            .header("user-agent")
            .is_some_and(|u| u.starts_with("secret-rotator/"))),
        "{rust:#?}"
    );

    // The SDK's calls; then the SDK's signer over the Rust client's requests.
    let dir = tempfile::tempdir().unwrap();
    let rust_file = dir.path().join("rust.json");
    let listed: Vec<serde_json::Value> = rust
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method, "path": r.path, "query": r.query,
                "signed_headers": r.signed_headers().into_iter().map(|(n, v)| (n, serde_json::Value::String(v))).collect::<serde_json::Map<String, serde_json::Value>>(),
                "body": String::from_utf8(r.body.clone()).unwrap(),
            })
        })
        .collect();
    std::fs::write(&rust_file, serde_json::to_vec(&listed).unwrap()).unwrap();
    let out = tokio::process::Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/capture.py"))
        .env("CSMS_ENDPOINT", &url)
        .env("CSMS_PROJECT", PROJECT)
        .env("CSMS_SECRET", SECRET)
        .env("CSMS_AK", AK)
        .env("CSMS_SK", SK)
        .env("RUST_REQUESTS", &rust_file)
        .output()
        .await
        .expect("running the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: Vec<Captured> = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(sdk.len(), 4, "{sdk:#?}");
    assert!(
        sdk.iter().all(|r| r
            .header("user-agent")
            .is_some_and(|u| u.contains("huaweicloud-usdk-python"))),
        "{sdk:#?}"
    );

    // 1. The request lines, byte for byte; '-', '_' and '.' travel as they are.
    let expected = [
        format!("POST /v1/{PROJECT}/secrets/{SECRET}/rotate"),
        format!("GET /v1/{PROJECT}/csms/tasks?limit=10&secret_name={SECRET}"),
        format!("GET /v1/{PROJECT}/secrets/{SECRET}/versions/v1"),
        format!("POST /v1/{PROJECT}/secrets/{SECRET}/versions"),
    ];
    let sdk_targets: Vec<String> = sdk.iter().map(Captured::target).collect();
    assert_eq!(sdk_targets, expected, "what the SDK sends");
    let rust_targets: Vec<String> = rust.iter().map(Captured::target).collect();
    let pairs: Vec<(&Captured, &Captured)> = sdk
        .iter()
        .map(|s| {
            let r = rust
                .iter()
                .find(|r| r.target() == s.target())
                .unwrap_or_else(|| {
                    panic!(
                        "the Rust client never sent {} (it sent {rust_targets:#?})",
                        s.target()
                    )
                });
            (s, r)
        })
        .collect();

    // 2. The SDK's signer gives the Rust client's own Authorization for every request it sent.
    #[derive(serde::Deserialize)]
    struct SdkOut {
        rust_signed_by_sdk: Vec<String>,
    }
    let sdk_out: SdkOut = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(sdk_out.rust_signed_by_sdk.len(), rust.len());
    for (r, by_sdk) in rust.iter().zip(&sdk_out.rust_signed_by_sdk) {
        assert_eq!(
            r.header("authorization").unwrap_or_default(),
            by_sdk,
            "{}",
            r.target()
        );
    }

    // 3. The Rust signer over the Rust client's path and query, with the SDK's headers, date and body,
    //    gives the SDK's Authorization.
    for (s, r) in pairs {
        let headers = s.signed_headers();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let ours = signer::sign_request(
            AK,
            SK.as_bytes(),
            &signer::Request {
                method: &r.method,
                path: &r.path,
                query: (!r.query.is_empty()).then_some(r.query.as_str()),
                headers: &headers,
                body: &s.body,
            },
        );
        assert_eq!(
            ours,
            s.header("authorization").unwrap_or_default(),
            "{}",
            s.target()
        );
    }
}
