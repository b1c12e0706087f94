//! What a tenant who may create SecretRotations (but not Secrets, nor the operator's other rights) can make
//! the operator do: each test failed before its fix. A real `secret-rotator run` on the local control plane.

use std::time::Duration;

use crate::support::db::local_server;
use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

fn common(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {{period: 30d}}\n{extra}"
    )
}

async fn create_secret(c: &Client, ns: &str, name: &str, data: serde_json::Value) -> Secret {
    let s: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .unwrap()
}

fn ready_message(sr: &secret_rotator::api::SecretRotation) -> String {
    condition(sr, "Ready")
        .map(|c| c.message)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_secret_the_operator_did_not_create_is_left_alone_until_its_owner_opts_in() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-takeover").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    // Another team's Secret, and a SecretRotation named like it.
    create_secret(
        &c,
        &ns.name,
        "billing",
        serde_json::json!({"value": "theirs"}),
    )
    .await;
    apply_sr(&c, &ns.name, &common("billing", "")).await;
    let sr = wait_ready(&c, &ns.name, "billing", "False", "SecretNotOwned", 30).await;
    assert!(
        ready_message(&sr).contains("secretrotator.dev/adopt=true"),
        "{}",
        ready_message(&sr)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = get_secret(&c, &ns.name, "billing").await.unwrap();
    assert_eq!(secret_text(&s, "value"), "theirs", "nothing was written");
    assert!(
        s.metadata.owner_references.is_none(),
        "no owner reference was added"
    );
    // Deleting the SecretRotation must not take the Secret with it.
    Api::<secret_rotator::api::SecretRotation>::namespaced(c.clone(), &ns.name)
        .delete("billing", &Default::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(get_secret(&c, &ns.name, "billing").await.is_some());

    // A second SecretRotation may not take over the first one's synced Secret either.
    apply_sr(&c, &ns.name, &common("first", "")).await;
    wait_version(&c, &ns.name, "first", "v1", 30).await;
    apply_sr(&c, &ns.name, &common("second", "  target: {name: first}\n")).await;
    wait_ready(&c, &ns.name, "second", "False", "SecretNotOwned", 30).await;

    // The owner opts in: the Secret is taken over at the next look.
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns.name);
    let patch =
        serde_json::json!({"metadata": {"annotations": {"secretrotator.dev/adopt": "true"}}});
    secrets
        .patch("billing", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    apply_sr(&c, &ns.name, &common("billing", "")).await;
    wait_ready(&c, &ns.name, "billing", "True", "Synced", 60).await;
    let s = get_secret(&c, &ns.name, "billing").await.unwrap();
    assert_ne!(
        secret_text(&s, "value"),
        "theirs",
        "the adopted Secret holds the store's value"
    );
    let events = event_text(&c, &ns.name).await;
    assert!(events.contains("SecretNotOwned"), "{events}");
}

#[tokio::test]
async fn rotations_more_often_than_the_floor_are_refused() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-floor").await;
    let files = OperatorFiles::new();
    // The operator's default floor (the test support lowers it for the other tests).
    let _op = start_in(
        &files,
        &ns.name,
        &[("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1m")],
    );
    apply_sr(
        &c,
        &ns.name,
        &common("fast", "").replace("period: 30d", "period: 1s"),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "fast", "False", "InvalidSpec", 30).await;
    assert!(
        ready_message(&sr).contains("--min-rotation-period"),
        "{}",
        ready_message(&sr)
    );
    apply_sr(
        &c,
        &ns.name,
        &common("cron", "").replace("period: 30d", "schedule: '* * * * *'"),
    )
    .await;
    wait_ready(&c, &ns.name, "cron", "True", "Synced", 30).await;
    apply_sr(
        &c,
        &ns.name,
        &common("ok", "").replace("period: 30d", "period: 2m"),
    )
    .await;
    wait_ready(&c, &ns.name, "ok", "True", "Synced", 30).await;
}

#[tokio::test]
async fn the_namespace_policy_refuses_superusers_other_projects_and_the_admin_account() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-policy").await;
    let files = OperatorFiles::new();
    let mut op = start_in(&files, &ns.name, &[]);
    let db = |name: &str, user: &str| {
        format!(
            "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  secretType: RDS-FG\n  rotation: {{period: 30d}}\n  database:\n    serverRef: {{name: pg-1, kind: DatabaseServer}}\n    username: {user}\n"
        )
    };
    create_secret(
        &c,
        &ns.name,
        "db-admin",
        serde_json::json!({"username": "dba", "password": "admin-pw-not-used"}),
    )
    .await;
    local_server(&c, &ns.name, "pg-1", "postgresql", 1, Some("db-admin")).await;
    apply_sr(&c, &ns.name, &db("superuser", "postgres")).await;
    let sr = wait_ready(&c, &ns.name, "superuser", "False", "Forbidden", 30).await;
    assert!(
        ready_message(&sr).contains("built-in superuser"),
        "{}",
        ready_message(&sr)
    );
    apply_sr(&c, &ns.name, &db("itself", "dba")).await;
    let sr = wait_ready(&c, &ns.name, "itself", "False", "Forbidden", 30).await;
    assert!(
        ready_message(&sr).contains("administrator's own account"),
        "{}",
        ready_message(&sr)
    );
    apply_sr(
        &c,
        &ns.name,
        &common("project", "  projectId: someone-elses\n"),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "project", "False", "Forbidden", 30).await;
    assert!(
        ready_message(&sr).contains("CSMS project someone-elses"),
        "{}",
        ready_message(&sr)
    );
    // Nothing of the superuser's or the foreign project's reached the store.
    op.stop();
    let store = files.open_store();
    use secret_rotator_store::Store;
    let names: Vec<String> = store
        .list_secrets("default", Some(200), None)
        .await
        .unwrap()
        .secrets
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".superuser")),
        "{names:?}"
    );
    assert!(
        store
            .list_secrets("someone-elses", Some(10), None)
            .await
            .unwrap()
            .secrets
            .is_empty()
    );
}

