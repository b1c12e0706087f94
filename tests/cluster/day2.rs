//! Day-2 operations on the local control plane with a real `secret-rotator run`: time zones,
//! maintenance windows and what the status and `kubectl get` say about them.

use crate::support::operator::*;
use crate::support::{TestNamespace, client, install_crd, kubectl_ok};

fn common(name: &str, rotation: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {rotation}\n"
    )
}

fn rotating(sr: &secret_rotator::api::SecretRotation) -> (String, String) {
    condition(sr, "Rotating")
        .map(|c| (c.reason, c.message))
        .unwrap_or_default()
}

/// A cron schedule in a time zone: 03:00 in Shanghai is 19:00 UTC; an unknown zone is InvalidSpec naming
/// the field.
#[tokio::test]
async fn schedules_are_read_in_their_time_zone() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-tz").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common(
            "shanghai",
            "{schedule: '0 3 * * *', timeZone: Asia/Shanghai, rotateOnCreate: false}",
        ),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "shanghai", "True", "Synced", 30).await;
    let next = sr.status.unwrap().next_rotation_time.unwrap().0;
    assert!(next.to_string().ends_with("T19:00:00Z"), "{next}");

    apply_sr(
        &c,
        &ns.name,
        &common(
            "mars",
            "{schedule: '0 3 * * *', timeZone: Mars/Olympus_Mons}",
        ),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "mars", "False", "InvalidSpec", 30).await;
    let message = ready_condition(&sr).message;
    assert!(message.contains("spec.rotation.timeZone"), "{message}");
    assert!(message.contains("Mars/Olympus_Mons"), "{message}");
}

/// A 5-second period with a window open for the first 10 seconds of each minute: a rotation that falls
/// due outside it waits (Rotating=False WaitingForWindow, in `kubectl get` too, next rotation at the
/// opening), then happens inside the window.
#[tokio::test]
async fn a_due_rotation_waits_for_its_maintenance_window() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-window").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common(
            "nightly",
            "{period: 5s, rotateOnCreate: false, timeZone: Asia/Kolkata, maintenanceWindow: {schedule: '* * * * *', duration: 10s}}",
        ),
    )
    .await;
    wait_ready(&c, &ns.name, "nightly", "True", "Synced", 30).await;
    // Within about a minute the period has elapsed outside the window at least once.
    let waiting = eventually(90, "Rotating=False WaitingForWindow", || async {
        let sr = get_sr(&c, &ns.name, "nightly").await;
        (rotating(&sr).0 == "WaitingForWindow").then_some(sr)
    })
    .await;
    let (_, message) = rotating(&waiting);
    let st = waiting.status.clone().unwrap();
    let opens = st.next_rotation_time.unwrap().0;
    assert_eq!(opens.as_second() % 60, 0, "the window opens on a minute");
    assert!(message.contains(&opens.to_string()), "{message} / {opens}");
    let table = kubectl_ok(&["get", "srot", "nightly", "-n", &ns.name]);
    assert!(table.contains("ROTATING"), "{table}");
    assert!(table.contains("WaitingForWindow"), "{table}");
    let before = st.version_id.unwrap();

    // It rotates once the window opens, and only inside it.
    let rotated = eventually(90, "a rotation after the window opened", || async {
        let sr = get_sr(&c, &ns.name, "nightly").await;
        let st = sr.status.clone()?;
        (st.version_id.as_deref() != Some(before.as_str())).then_some(st)
    })
    .await;
    let at = rotated.last_rotation_time.unwrap().0;
    assert!(
        at >= opens,
        "rotated at {at}, before the window opened at {opens}"
    );
    assert!(
        at.as_second() % 60 < 10,
        "rotated at {at}, outside the 10-second window"
    );
}

/// `{{ previous.value }}` and `{{ previous.versionId }}`: empty while only one version exists, then the
/// version before the current one, so a consumer can accept both keys during a rotation.
#[tokio::test]
async fn templates_carry_the_previous_version() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-prev").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: keys\nspec:\n  rotation: {period: 30d}\n  target:\n    template: {current: '{{ value }}', previous: '{{ previous.value }}', ids: '{{ versionId }}/{{ previous.versionId }}'}\n",
    )
    .await;
    wait_version(&c, &ns.name, "keys", "v1", 30).await;
    let s = get_secret(&c, &ns.name, "keys").await.unwrap();
    let first = secret_text(&s, "current");
    assert_eq!(first.len(), 32);
    assert_eq!(secret_text(&s, "previous"), "");
    assert_eq!(secret_text(&s, "ids"), "v1/");

    annotate(&c, &ns.name, "keys", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "keys", "v2", 30).await;
    let s = eventually(20, "the Secret at v2", || async {
        let s = get_secret(&c, &ns.name, "keys").await?;
        (secret_text(&s, "ids") == "v2/v1").then_some(s)
    })
    .await;
    assert_eq!(secret_text(&s, "previous"), first);
    assert_ne!(secret_text(&s, "current"), first);
}

