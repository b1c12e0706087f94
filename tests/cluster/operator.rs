//! The operator end to end: a real `secret-rotator run` process on the local control plane, with the
//! embedded store.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use secret_rotator_store::{SYSCURRENT, Store};

/// The operator's default project.
const PROJECT: &str = "default";

fn common(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {{period: 30d}}\n{extra}"
    )
}

/// Every value a store holds for a secret (all versions), as text.
async fn store_values(
    files: &OperatorFiles,
    project: &str,
    name: &str,
) -> Vec<(String, String, i64)> {
    let s = files.open_store();
    let page = s
        .list_versions(project, name, Some(200), None)
        .await
        .unwrap();
    let mut out = Vec::new();
    for v in page.version_metadatas {
        let full = s.show_version(project, name, &v.id).await.unwrap();
        out.push((
            v.id.clone(),
            full.value.expose_str().unwrap().to_owned(),
            v.create_time,
        ));
    }
    out
}

#[tokio::test]
async fn common_secret_lifecycle_rotate_now_drift_and_no_leaks() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-common").await;
    let files = OperatorFiles::new();
    let mut op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(
        &c,
        &ns.name,
        &common("api", "  target:\n    name: api-secret\n"),
    )
    .await;

    let sr = wait_ready(&c, &ns.name, "api", "True", "Synced", 60).await;
    let st = sr.status.clone().unwrap();
    assert_eq!(st.version_id.as_deref(), Some("v1"));
    assert_eq!(st.secret_name, Some(format!("{}.api", ns.name)));
    assert_eq!(
        st.rotation_task_id, None,
        "COMMON secrets have no rotation task"
    );
    assert!(st.data_hmac.as_ref().is_some_and(|h| h.len() == 64));
    assert_eq!(st.observed_generation, sr.metadata.generation);
    assert!(st.next_rotation_time.is_some());
    let s1 = get_secret(&c, &ns.name, "api-secret").await.unwrap();
    let ann = s1.metadata.annotations.clone().unwrap();
    assert_eq!(ann["secretrotator.dev/version-id"], "v1");
    assert_eq!(ann["secretrotator.dev/rotation-task-id"], "");
    let v1 = secret_text(&s1, "value");
    assert_eq!(v1.len(), 32);

    // rotate-now: exactly one new version.
    annotate(&c, &ns.name, "api", "secretrotator.dev/rotate-now", "first").await;
    let sr = wait_version(&c, &ns.name, "api", "v2", 30).await;
    assert_eq!(
        sr.status.as_ref().unwrap().last_rotate_now.as_deref(),
        Some("first")
    );
    let s2 = eventually(10, "the Secret at v2", || async {
        let s = get_secret(&c, &ns.name, "api-secret").await?;
        (s.metadata.annotations.as_ref()?["secretrotator.dev/version-id"] == "v2").then_some(s)
    })
    .await;
    let v2 = secret_text(&s2, "value");
    assert_ne!(v1, v2);
    // The same value again, and an unrelated change: no new version.
    annotate(&c, &ns.name, "api", "secretrotator.dev/rotate-now", "first").await;
    annotate(&c, &ns.name, "api", "example.com/unrelated", "x").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        get_sr(&c, &ns.name, "api")
            .await
            .status
            .unwrap()
            .version_id
            .as_deref(),
        Some("v2")
    );

    // An edited synced Secret is restored; a deleted one recreated; no new version either way.
    let secrets: Api<Secret> = Api::namespaced(c.clone(), &ns.name);
    let tamper = serde_json::json!({"data": {"value": "dGFtcGVyZWQ="}});
    secrets
        .patch(
            "api-secret",
            &PatchParams::default(),
            &Patch::Merge(&tamper),
        )
        .await
        .unwrap();
    eventually(20, "the edited Secret restored", || async {
        let s = get_secret(&c, &ns.name, "api-secret").await?;
        (secret_text(&s, "value") == v2).then_some(())
    })
    .await;
    secrets
        .delete("api-secret", &DeleteParams::default())
        .await
        .unwrap();
    eventually(20, "the deleted Secret recreated", || async {
        let s = get_secret(&c, &ns.name, "api-secret").await?;
        (secret_text(&s, "value") == v2 && s.metadata.deletion_timestamp.is_none()).then_some(())
    })
    .await;
    assert_eq!(
        get_sr(&c, &ns.name, "api")
            .await
            .status
            .unwrap()
            .version_id
            .as_deref(),
        Some("v2")
    );

    // Metrics.
    let metrics = op.metrics_text().await;
    assert!(
        metrics
            .contains("secret_rotator_rotations_total{result=\"success\",reason=\"rotate-now\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("secret_rotator_build_info"), "{metrics}");
    assert_eq!(
        reqwest::get(format!("http://{}/readyz", op.metrics_addr))
            .await
            .unwrap()
            .status(),
        200
    );

    // The store agrees, and holds exactly two versions.
    let events = event_text(&c, &ns.name).await;
    let status = serde_json::to_string(&get_sr(&c, &ns.name, "api").await.status).unwrap();
    op.stop();
    let values = store_values(&files, PROJECT, &format!("{}.api", ns.name)).await;
    assert_eq!(
        values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["v2", "v1"]
    );
    assert_eq!(values[0].1, v2);
    assert_eq!(values[1].1, v1);
    let s = files.open_store();
    assert_eq!(
        s.show_version_by_stage(PROJECT, &format!("{}.api", ns.name), SYSCURRENT)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some(v2.as_str())
    );

    // No generated value in the log, the events, the status or the metrics.
    let log = op.log_text();
    assert!(log.contains("rotating"), "the log was captured");
    for v in [&v1, &v2] {
        for (what, text) in [
            ("log", &log),
            ("events", &events),
            ("status", &status),
            ("metrics", &metrics),
        ] {
            assert!(
                !text.contains(v.as_str()),
                "a generated value appears in the {what}"
            );
        }
    }
    assert!(
        events.contains("Rotated") && events.contains("Synced"),
        "{events}"
    );
}

#[tokio::test]
async fn a_short_period_rotates_on_schedule_and_suspend_stops_it() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-period").await;
    let files = OperatorFiles::new();
    let _op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(
        &c,
        &ns.name,
        &common("fast", "").replace("period: 30d", "period: 3s"),
    )
    .await;
    wait_version(&c, &ns.name, "fast", "v3", 40).await;
    apply_sr(
        &c,
        &ns.name,
        &common("fast", "  suspend: true\n").replace("period: 30d", "period: 3s"),
    )
    .await;
    let suspended = eventually(20, "the suspension observed", || async {
        let sr = get_sr(&c, &ns.name, "fast").await;
        let st = sr.status.clone()?;
        (st.observed_generation == sr.metadata.generation && st.next_rotation_time.is_none())
            .then_some(st)
    })
    .await;
    let at = suspended.version_id.clone().unwrap();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let st = get_sr(&c, &ns.name, "fast").await.status.unwrap();
    assert_eq!(
        st.version_id.as_deref(),
        Some(at.as_str()),
        "rotated while suspended"
    );
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True", "a suspended resource stays in sync");
}