#[tokio::test]
async fn restarts_follow_the_version_even_after_a_crash_between_store_and_secret() {
    if !cfg!(feature = "test-failpoints") {
        panic!(
            "this test needs the operator's failpoint: run it with --features test-failpoints (scripts/test does)"
        );
    }
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-restart").await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns.name);
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let restarted_at = || async {
        deploys
            .get("web")
            .await
            .ok()
            .and_then(|d| d.spec?.template.metadata?.annotations)
            .and_then(|a| a.get("secretrotator.dev/restarted-at").cloned())
    };
    let files = OperatorFiles::new();
    let kc = &control_plane().kubeconfig;
    let mut op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common(
            "api",
            "  restartTargets:\n  - {kind: Deployment, name: web}\n",
        ),
    )
    .await;
    let sr = wait_version(&c, &ns.name, "api", "v1", 30).await;
    assert_eq!(sr.status.unwrap().restarted_version.as_deref(), Some("v1"));
    assert!(
        restarted_at().await.is_none(),
        "the first version restarts nothing"
    );
    op.stop();
    // Abort right after the store made v2: no Secret write, no restart, no status.
    let mut crashing = Operator::start(
        kc,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[(
            "SECRET_ROTATOR_TEST_FAILPOINT",
            "abort-after-store-rotation",
        )],
    );
    annotate(&c, &ns.name, "api", "secretrotator.dev/rotate-now", "once").await;
    wait_exit(&mut crashing, 30).await;
    assert!(restarted_at().await.is_none());
    // The next operator finds v2 in the store: the Secret follows, and the workload rolls once for it.
    let _op = start_in(&files, &ns.name, &[]);
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    let first = eventually(20, "the restart for v2", || async { restarted_at().await }).await;
    let sr = eventually(20, "restartedVersion v2", || async {
        let sr = get_sr(&c, &ns.name, "api").await;
        (sr.status.as_ref()?.restarted_version.as_deref() == Some("v2")).then_some(sr)
    })
    .await;
    assert_eq!(sr.status.unwrap().version_id.as_deref(), Some("v2"));
    // Later reconciles (a spec change wakes one) restart nothing more for v2.
    apply_sr(&c, &ns.name, &common("api", "  restartTargets:\n  - {kind: Deployment, name: web}\n  target: {labels: {touched: 'yes'}}\n")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(restarted_at().await, Some(first), "one restart per version");
}

