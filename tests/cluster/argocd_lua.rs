//! The Argo CD health check and the `rotate-now` resource action from the README, run by a Lua 5.1
//! interpreter (Argo CD's dialect; Debian's `lua5.1`) against status objects the operator really wrote.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::operator::*;
use crate::support::{TestNamespace, client, install_crd, repo_root};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use secret_rotator::api::SecretRotation;

/// The argocd-cm entries of the README's GitOps section: (health.lua, discovery.lua, action.lua).
fn readme_lua() -> (String, String, String) {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let key = "resource.customizations.health.secretrotator.dev_SecretRotation";
    let start = readme
        .find(&format!("```yaml\n{key}"))
        .expect("the README's Argo CD block");
    let body = &readme[start + "```yaml\n".len()..];
    let body = &body[..body.find("```").expect("the block ends")];
    let cm: serde_json::Value = serde_saphyr::from_str(body).expect("the block is YAML");
    let health = cm[key].as_str().expect("the health check").to_owned();
    let actions: serde_json::Value = serde_saphyr::from_str(
        cm["resource.customizations.actions.secretrotator.dev_SecretRotation"]
            .as_str()
            .expect("the actions entry"),
    )
    .expect("the actions entry is YAML");
    let discovery = actions["discovery.lua"]
        .as_str()
        .expect("discovery.lua")
        .to_owned();
    let action = actions["definitions"]
        .as_array()
        .expect("definitions")
        .iter()
        .find(|d| d["name"] == "rotate-now")
        .expect("the rotate-now definition")["action.lua"]
        .as_str()
        .expect("action.lua")
        .to_owned();
    (health, discovery, action)
}

/// A Lua table constructor for a JSON value, as Argo CD hands objects to Lua (null fields absent).
fn lua_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "nil".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => lua_string(s),
        serde_json::Value::Array(a) => {
            format!(
                "{{{}}}",
                a.iter().map(lua_value).collect::<Vec<_>>().join(", ")
            )
        }
        serde_json::Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b}")),
        }
    }
    out.push('"');
    out
}

/// Runs a Lua 5.1 program and returns its output.
fn lua(program: &str) -> String {
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 is missing: run `scripts/testenv install` (Debian package lua5.1)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(program.as_bytes())
        .expect("writing the program");
    let out = child.wait_with_output().expect("lua5.1 output");
    assert!(
        out.status.success(),
        "lua5.1 failed:\n{}\n--- program\n{program}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The health status and message the README's check gives an object.
fn health(check: &str, obj: &serde_json::Value) -> (String, String) {
    let out = lua(&format!(
        "local obj = {}\nlocal function check(obj)\n{check}\nend\nlocal hs = check(obj)\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_value(obj)
    ));
    let (status, message) = out.split_once('\n').unwrap_or((&out, ""));
    (status.to_owned(), message.to_owned())
}

async fn object(c: &kube::Client, ns: &str, name: &str) -> serde_json::Value {
    let sr = Api::<SecretRotation>::namespaced(c.clone(), ns)
        .get(name)
        .await
        .expect("the resource");
    serde_json::to_value(&sr).expect("as JSON")
}

fn ready_reason(obj: &serde_json::Value) -> String {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_readme_health_check_and_rotate_now_action_on_real_objects() {
    let (check, discovery, action) = readme_lua();
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "argocd").await;
    let n = ns.name.as_str();

    // Progressing: a resource the operator has not seen yet (no status).
    apply_sr(
        &c,
        n,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n",
    )
    .await;
    let fresh = object(&c, n, "api").await;
    assert!(fresh["status"].is_null(), "{fresh}");
    assert_eq!(health(&check, &fresh).0, "Progressing");

    // Three more: invalid, failing (a database that refuses connections), and the operator on them.
    apply_sr(
        &c,
        n,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: bad-spec\nspec:\n  rotation: {period: 1d, schedule: '0 3 * * *'}\n",
    )
    .await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("addr")
        .port();
    let admin: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
        "stringData": {"username": "postgres", "password": "not-used-for-anything"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(c.clone(), n)
        .create(&PostParams::default(), &admin)
        .await
        .expect("creating the admin Secret");
    crate::support::db::local_server(
        &c,
        n,
        "pg-closed",
        "postgresql",
        closed_port,
        Some("db-admin"),
    )
    .await;
    apply_sr(
        &c,
        n,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: db\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database:\n    serverRef: {name: pg-closed, kind: DatabaseServer}\n    username: app\n",
    )
    .await;
    let files = OperatorFiles::new();
    let mut op = start_in(&files, n, &[]);

    wait_ready(&c, n, "api", "True", "Synced", 60).await;
    let ready = object(&c, n, "api").await;
    assert_eq!(health(&check, &ready).0, "Healthy", "{}", ready["status"]);

    wait_ready(&c, n, "bad-spec", "False", "InvalidSpec", 60).await;
    let invalid = object(&c, n, "bad-spec").await;
    let (status, message) = health(&check, &invalid);
    assert_eq!(status, "Degraded", "{}", invalid["status"]);
    assert!(message.contains("spec.rotation"), "{message}");

    wait_ready(&c, n, "db", "False", "RotationFailed", 90).await;
    let failed = object(&c, n, "db").await;
    assert_eq!(ready_reason(&failed), "RotationFailed");
    assert_eq!(
        health(&check, &failed).0,
        "Degraded",
        "{}",
        failed["status"]
    );

    // A stale observedGeneration: the spec changed while the operator was away.
    op.stop();
    kubectl_patch_period(n, "api", "60d");
    let stale = object(&c, n, "api").await;
    assert_ne!(
        stale["status"]["observedGeneration"], stale["metadata"]["generation"],
        "{stale}"
    );
    assert_eq!(health(&check, &stale).0, "Progressing");

    // The rotate-now action: offered, and its result asks the operator for one rotation.
    let offered = lua(&format!(
        "local obj = {}\nlocal function discover(obj)\n{discovery}\nend\nlocal a = discover(obj)\nfor name, d in pairs(a) do io.write(name, \" \", tostring(d.disabled == true), \"\\n\") end\n",
        lua_value(&stale)
    ));
    assert!(
        offered.lines().any(|l| l == "rotate-now false"),
        "{offered}"
    );
    let annotated = lua(&format!(
        "local obj = {}\nlocal function act(obj)\n{action}\nend\nlocal r = act(obj)\nio.write(r.metadata.annotations[\"secretrotator.dev/rotate-now\"], \"\\n\", r.spec.rotation.period, \"\\n\", r.metadata.name)\n",
        lua_value(&stale)
    ));
    let lines: Vec<&str> = annotated.lines().collect();
    assert_eq!(lines.len(), 3, "{annotated}");
    assert!(!lines[0].is_empty(), "the action sets the annotation");
    assert_eq!(lines[1], "60d", "the action leaves the spec alone");
    assert_eq!(lines[2], "api");
    // What Argo CD then applies, and the operator's answer: one rotation.
    let mut op = start_in(&files, n, &[]);
    wait_ready(&c, n, "api", "True", "Synced", 60).await;
    annotate(&c, n, "api", "secretrotator.dev/rotate-now", lines[0]).await;
    wait_version(&c, n, "api", "v2", 60).await;
    let rotated = object(&c, n, "api").await;
    assert_eq!(health(&check, &rotated).0, "Healthy");
    op.stop();
}

fn kubectl_patch_period(ns: &str, name: &str, period: &str) {
    crate::support::kubectl_ok(&[
        "patch",
        "srot",
        name,
        "-n",
        ns,
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"spec":{{"rotation":{{"period":"{period}"}}}}}}"#),
    ]);
}
