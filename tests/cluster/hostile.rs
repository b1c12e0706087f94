//! Hostile and malformed SecretRotations at the operator level: each is refused by the
//! apiserver's schema, or accepted and given a condition that names what is wrong. Meanwhile a neighbour
//! keeps rotating, the operator neither exits nor records reconcile errors, and no refused Secret is
//! retried in a loop.

use crate::support::operator::*;
use crate::support::*;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use secret_rotator::api::SecretRotation;
use serde_json::{Value, json};

enum Expect {
    /// The apiserver refuses the create; its message names this.
    Refused(&'static str),
    /// Accepted; Ready=False with this reason and a message naming this.
    Condition(&'static str, &'static str),
}
use Expect::*;

fn base() -> Value {
    json!({"secretType": "COMMON", "rotation": {"period": "1d"}})
}

fn with(f: impl FnOnce(&mut Value)) -> Value {
    let mut v = base();
    f(&mut v);
    v
}

fn db(extra: Value) -> Value {
    let mut d = json!({"serverRef": {"name": "orders-pg"}, "username": "app"});
    if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            d.insert(k.clone(), v.clone());
        }
    }
    json!({"secretType": "RDS-FG", "rotation": {"period": "1d"}, "database": d})
}

fn cases() -> Vec<(&'static str, Value, Option<Value>, Expect)> {
    let huge = "a".repeat(100_000);
    vec![
        // Refused by the schema.
        (
            "huge-target-name",
            with(|v| v["target"] = json!({"name": huge.clone()})),
            None,
            Refused("spec.target.name"),
        ),
        (
            "unicode-target-name",
            with(|v| v["target"] = json!({"name": "sécret-ünïcode"})),
            None,
            Refused("spec.target.name"),
        ),
        (
            "rtl-override-target",
            with(|v| v["target"] = json!({"name": "api\u{202e}yek"})),
            None,
            Refused("spec.target.name"),
        ),
        (
            "restart-other-namespace",
            with(|v| {
                v["restartTargets"] = json!([{"kind": "Deployment", "name": "kube-system/coredns"}])
            }),
            None,
            Refused("spec.restartTargets"),
        ),
        (
            "restart-unknown-kind",
            with(|v| v["restartTargets"] = json!([{"kind": "Pod", "name": "x"}])),
            None,
            Refused("spec.restartTargets"),
        ),
        (
            "zero-period",
            with(|v| v["rotation"] = json!({"period": "0s"})),
            None,
            Refused("spec.rotation.period"),
        ),
        (
            "negative-period",
            with(|v| v["rotation"] = json!({"period": "-1h"})),
            None,
            Refused("spec.rotation.period"),
        ),
        (
            "unknown-secret-type",
            with(|v| v["secretType"] = json!("ROOT_KEY")),
            None,
            Refused("spec.secretType"),
        ),
        (
            "short-password",
            with(|v| v["password"] = json!({"length": 4})),
            None,
            Refused("spec.password.length"),
        ),
        (
            "huge-password",
            with(|v| v["password"] = json!({"length": 1_000_000})),
            None,
            Refused("spec.password.length"),
        ),
        (
            "sql-in-server-name",
            db(json!({"serverRef": {"name": "db; DROP TABLE users"}})),
            None,
            Refused("spec.database.serverRef.name"),
        ),
        (
            "sql-in-username",
            db(json!({"username": "x' OR '1'='1"})),
            None,
            Refused("spec.database.username"),
        ),
        (
            "unknown-server-kind",
            db(json!({"serverRef": {"name": "orders-pg", "kind": "ExternalName"}})),
            None,
            Refused("spec.database.serverRef.kind"),
        ),
        (
            "six-field-cron",
            with(|v| v["rotation"] = json!({"schedule": "0 0 0 1 1 *"})),
            None,
            Refused("spec.rotation.schedule"),
        ),
        (
            "huge-cron",
            with(|v| {
                v["rotation"] = json!({"schedule": format!("0 0 * * {}", "1,".repeat(100) + "1")})
            }),
            None,
            Refused("spec.rotation.schedule"),
        ),
        (
            "store-name-traversal",
            with(|v| v["secretName"] = json!("../../etc/passwd")),
            None,
            Refused("spec.secretName"),
        ),
        (
            "too-many-keys",
            with(
                |v| v["target"] = json!({"template": (0..65).map(|i| (format!("k{i}"), json!("{{ value }}"))).collect::<serde_json::Map<_, _>>()}),
            ),
            None,
            Refused("spec.target.template"),
        ),
        // Accepted, then a condition.
        (
            "period-and-schedule",
            with(|v| v["rotation"] = json!({"period": "1d", "schedule": "0 3 * * *"})),
            None,
            Condition("InvalidSpec", "spec.rotation"),
        ),
        (
            "unknown-template-key",
            with(|v| v["target"] = json!({"template": {"k": "{{ nonexistent }}"}})),
            None,
            Condition("InvalidSpec", "spec.target.template"),
        ),
        (
            "unclosed-template",
            with(|v| v["target"] = json!({"template": {"k": "{{ value"}})),
            None,
            Condition("InvalidSpec", "spec.target.template"),
        ),
        (
            "db-variable-on-common",
            with(|v| v["target"] = json!({"template": {"k": "{{ password }}"}})),
            None,
            Condition("InvalidSpec", "spec.target.template"),
        ),
        (
            "zero-width-key",
            with(|v| v["target"] = json!({"template": {"api\u{200b}key": "{{ value }}"}})),
            None,
            Condition("InvalidSpec", "spec.target.template"),
        ),
        (
            "never-firing-cron",
            with(|v| v["rotation"] = json!({"schedule": "0 0 31 2 *"})),
            None,
            Condition("InvalidSpec", "spec.rotation.schedule"),
        ),
        (
            "unicode-label",
            with(|v| v["target"] = json!({"labels": {"app": "célèbre"}})),
            None,
            Condition("InvalidSpec", "spec.target.labels"),
        ),
        (
            "reserved-annotation",
            with(|v| v["target"] = json!({"annotations": {"secretrotator.dev/version-id": "v99"}})),
            None,
            Condition("InvalidSpec", "spec.target.annotations"),
        ),
        (
            "database-on-common",
            with(|v| v["database"] = json!({"serverRef": {"name": "orders-pg"}, "username": "u"})),
            None,
            Condition("InvalidSpec", "spec.database"),
        ),
        (
            "multi-user-twice",
            json!({"secretType": "RDS-FG", "rotation": {"period": "1d"}, "database": {"serverRef": {"name": "orders-pg"}, "mode": "MultiUser", "usernames": ["a", "a"]}}),
            None,
            Condition("InvalidSpec", "spec.database.usernames"),
        ),
        (
            "huge-rotate-now",
            base(),
            Some(json!({"secretrotator.dev/rotate-now": "x".repeat(200_000)})),
            Condition("InvalidSpec", "rotate-now"),
        ),
        (
            "other-namespaces-store-secret",
            with(|v| v["secretName"] = json!("kube-system.db-password")),
            None,
            Condition("Forbidden", "kube-system.db-password"),
        ),
        // 4 × 300 KB of literal text: the Secret would pass Kubernetes' 1 MiB limit.
        (
            "oversized-secret",
            with(
                |v| v["target"] = json!({"template": (0..4).map(|i| (format!("k{i}"), json!(format!("{}{{{{ value }}}}", "z".repeat(300_000))))).collect::<serde_json::Map<_, _>>()}),
            ),
            None,
            Condition("SecretRejected", "1048576"),
        ),
        (
            "immutable-existing-secret",
            with(|v| v["target"] = json!({"name": "immutable-taken"})),
            None,
            Condition("SecretRejected", "immutable-taken"),
        ),
        (
            "someone-elses-secret",
            with(|v| v["target"] = json!({"name": "plain-taken"})),
            None,
            Condition("SecretNotOwned", "plain-taken"),
        ),
    ]
}

