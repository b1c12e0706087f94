//! The CRD on a real kube-apiserver: it installs, `kubectl explain` reads its descriptions, the examples
//! are accepted, invalid manifests are refused with a message naming the field, and the status
//! subresource takes server-side apply.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::{TestNamespace, client, control_plane, install_crd, kubectl_ok, tool};
use kube::api::{Api, Patch, PatchParams, PostParams};
use secret_rotator::api::{SecretRotation, SecretRotationSpec};

#[test]
fn committed_crd_matches_the_generator() {
    let generated = secret_rotator::crdgen::crd_yaml().expect("rendering the CRD");
    let path = crate::support::repo_root().join(secret_rotator::crdgen::CRD_PATH);
    let committed = std::fs::read_to_string(&path).expect("reading the committed CRD");
    assert!(
        committed == generated,
        "{} differs from `secret-rotator crd`: run scripts/gen and commit the result",
        path.display()
    );
}

#[tokio::test]
async fn kubectl_apply_and_explain() {
    let c = client().await;
    // `kubectl apply -f crds/` as a user would (idempotent with install_crd).
    let crds = crate::support::repo_root().join("crds");
    kubectl_ok(&["apply", "-f", crds.to_str().unwrap()]);
    install_crd(&c).await;
    // The published OpenAPI lags the CRD's establishment by a moment.
    let mut out = String::new();
    for _ in 0..50 {
        let o = crate::support::kubectl(&["explain", "secretrotation.spec.rotation"]);
        out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && out.contains("period") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(out.contains("period\t<string>"), "explain output:\n{out}");
    assert!(
        out.contains("Time between rotations"),
        "explain lacks the period description:\n{out}"
    );
    assert!(
        out.contains("Five-field cron expression"),
        "explain lacks the schedule description:\n{out}"
    );
}

#[tokio::test]
async fn every_example_is_accepted_by_server_dry_run() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "examples").await;
    let dir = crate::support::repo_root().join("examples");
    let mut applied = 0;
    for entry in std::fs::read_dir(&dir).expect("reading examples/") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading an example");
        if !text.contains("kind: SecretRotation") {
            continue;
        }
        let out = kubectl_ok(&[
            "apply",
            "--dry-run=server",
            "-n",
            &ns.name,
            "-f",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.contains("(server dry run)"),
            "{}: {out}",
            path.display()
        );
        applied += 1;
    }
    assert!(
        applied >= 3,
        "expected at least three SecretRotation examples, found {applied}"
    );
}

/// Sends a manifest to the apiserver through `kubectl apply --dry-run=server` and returns (success, stderr).
fn dry_run(ns: &str, spec_yaml: &str) -> (bool, String) {
    dry_run_as(ns, "SecretRotation", spec_yaml)
}