#[tokio::test]
async fn a_store_secret_stays_with_the_resource_that_made_it() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-claim").await;
    let files = OperatorFiles::new();
    let mut op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common("db", "  target: {deletionPolicy: Retain}\n"),
    )
    .await;
    wait_version(&c, &ns.name, "db", "v1", 30).await;
    // The resource goes (as it would with its namespace); a new one of the same name comes.
    let srs: Api<secret_rotator::api::SecretRotation> = Api::namespaced(c.clone(), &ns.name);
    srs.delete("db", &Default::default()).await.unwrap();
    eventually(30, "the old resource gone", || async {
        srs.get_opt("db").await.ok()?.is_none().then_some(())
    })
    .await;
    apply_sr(&c, &ns.name, &common("db", "  target: {name: db-new}\n")).await;
    let sr = wait_ready(&c, &ns.name, "db", "False", "StoreSecretClaimed", 30).await;
    assert!(
        ready_message(&sr).contains("adoptStoreSecrets"),
        "{}",
        ready_message(&sr)
    );
    assert!(
        get_secret(&c, &ns.name, "db-new").await.is_none(),
        "nothing of the old value was synced"
    );
    op.stop();

    // The operator's policy lets this namespace adopt it: the new resource claims it.
    let policy = files.dir.path().join("policy.yaml");
    std::fs::write(&policy, format!("adoptStoreSecrets: [{}]\n", ns.name)).unwrap();
    let policy_arg = format!("--policy-file={}", policy.display());
    let _op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false", &policy_arg],
        &[],
    );
    wait_ready(&c, &ns.name, "db", "True", "Synced", 30).await;
    assert!(get_secret(&c, &ns.name, "db-new").await.is_some());
}

#[tokio::test]
async fn a_spec_that_no_longer_describes_its_store_secret_gets_a_condition() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "trust-edit").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    create_secret(
        &c,
        &ns.name,
        "db-admin",
        serde_json::json!({"username": "dba", "password": "admin-pw-not-used"}),
    )
    .await;
    local_server(&c, &ns.name, "pg-1", "postgresql", 1, Some("db-admin")).await;
    let db = "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: app\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database:\n    serverRef: {name: pg-1, kind: DatabaseServer}\n    username: app_a\n";
    // The database is unreachable (port 1): the first rotation fails, but the store secret exists.
    apply_sr(&c, &ns.name, db).await;
    wait_ready(&c, &ns.name, "app", "False", "RotationFailed", 30).await;
    // A MultiUser edit of a SingleUser secret, and a COMMON edit of a database secret, are refused. Edited
    // as `kubectl edit` would, with merge patches (a merge patch deletes a field set to null).
    let srs: Api<secret_rotator::api::SecretRotation> = Api::namespaced(c.clone(), &ns.name);
    let patch = serde_json::json!({"spec": {"database": {"mode": "MultiUser", "username": null, "usernames": ["app_a", "app_b"]}}});
    srs.patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let sr = wait_ready(&c, &ns.name, "app", "False", "StoreSecretMismatch", 30).await;
    assert!(
        ready_message(&sr).contains("mode"),
        "{}",
        ready_message(&sr)
    );
    let patch = serde_json::json!({"spec": {"secretType": "COMMON", "database": null}});
    srs.patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_ready(&c, &ns.name, "app", "False", "StoreSecretMismatch", 30).await;
    let sr = eventually(30, "the COMMON edit refused", || async {
        let sr = get_sr(&c, &ns.name, "app").await;
        ready_message(&sr).contains("is RDS-FG").then_some(sr)
    })
    .await;
    let ready = ready_condition(&sr);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "StoreSecretMismatch")
    );
    // Nothing overwrote the credential: the store's current value is still a database credential.
    assert!(
        get_secret(&c, &ns.name, "app").await.is_none(),
        "no synced Secret was written"
    );
}