#[tokio::test]
async fn hostile_resources_are_refused_or_explained_and_neighbours_keep_rotating() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "hostile").await;
    let files = OperatorFiles::new();
    let mut op = start_in(&files, &ns.name, &[]);
    // An immutable Secret of another type, in the way of one target; its owner opted in to the take-over,
    // so the apiserver's refusal is what stops it.
    let taken: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "immutable-taken", "annotations": {"secretrotator.dev/adopt": "true"}},
        "type": "kubernetes.io/basic-auth", "immutable": true,
        "stringData": {"username": "u", "password": "p"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), &ns.name)
        .create(&PostParams::default(), &taken)
        .await
        .unwrap();
    // Someone else's Secret, whose owner did not opt in: the operator writes nothing.
    let plain: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain-taken"},
        "stringData": {"value": "theirs"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(c.clone(), &ns.name)
        .create(&PostParams::default(), &plain)
        .await
        .unwrap();
    apply_sr(
        &c,
        &ns.name,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: neighbour\nspec:\n  rotation: {period: 2s}\n",
    )
    .await;

    let ar = ApiResource::erase::<SecretRotation>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(c.clone(), &ns.name, &ar);
    let cases = cases();
    assert!(cases.len() >= 20);
    let mut accepted = Vec::new();
    for (name, spec, annotations, expect) in &cases {
        let mut meta = json!({"name": name});
        if let Some(a) = annotations {
            meta["annotations"] = a.clone();
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "secretrotator.dev/v1alpha1", "kind": "SecretRotation",
            "metadata": meta, "spec": spec,
        }))
        .unwrap();
        let r = api.create(&PostParams::default(), &obj).await;
        match (expect, r) {
            (Refused(field), Err(kube::Error::Api(e))) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(
                    e.message.contains(field),
                    "{name}: refused, but the message does not name {field}: {}",
                    e.message.chars().take(400).collect::<String>()
                );
            }
            (Refused(_), Ok(_)) => panic!("{name}: the schema accepted it"),
            (Condition(..), Ok(_)) => accepted.push(*name),
            (_, r) => panic!("{name}: unexpected outcome {:?}", r.err()),
        }
    }

    for (name, _, _, expect) in &cases {
        let Condition(reason, needle) = expect else {
            continue;
        };
        let sr = wait_ready(&c, &ns.name, name, "False", reason, 60).await;
        let msg = &sr.status.as_ref().unwrap().conditions[0].message;
        assert!(
            msg.contains(needle),
            "{name}: {reason} but the message does not name {needle}: {msg}"
        );
        assert!(msg.len() <= 1024, "{name}: an unbounded message");
    }

    // A status edited by hand to numbers the operator could not read is refused by the schema, so the
    // watch never carries an object that fails to deserialize.
    for bad in [json!(5_000_000_000u64), json!(-1)] {
        let r = api
            .patch_status(
                "neighbour",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": {"failedAttempts": bad}})),
            )
            .await;
        match r {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{e:?}");
                assert!(e.message.contains("failedAttempts"), "{}", e.message);
            }
            other => panic!(
                "status.failedAttempts = {bad} was accepted: {:?}",
                other.map(|_| ())
            ),
        }
    }

    // The neighbour kept rotating, the operator is alive and recorded no reconcile errors.
    let before = get_sr(&c, &ns.name, "neighbour")
        .await
        .status
        .unwrap()
        .version_id
        .unwrap();
    let n: u32 = before.trim_start_matches('v').parse().unwrap();
    wait_version(&c, &ns.name, "neighbour", &format!("v{}", n + 2), 30).await;
    assert!(op.alive(), "the operator exited:\n{}", op.log_text());
    let metrics = op.metrics_text().await;
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("secret_rotator_reconcile_errors_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();
    assert_eq!(errors, 0.0, "reconcile errors:\n{metrics}");
    // A refused Secret is not retried in a loop: one refusal per resource in the log so far.
    let log = op.log_text();
    for name in ["oversized-secret", "immutable-taken"] {
        let refusals = log
            .lines()
            .filter(|l| l.contains("synced Secret refused") && l.contains(name))
            .count();
        assert!(
            (1..=2).contains(&refusals),
            "{name}: {refusals} refusals logged"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
    eprintln!(
        "{} hostile resources: {} refused by the schema, {} given a condition",
        cases.len(),
        cases.len() - accepted.len(),
        accepted.len()
    );
    op.stop();
}