#[tokio::test]
async fn restart_targets_roll_the_deployment() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-restart").await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns.name);
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    let rs: Api<ReplicaSet> = Api::namespaced(c.clone(), &ns.name);
    eventually(30, "the first ReplicaSet", || async {
        (rs.list(&ListParams::default()).await.ok()?.items.len() == 1).then_some(())
    })
    .await;

    let files = OperatorFiles::new();
    let _op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(&c, &ns.name, &common("api", "  restartTargets:\n  - {kind: Deployment, name: web}\n  - {kind: StatefulSet, name: missing}\n")).await;
    wait_version(&c, &ns.name, "api", "v1", 30).await;
    annotate(&c, &ns.name, "api", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    let restarted = eventually(20, "the pod template annotation", || async {
        let d = deploys.get("web").await.ok()?;
        d.spec?
            .template
            .metadata?
            .annotations?
            .get("secretrotator.dev/restarted-at")
            .cloned()
    })
    .await;
    assert!(restarted.parse::<jiff::Timestamp>().is_ok(), "{restarted}");
    eventually(
        30,
        "a second ReplicaSet from the controller manager",
        || async { (rs.list(&ListParams::default()).await.ok()?.items.len() == 2).then_some(()) },
    )
    .await;
    let events = eventually(10, "the restart events", || async {
        let e = event_text(&c, &ns.name).await;
        (e.contains("RestartTriggered") && e.contains("RestartTargetMissing")).then_some(e)
    })
    .await;
    assert!(events.contains("StatefulSet missing"), "{events}");
    // The missing target did not fail the rotation.
    let st = get_sr(&c, &ns.name, "api").await.status.unwrap();
    assert_eq!(st.failed_attempts, 0);
}