/// `kubectl apply --dry-run=server` of a `kind` object with this spec.
fn dry_run_as(ns: &str, kind: &str, spec_yaml: &str) -> (bool, String) {
    let manifest = format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: {kind}\nmetadata:\n  name: bad\nspec:\n{}",
        spec_yaml
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    );
    let mut child = Command::new(tool("kubectl"))
        .args([
            "apply",
            "--dry-run=server",
            "--validate=false",
            "-n",
            ns,
            "-f",
            "-",
        ])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("writing the manifest");
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "invalid").await;
    let valid = "rotation: {period: 30d}";
    let (ok, err) = dry_run(&ns.name, valid);
    assert!(ok, "the valid baseline was refused: {err}");

    let db = "database: {serverRef: {name: db}, username: app}";
    let cases: &[(&str, String)] = &[
        ("spec.secretType", format!("secretType: FOO\n{valid}")),
        (
            "spec.password.length",
            format!("{valid}\npassword: {{length: 4}}"),
        ),
        (
            "spec.password.length",
            format!("{valid}\npassword: {{length: 1000}}"),
        ),
        ("spec.rotation.period", "rotation: {period: 30x}".to_owned()),
        ("spec.rotation.period", "rotation: {period: 0d}".to_owned()),
        (
            "spec.rotation.schedule",
            "rotation: {schedule: '* * *'}".to_owned(),
        ),
        (
            "spec.rotation.window",
            "rotation: {schedule: '0 3 * * *', window: soon}".to_owned(),
        ),
        ("spec.rotation", "suspend: false".to_owned()),
        (
            "spec.database.usernames",
            format!(
                "secretType: RDS-FG\n{valid}\ndatabase: {{serverRef: {{name: db}}, mode: MultiUser, usernames: [a, b, c]}}"
            ),
        ),
        (
            "spec.database.serverRef",
            format!("secretType: RDS-FG\n{valid}\ndatabase: {{username: app}}"),
        ),
        (
            "spec.database.serverRef.kind",
            format!(
                "secretType: RDS-FG\n{valid}\ndatabase: {{serverRef: {{name: db, kind: Service}}, username: app}}"
            ),
        ),
        (
            "spec.database.mode",
            format!(
                "secretType: RDS-FG\n{valid}\ndatabase: {{serverRef: {{name: db}}, mode: TripleUser}}"
            ),
        ),
        (
            "spec.database.username",
            format!(
                "secretType: RDS-FG\n{valid}\n{}",
                db.replace("app", "'app; DROP'")
            ),
        ),
        (
            "spec.target.deletionPolicy",
            format!("{valid}\ntarget: {{deletionPolicy: Keep}}"),
        ),
        (
            "spec.target.name",
            format!("{valid}\ntarget: {{name: Bad_Name}}"),
        ),
        (
            "spec.restartTargets",
            format!("{valid}\nrestartTargets: [{{kind: Pod, name: web}}]"),
        ),
        (
            "spec.secretName",
            format!("secretName: 'shop/orders'\n{valid}"),
        ),
        (
            "spec.secretName",
            format!("secretName: '{}'\n{valid}", "a".repeat(65)),
        ),
        (
            "spec.projectId",
            format!("projectId: 'not a project'\n{valid}"),
        ),
    ];
    assert!(cases.len() >= 10);
    for (field, spec) in cases {
        let (ok, err) = dry_run(&ns.name, spec);
        assert!(!ok, "accepted, but should be refused for {field}:\n{spec}");
        assert!(
            err.contains(field),
            "refusal of\n{spec}\ndoes not name {field}:\n{err}"
        );
    }
    // The servers' schemas: a valid one of each kind, then one rule broken at a time.
    let server = "engine: postgresql\nhost: db.data.svc";
    for kind in ["DatabaseServer", "ClusterDatabaseServer"] {
        let (ok, err) = dry_run_as(&ns.name, kind, server);
        assert!(ok, "the valid {kind} was refused: {err}");
    }
    let server_cases: &[(&str, &str, String)] = &[
        (
            "DatabaseServer",
            "spec.engine",
            "engine: oracle\nhost: db".to_owned(),
        ),
        ("DatabaseServer", "spec.host", "engine: mysql".to_owned()),
        (
            "DatabaseServer",
            "spec.port",
            format!("{server}\nport: 70000"),
        ),
        (
            "DatabaseServer",
            "spec.tls.mode",
            format!("{server}\ntls: {{mode: prefer}}"),
        ),
        (
            "DatabaseServer",
            "spec.host",
            "engine: mysql\nhost: 'db; DROP'".to_owned(),
        ),
        (
            "ClusterDatabaseServer",
            "spec.adminSecretRef.namespace",
            format!("{server}\nadminSecretRef: {{name: admin}}"),
        ),
        (
            "ClusterDatabaseServer",
            "spec.tls.caSecretRef.namespace",
            format!("{server}\ntls: {{mode: verify-full, caSecretRef: {{name: ca}}}}"),
        ),
    ];
    for (kind, field, spec) in server_cases {
        let (ok, err) = dry_run_as(&ns.name, kind, spec);
        assert!(
            !ok,
            "{kind} accepted, but should be refused for {field}:\n{spec}"
        );
        assert!(
            err.contains(field),
            "refusal of {kind}\n{spec}\ndoes not name {field}:\n{err}"
        );
    }
}

#[tokio::test]
async fn create_and_apply_status_through_kube() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "status").await;
    let api: Api<SecretRotation> = Api::namespaced(c.clone(), &ns.name);
    let spec: SecretRotationSpec =
        serde_json::from_value(serde_json::json!({"rotation": {"period": "30d"}})).unwrap();
    let created = api
        .create(
            &PostParams::default(),
            &SecretRotation::new("api-key", spec),
        )
        .await
        .expect("creating a SecretRotation");
    // Defaults come from the schema.
    assert_eq!(created.spec.password.length, 32);
    assert!(created.spec.rotation.rotate_on_create);
    assert_eq!(created.spec.secret_type.as_str(), "COMMON");

    let status = serde_json::json!({
        "apiVersion": "secretrotator.dev/v1alpha1",
        "kind": "SecretRotation",
        "status": {
            "versionId": "v1",
            "secretName": format!("{}.api-key", ns.name),
            "observedGeneration": created.metadata.generation,
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "Synced", "message": "test",
                "lastTransitionTime": "2026-11-27T18:00:00Z",
                "observedGeneration": created.metadata.generation,
            }],
        }
    });
    api.patch_status(
        "api-key",
        &PatchParams::apply("secret-rotator-tests").force(),
        &Patch::Apply(&status),
    )
    .await
    .expect("server-side apply of the status");

    let back = api.get("api-key").await.expect("reading back");
    let st = back.status.expect("a status");
    assert_eq!(st.version_id.as_deref(), Some("v1"));
    assert_eq!(st.secret_name, Some(format!("{}.api-key", ns.name)));
    assert_eq!(st.conditions.len(), 1);
    assert_eq!(st.conditions[0].type_, "Ready");
    assert_eq!(back.spec.rotation.period.as_deref(), Some("30d"));

    let table = kubectl_ok(&["get", "srot", "-n", &ns.name]);
    assert!(
        table.contains("VERSION") && table.contains("NEXT ROTATION"),
        "{table}"
    );
    assert!(
        table.contains("api-key") && table.contains("v1") && table.contains("True"),
        "{table}"
    );
}
