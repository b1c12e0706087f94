//! Control plane faults during rotations: the kube-apiserver stopped for 20 seconds, and etcd
//! restarted. Each test has a control plane of its own, which it stops in part with
//! `scripts/testenv stop|start`. The operator runs with leader election, as the chart deploys it.
//!
//! Checked: the operator process recovers by itself (it is never restarted here), every resource rotates
//! again after the fault, status and synced Secrets converge on the store, and no due time rotates twice:
//! in the store, consecutive versions of a secret are at least one period apart.

use std::time::{Duration, Instant};

use crate::support::operator::*;
use crate::support::*;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use secret_rotator::api::{ANNOTATION_VERSION_ID, SecretRotation};
use secret_rotator_store::{SYSCURRENT, Store};

const RESOURCES: usize = 6;
const PERIOD_SECS: i64 = 8;

fn sr_yaml(name: &str) -> String {
    Common {
        name,
        period: &format!("{PERIOD_SECS}s"),
        extra: "",
    }
    .yaml()
}

fn names() -> Vec<String> {
    (0..RESOURCES).map(|i| format!("fault-{i}")).collect()
}

async fn namespace(c: &Client) -> String {
    let name = format!("faults-{:08x}", rand::random::<u32>());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .unwrap();
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

/// Version ids of each resource's status, when all are Ready.
async fn all_ready(c: &Client, ns: &str, secs: u64, op: &Operator) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = ready_versions(c, ns).await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for all resources Ready; operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready_versions(c: &Client, ns: &str) -> Option<Vec<String>> {
    {
        let list = Api::<SecretRotation>::namespaced(c.clone(), ns)
            .list(&Default::default())
            .await
            .ok()?;
        let mut out = Vec::new();
        for n in names() {
            let sr = list.items.iter().find(|s| s.name_any() == n)?;
            let st = sr.status.as_ref()?;
            let ready = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if !ready {
                return None;
            }
            out.push(st.version_id.clone()?);
        }
        Some(out)
    }
}

/// Runs one fault: resources rotating every PERIOD_SECS, `fault` applied, then the checks.
async fn survive(what: &str, fault: impl AsyncFnOnce(&ControlPlane)) {
    let cp = start_control_plane();
    let c = client_for(&cp.kubeconfig).await;
    install_crd(&c).await;
    let ns = namespace(&c).await;
    let files = OperatorFiles::new();
    let mut op = Operator::start(&cp.kubeconfig, &files, &ns, &[], &[]);
    for n in names() {
        apply_sr(&c, &ns, &sr_yaml(&n)).await;
    }
    all_ready(&c, &ns, 60, &op).await;
    // Let a round of scheduled rotations start, then break the control plane mid-stream.
    tokio::time::sleep(Duration::from_secs(PERIOD_SECS as u64 + 2)).await;
    let fault_start = Instant::now();
    fault(&cp).await;
    let fault_took = fault_start.elapsed();
    eprintln!("{what}: fault over after {fault_took:?}");

    // Recovery: the same operator process, every resource rotated at least twice more and Ready.
    let after: Vec<String> = all_ready(&c, &ns, 120, &op).await;
    let target: Vec<u32> = after
        .iter()
        .map(|v| v.trim_start_matches('v').parse::<u32>().unwrap() + 2)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = ready_versions(&c, &ns).await.unwrap_or_default();
        let done = now.len() == target.len()
            && now
                .iter()
                .zip(&target)
                .all(|(v, t)| v.trim_start_matches('v').parse::<u32>().unwrap() >= *t);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not every resource rotated twice more within 120 s after the fault (at {now:?}, want {target:?}); operator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        op.alive(),
        "{what}: the operator exited instead of recovering:\n{}",
        op.log_text()
    );

    // Converged: stop the operator between rotations and compare status, Secret and store.
    op.stop();
    let store = files.open_store();
    let srs = Api::<SecretRotation>::namespaced(c.clone(), &ns);
    for n in names() {
        let store_name = format!("{ns}.{n}");
        let current = store
            .show_version_by_stage("default", &store_name, SYSCURRENT)
            .await
            .unwrap();
        let id = current.version_metadata.id.clone();
        let status = srs.get(&n).await.unwrap().status.unwrap();
        let secret = get_secret(&c, &ns, &n).await.unwrap();
        let annotated = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_VERSION_ID))
            .cloned();
        // A rotation may have landed after the last status write (the operator was stopped between the
        // store write and the status write): then status and Secret still name the version before it.
        let ok = |v: Option<&str>| {
            v == Some(id.as_str()) || {
                let prev = format!(
                    "v{}",
                    id.trim_start_matches('v').parse::<u32>().unwrap() - 1
                );
                v == Some(prev.as_str())
            }
        };
        assert!(
            ok(status.version_id.as_deref()) && ok(annotated.as_deref()),
            "{what}: {n}: store at {id}, status at {:?}, Secret at {annotated:?}",
            status.version_id
        );
        // No due time rotated twice: consecutive versions are a whole period apart.
        let page = store
            .list_versions("default", &store_name, Some(100), None)
            .await
            .unwrap();
        let mut times: Vec<(String, i64)> = page
            .version_metadatas
            .iter()
            .map(|v| (v.id.clone(), v.create_time))
            .collect();
        times.sort_by_key(|(_, t)| *t);
        for w in times.windows(2) {
            let gap = w[1].1 - w[0].1;
            assert!(
                gap >= PERIOD_SECS * 1000,
                "{what}: {n}: {} came {gap} ms after {}, inside one period: a due time rotated twice",
                w[1].0,
                w[0].0
            );
        }
    }
    let log = op.log_text();
    eprintln!(
        "{what}: checked {RESOURCES} resources; the operator log has {} lines, {} lease losses",
        log.lines().count(),
        log.matches("rejoining the election").count()
    );
}

#[tokio::test]
async fn kube_apiserver_stopped_for_20_seconds() {
    survive("kube-apiserver down 20 s", async |cp: &ControlPlane| {
        cp.component("stop", "kube-apiserver");
        tokio::time::sleep(Duration::from_secs(20)).await;
        cp.component("start", "kube-apiserver");
    })
    .await;
}

#[tokio::test]
async fn etcd_restarted() {
    survive("etcd restarted", async |cp: &ControlPlane| {
        cp.component("stop", "etcd");
        tokio::time::sleep(Duration::from_secs(5)).await;
        cp.component("start", "etcd");
    })
    .await;
}