#[tokio::test]
async fn another_namespaces_store_secret_is_forbidden() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-forbid").await;
    let files = OperatorFiles::new();
    let mut op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    apply_sr(
        &c,
        &ns.name,
        &common("steal", "  secretName: kube-system.admin-token\n"),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "steal", "False", "Forbidden", 30).await;
    let msg = &sr.status.as_ref().unwrap().conditions[0].message;
    assert!(
        msg.contains("kube-system.admin-token") && msg.contains(&format!("\"{}.\"", ns.name)),
        "{msg}"
    );
    assert!(get_secret(&c, &ns.name, "steal").await.is_none());
    op.stop();
    // Nothing was created or read in the store.
    let s = files.open_store();
    assert_eq!(
        s.show_secret(PROJECT, "kube-system.admin-token")
            .await
            .unwrap_err()
            .status(),
        404
    );
    assert_eq!(
        s.list_secrets(PROJECT, None, None)
            .await
            .unwrap()
            .secrets
            .len(),
        0
    );
}

#[tokio::test]
async fn invalid_specs_get_a_condition_and_neighbours_keep_rotating() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-invalid").await;
    let files = OperatorFiles::new();
    let _op = Operator::start(
        &control_plane().kubeconfig,
        &files,
        &ns.name,
        &["--leader-election=false"],
        &[],
    );
    let invalid = [
        (
            "both",
            "rotation: {period: 1d, schedule: '0 3 * * *'}",
            "spec.rotation",
        ),
        (
            "neither",
            "rotation: {rotateOnCreate: true}",
            "spec.rotation",
        ),
        (
            "dbcommon",
            "rotation: {period: 1d}\n  database: {serverRef: {name: h}, username: u}",
            "spec.database",
        ),
        (
            "nodb",
            "secretType: RDS-FG\n  rotation: {period: 1d}",
            "spec.database",
        ),
        (
            "tmpl",
            "rotation: {period: 1d}\n  target: {template: {k: '{{ password }}'}}",
            "spec.target.template",
        ),
        (
            "multi",
            "secretType: RDS-FG\n  rotation: {period: 1d}\n  database: {serverRef: {name: h}, mode: MultiUser, usernames: [a, a]}",
            "spec.database.usernames",
        ),
        (
            "window",
            "rotation: {period: 1d, window: 1h}",
            "spec.rotation.window",
        ),
    ];
    for (name, spec, _) in &invalid {
        apply_sr(&c, &ns.name, &format!("apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  {spec}\n")).await;
    }
    apply_sr(
        &c,
        &ns.name,
        &common("good", "").replace("period: 30d", "period: 2s"),
    )
    .await;
    for (name, _, field) in &invalid {
        let sr = wait_ready(&c, &ns.name, name, "False", "InvalidSpec", 30).await;
        let msg = &sr.status.unwrap().conditions[0].message;
        assert!(msg.contains(field), "{name}: {msg}");
    }
    wait_version(&c, &ns.name, "good", "v3", 40).await;
}

