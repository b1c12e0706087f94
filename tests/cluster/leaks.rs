//! One leak pass: exercise every path that handles a value — COMMON generation and rotate-now,
//! a PostgreSQL rotation through an administrator, a failing rotation (wrong administrator password, so a
//! pending value exists), and the CSMS API of `serve` (create, new version, show, generate-password) —
//! then collect every value (each version of each secret in both stores, the administrator's password,
//! what was sent to and answered by `serve`) and search every place one must never appear: the
//! operator's log and `serve`'s log at debug level, the kube-apiserver's log and audit log, all events, all
//! statuses, the metrics, and the raw bytes of both store files. Expected: zero hits. To show the search
//! can fail, the synced Secret (where values belong) must contain them.

use std::process::Stdio;

use crate::support::db::{ADMIN_PASSWORD, Postgres, local_server};
use crate::support::operator::*;
use crate::support::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use secret_rotator::api::SecretRotation;
use secret_rotator_store::Store;
use secret_rotator_store::embedded::EmbeddedStore;
use secret_rotator_store::embedded::crypto::MasterKey;

const PROJECT: &str = "default";

/// Every value in a store: each version of each secret.
async fn all_values(store: &EmbeddedStore, project: &str) -> Vec<String> {
    let mut out = Vec::new();
    let secrets = store
        .list_secrets(project, Some(200), None)
        .await
        .expect("listing secrets");
    for s in secrets.secrets {
        let page = store
            .list_versions(project, &s.name, Some(200), None)
            .await
            .unwrap();
        for v in page.version_metadatas {
            let full = store.show_version(project, &s.name, &v.id).await.unwrap();
            out.push(String::from_utf8_lossy(full.value.expose()).into_owned());
        }
    }
    out
}

/// The values worth searching for: a database credential's password, else the whole value.
fn needles(values: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for v in values {
        match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j) if j.get("password").is_some() => {
                let pw = j["password"].as_str().unwrap_or_default();
                if !pw.is_empty() {
                    out.push(pw.to_owned());
                }
            }
            _ => out.push(v.clone()),
        }
    }
    // And as they would appear base64-encoded (in a Secret, or a dumped object).
    let encoded: Vec<String> = out
        .iter()
        .map(|v| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v.as_bytes()))
        .collect();
    out.extend(encoded);
    out.sort();
    out.dedup();
    out
}

fn admin_secret(name: &str, password: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "stringData": {"username": "admin", "password": password}
    }))
    .unwrap()
}

fn pg_sr(name: &str, port: u16, user: &str, admin: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  secretType: RDS-FG\n  rotation: {{period: 30d}}\n  database:\n    serverRef: {{name: pg-{admin}-{port}, kind: DatabaseServer}}\n    username: {user}\n"
    )
}