async fn install_rollout_crd(c: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "rollouts.argoproj.io"},
        "spec": {
            "group": "argoproj.io", "scope": "Namespaced",
            "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {"restartAt": {"type": "string", "format": "date-time"}}}}
            }}}]
        }
    }))
    .unwrap();
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(c.clone());
    match api.create(&Default::default(), &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the Rollout CRD: {e}"),
    }
    crate::support::wait_crd_established(c, "rollouts.argoproj.io").await;
}

/// Restart targets by label selector (two Deployments match, a third does not) and an Argo Rollout by name
/// (its spec.restartAt, in whole seconds), on a rotation.
#[tokio::test]
async fn restart_targets_by_selector_and_rollouts() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Api, ApiResource, DynamicObject, PostParams};
    let c = client().await;
    install_crd(&c).await;
    install_rollout_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-restart").await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), &ns.name);
    for (name, app) in [("web-a", "web"), ("web-b", "web"), ("other", "other")] {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"d": name}},
                     "template": {"metadata": {"labels": {"d": name}}, "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}
        }))
        .unwrap();
        deploys.create(&PostParams::default(), &d).await.unwrap();
    }
    let ar = ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        plural: "rollouts".into(),
    };
    let rollouts: Api<DynamicObject> = Api::namespaced_with(c.clone(), &ns.name, &ar);
    let r: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "canary"}, "spec": {"replicas": 1}
    }))
    .unwrap();
    eventually(30, "the Rollout created", || async {
        rollouts.create(&PostParams::default(), &r).await.ok()
    })
    .await;

    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: api\nspec:\n  rotation: {period: 30d}\n  restartTargets:\n  - {kind: Deployment, selector: {matchLabels: {app: web}}}\n  - {kind: Rollout, name: canary}\n",
    )
    .await;
    wait_version(&c, &ns.name, "api", "v1", 30).await;
    annotate(&c, &ns.name, "api", "secretrotator.dev/rotate-now", "1").await;
    wait_version(&c, &ns.name, "api", "v2", 30).await;
    let restarted_at = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("secretrotator.dev/restarted-at").cloned())
    };
    for name in ["web-a", "web-b"] {
        eventually(20, &format!("{name} restarted"), || async {
            restarted_at(&deploys.get(name).await.ok()?)
        })
        .await;
    }
    let at = eventually(20, "the Rollout's restartAt", || async {
        let r = rollouts.get("canary").await.ok()?;
        r.data["spec"]["restartAt"].as_str().map(str::to_owned)
    })
    .await;
    let t: jiff::Timestamp = at.parse().unwrap();
    assert_eq!(t.subsec_nanosecond(), 0, "{at}");
    assert!(!at.contains('.'), "{at}");
    assert_eq!(
        restarted_at(&deploys.get("other").await.unwrap()),
        None,
        "a Deployment the selector does not match was restarted"
    );
    let events = eventually(10, "the restart events", || async {
        let e = event_text(&c, &ns.name).await;
        (e.contains("restarted Deployment web-a for v2")
            && e.contains("restarted Deployment web-b for v2")
            && e.contains("restarted Rollout canary for v2")
            && e.contains("rotated store secret"))
        .then_some(e)
    })
    .await;
    assert!(!events.contains("Deployment other"), "{events}");
}

/// `kubectl explain` shows the new fields with their documentation.
#[tokio::test]
async fn kubectl_explain_shows_the_day2_fields() {
    let c = client().await;
    install_crd(&c).await;
    for (path, words) in [
        ("secretrotations.spec.rotation.timeZone", "IANA time zone"),
        (
            "secretrotations.spec.rotation.maintenanceWindow",
            "When due rotations may start",
        ),
        (
            "secretrotations.spec.restartTargets.selector",
            "at most 50 matches",
        ),
        ("secretrotations.spec.restartTargets.kind", "Argo Rollouts"),
        ("secretrotations.spec.target.template", "previous.value"),
        (
            "secretrotations.status.versions",
            "the versions the store holds",
        ),
        ("secretrotations.status.lastRollback", "rollback request"),
    ] {
        let out = eventually(30, &format!("kubectl explain {path}"), || async {
            let out = crate::support::kubectl(&["explain", path]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .await;
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.to_lowercase().contains(&words.to_lowercase()),
            "{path}: {out}"
        );
    }
}