#[tokio::test]
async fn a_kill_right_after_the_store_rotation_does_not_rotate_again() {
    if !cfg!(feature = "test-failpoints") {
        panic!(
            "this test needs the operator's failpoint: run it with --features test-failpoints (scripts/test does)"
        );
    }
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-failpoint").await;
    let files = OperatorFiles::new();
    let kc = &control_plane().kubeconfig;
    let store_name = format!("{}.api", ns.name);

    // rotate-now: the operator aborts right after the store made v2.
    let mut op = Operator::start(kc, &files, &ns.name, &["--leader-election=false"], &[]);
    apply_sr(&c, &ns.name, &common("api", "")).await;
    wait_version(&c, &ns.name, "api", "v1", 30).await;
    op.stop();
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
    assert!(
        crashing
            .log_text()
            .contains("failpoint abort-after-store-rotation")
    );
    let st = get_sr(&c, &ns.name, "api").await.status.unwrap();
    assert_eq!(
        st.version_id.as_deref(),
        Some("v1"),
        "the status was not written before the abort"
    );
    assert!(st.pending_rotate_now.is_some());

    let mut op = Operator::start(kc, &files, &ns.name, &["--leader-election=false"], &[]);
    let sr = wait_version(&c, &ns.name, "api", "v2", 30).await;
    let st = sr.status.unwrap();
    assert_eq!(st.last_rotate_now.as_deref(), Some("once"));
    assert!(st.pending_rotate_now.is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    op.stop();
    let values = store_values(&files, PROJECT, &store_name).await;
    assert_eq!(
        values.len(),
        2,
        "one version for the one rotate-now: {:?}",
        values.iter().map(|v| &v.0).collect::<Vec<_>>()
    );
    let secret = get_secret(&c, &ns.name, "api").await.unwrap();
    assert_eq!(
        secret_text(&secret, "value"),
        values[0].1,
        "the synced Secret converged to the store"
    );

    // A scheduled rotation: abort after the store rotation, restart, and the next rotation waits a whole
    // period after the version the aborted process made.
    apply_sr(
        &c,
        &ns.name,
        &common("api", "").replace("period: 30d", "period: 6s"),
    )
    .await;
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
    wait_exit(&mut crashing, 30).await;
    let mut op = Operator::start(kc, &files, &ns.name, &["--leader-election=false"], &[]);
    wait_version(&c, &ns.name, "api", "v3", 30).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    op.stop();
    let values = store_values(&files, PROJECT, &store_name).await;
    let mut times: Vec<i64> = values.iter().map(|v| v.2).collect();
    times.sort();
    for w in times.windows(2).skip(1) {
        assert!(
            w[1] - w[0] >= 5_900,
            "two rotations {} ms apart for one due time",
            w[1] - w[0]
        );
    }
    assert!(values.len() >= 4, "rotations continued after the restart");
}

#[tokio::test]
async fn one_leader_and_a_standby_that_takes_over() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "op-leader").await;
    let files = OperatorFiles::new();
    let kc = &control_plane().kubeconfig;
    let args = ["--leader-election=true", "--lease-duration-secs", "4"];
    let lease_ns = ["--leader-election-namespace", ns.name.as_str()];
    let all: Vec<&str> = args.iter().chain(lease_ns.iter()).copied().collect();
    let mut a = Operator::start(kc, &files, &ns.name, &all, &[]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut b = Operator::start(kc, &files, &ns.name, &all, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common("api", "").replace("period: 30d", "period: 3s"),
    )
    .await;
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    let leaders = [
        a.log_text().contains("became the leader"),
        b.log_text().contains("became the leader"),
    ];
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "exactly one leader: {leaders:?}"
    );
    let (leader, standby) = if leaders[0] {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    assert!(standby.log_text().contains("another replica leads"));
    let before = get_sr(&c, &ns.name, "api")
        .await
        .status
        .unwrap()
        .version_id
        .unwrap();
    leader.kill();
    eventually(30, "the standby taking over", || async {
        standby
            .log_text()
            .contains("became the leader")
            .then_some(())
    })
    .await;
    let next = format!(
        "v{}",
        before.trim_start_matches('v').parse::<u32>().unwrap() + 2
    );
    wait_version(&c, &ns.name, "api", &next, 40).await;
    standby.stop();
    let values = store_values(&files, PROJECT, &format!("{}.api", ns.name)).await;
    let mut times: Vec<i64> = values.iter().map(|v| v.2).collect();
    times.sort();
    let ids: BTreeSet<&str> = values.iter().map(|v| v.0.as_str()).collect();
    assert_eq!(ids.len(), values.len());
    for w in times.windows(2).skip(1) {
        assert!(
            w[1] - w[0] >= 2_900,
            "two rotations {} ms apart: one due time rotated twice",
            w[1] - w[0]
        );
    }
}