#[tokio::test]
async fn no_value_escapes_anywhere() {
    let pg = Postgres::start();
    pg.admin_sql("CREATE ROLE app LOGIN PASSWORD 'initial-app-pw-1234'")
        .await;
    pg.admin_sql("CREATE ROLE other LOGIN PASSWORD 'initial-other-pw-1234'")
        .await;
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "leaks").await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns.name);
    let wrong_admin = format!("wrong-admin-{:016x}", rand::random::<u64>());
    for (name, pw) in [
        ("db-admin", ADMIN_PASSWORD),
        ("bad-admin", wrong_admin.as_str()),
    ] {
        secrets
            .create(&PostParams::default(), &admin_secret(name, pw))
            .await
            .unwrap();
        let server = format!("pg-{name}-{}", pg.port);
        local_server(&c, &ns.name, &server, "postgresql", pg.port, Some(name)).await;
    }
    let files = OperatorFiles::new();
    let mut op = start_in(&files, &ns.name, &[("RUST_LOG", "debug")]);

    // The CSMS API, on a store of its own, logging at debug level.
    let dir = serve_dir("leak-token-0123456789abcdef", "p1");
    let serve_log = dir.path().join("serve.log");
    let (mut serve, port) = serve_command(dir.path());
    let mut serve = serve
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&serve_log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/v1/p1");
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut rq = http
            .request(method, format!("{base}{path}"))
            .header("X-Auth-Token", "leak-token-0123456789abcdef");
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        rq.send()
    };
    let mut sent = Vec::new();
    let mut answered = String::new();
    eventually(10, "serve listening", || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .await;
    let v1 = format!("serve-value-one-{:016x}", rand::random::<u64>());
    let v2 = format!("serve-value-two-{:016x}", rand::random::<u64>());
    sent.extend([v1.clone(), v2.clone()]);
    for (m, path, body) in [
        (
            reqwest::Method::POST,
            "/secrets",
            Some(serde_json::json!({"name": "api", "secret_string": v1})),
        ),
        (
            reqwest::Method::POST,
            "/secrets/api/versions",
            Some(serde_json::json!({"secret_string": v2})),
        ),
        (reqwest::Method::GET, "/secrets/api/versions/v1", None),
        (reqwest::Method::GET, "/secrets/api/versions/latest", None),
        (reqwest::Method::POST, "/secrets/api/rotate", None),
        (
            reqwest::Method::POST,
            "/csms/generate-password",
            Some(serde_json::json!({})),
        ),
        // A malformed body that holds a value: the error must not echo it.
        (
            reqwest::Method::POST,
            "/secrets/api/versions",
            Some(serde_json::json!({"secret_string": v1, "version_stages": "not-a-list"})),
        ),
    ] {
        let r = call(m, path, body).await.unwrap();
        answered.push_str(&r.text().await.unwrap());
        answered.push('\n');
    }
    assert!(
        answered.contains(&v2),
        "serve answered the value it holds: {answered}"
    );
    let generated: serde_json::Value = answered
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|j| j.get("password").is_some())
        .expect("a generated password");
    sent.push(generated["password"].as_str().unwrap().to_owned());

    // The operator's paths.
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n  target: {template: {token: 'Bearer {{ value }}'}}\n",
    )
    .await;
    apply_sr(&c, &ns.name, &pg_sr("app-db", pg.port, "app", "db-admin")).await;
    apply_sr(
        &c,
        &ns.name,
        &pg_sr("broken-db", pg.port, "other", "bad-admin"),
    )
    .await;
    wait_ready(&c, &ns.name, "api", "True", "Synced", 30).await;
    wait_ready(&c, &ns.name, "app-db", "True", "Synced", 60).await;
    wait_ready(&c, &ns.name, "broken-db", "False", "RotationFailed", 60).await;
    for name in ["api", "app-db"] {
        annotate(
            &c,
            &ns.name,
            name,
            "secretrotator.dev/rotate-now",
            "leak-pass",
        )
        .await;
    }
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    wait_version(&c, &ns.name, "app-db", "v3", 60).await;

    // What may hold values only where they belong, and where they must never be.
    let metrics = op.metrics_text().await;
    let events = event_text(&c, &ns.name).await;
    let statuses = serde_json::to_string(
        &Api::<SecretRotation>::namespaced(c.clone(), &ns.name)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|s| (&s.metadata.name, &s.status))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let synced = get_secret(&c, &ns.name, "app-db").await.unwrap();
    let synced_password = secret_text(&synced, "password");
    op.stop();
    let _ = serve.kill();
    let _ = serve.wait();

    let operator_store = files.open_store();
    let mut values = all_values(&operator_store, PROJECT).await;
    drop(operator_store);
    let serve_store = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        MasterKey::from_file(&dir.path().join("master.key")).unwrap(),
        Default::default(),
    )
    .unwrap();
    values.extend(all_values(&serve_store, "p1").await);
    drop(serve_store);
    values.extend(sent);
    values.push(ADMIN_PASSWORD.to_owned());
    values.push(wrong_admin.clone());
    let needles = needles(&values);
    // app-db: v1 (unknown) then v2, v3; broken-db's pending value; api v1, v2; serve's three; admins.
    assert!(
        needles.len() >= 9,
        "too few values collected: {}",
        needles.len()
    );
    assert!(
        needles.contains(&synced_password),
        "the collection misses the synced password"
    );

    let state = control_plane()
        .kubeconfig
        .parent()
        .expect("the kubeconfig's directory")
        .to_path_buf();
    let read = |p: std::path::PathBuf| -> Vec<u8> {
        std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the control plane's files are needed for the leak pass)",
                p.display()
            )
        })
    };
    let haystacks: Vec<(&str, Vec<u8>)> = vec![
        ("operator log", read(op.log.clone())),
        ("serve log", read(serve_log.clone())),
        ("kube-apiserver log", read(state.join("kube-apiserver.log"))),
        ("kube-apiserver audit log", read(state.join("audit.log"))),
        ("events", events.into_bytes()),
        ("statuses", statuses.into_bytes()),
        ("metrics", metrics.into_bytes()),
        ("operator store file", read(files.store())),
        ("serve store file", read(dir.path().join("store.redb"))),
    ];
    let op_log = String::from_utf8_lossy(&haystacks[0].1).into_owned();
    assert!(
        op_log.contains("DEBUG") && op_log.contains("rotating"),
        "the operator log was not captured at debug level"
    );
    assert!(
        String::from_utf8_lossy(&haystacks[1].1).contains("DEBUG"),
        "the serve log was not captured at debug level"
    );
    let mut hits = Vec::new();
    for n in &needles {
        for (what, hay) in &haystacks {
            if hay.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push(format!("a value of {} bytes in the {what}", n.len()));
            }
        }
    }
    assert!(hits.is_empty(), "leaks:\n{}", hits.join("\n"));
    // The search can fail: the synced Secret, where the value belongs, holds it.
    let synced_json = serde_json::to_vec(&synced).unwrap();
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        synced_password.as_bytes(),
    );
    assert!(
        synced_json
            .windows(encoded.len())
            .any(|w| w == encoded.as_bytes())
    );
    eprintln!(
        "leak pass: {} values searched in {} places ({} bytes), 0 hits",
        needles.len(),
        haystacks.len(),
        haystacks.iter().map(|h| h.1.len()).sum::<usize>()
    );
}
