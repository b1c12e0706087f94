//! Restarts of workloads after a rotation: the pod template gets `secretrotator.dev/restarted-at`, as
//! `kubectl rollout restart` does with its own annotation.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::api::{ANNOTATION_RESTARTED_AT, FIELD_MANAGER, RestartKind};

/// Outcome of one restart.
#[derive(Debug)]
pub enum Restarted {
    /// Patched.
    Done,
    /// The workload does not exist.
    Missing,
}

/// Sets the restart annotation on one workload's pod template.
pub async fn restart(
    client: &Client,
    namespace: &str,
    kind: RestartKind,
    name: &str,
    at: &str,
) -> Result<Restarted, kube::Error> {
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {ANNOTATION_RESTARTED_AT: at}}}}
    });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let result = match kind {
        RestartKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        RestartKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        RestartKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .patch(name, &pp, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => Ok(Restarted::Done),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Restarted::Missing),
        Err(e) => Err(e),
    }
}
