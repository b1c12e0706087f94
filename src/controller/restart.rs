//! Restarts of workloads after a rotation: the pod template of a Deployment, StatefulSet or DaemonSet gets
//! `secretrotator.dev/restarted-at` (as `kubectl rollout restart` does with its own annotation); an Argo
//! Rollout gets `spec.restartAt`, which its controller honours by replacing older pods. A selector picks
//! the workloads of a kind by their labels, reading only their metadata.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

use crate::api::{ANNOTATION_RESTARTED_AT, FIELD_MANAGER, RestartKind};
use crate::validation::restarts::MAX_SELECTOR_MATCHES;

/// Outcome of one restart.
#[derive(Debug)]
pub enum Restarted {
    /// Patched.
    Done,
    /// The workload does not exist.
    Missing,
}

/// Why workloads could not be found or restarted.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// The apiserver refused or failed.
    #[error("{action} {kind:?} in {namespace}: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The kind.
        kind: RestartKind,
        /// The namespace.
        namespace: String,
        /// The apiserver's error.
        source: kube::Error,
    },
    /// A selector matched more workloads than allowed.
    #[error(
        "the selector {selector} matches more than {max} {kind:?}s in {namespace}; nothing was restarted: narrow it"
    )]
    TooMany {
        /// The kind.
        kind: RestartKind,
        /// The selector.
        selector: String,
        /// The namespace.
        namespace: String,
        /// The bound.
        max: usize,
    },
}

/// The API of Argo Rollouts' Rollout (argoproj.io/v1alpha1), whose CRD the cluster may not have.
fn rollouts() -> ApiResource {
    ApiResource {
        group: "argoproj.io".into(),
        version: "v1alpha1".into(),
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        plural: "rollouts".into(),
    }
}

fn dynamic(client: &Client, namespace: &str, kind: RestartKind) -> Api<DynamicObject> {
    let ar = match kind {
        RestartKind::Deployment => ApiResource::erase::<Deployment>(&()),
        RestartKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        RestartKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        RestartKind::Rollout => rollouts(),
    };
    Api::namespaced_with(client.clone(), namespace, &ar)
}

/// The names of the workloads of `kind` in `namespace` whose labels match `selector` (metadata only),
/// sorted; more than [`MAX_SELECTOR_MATCHES`] is an error.
pub async fn matching(
    client: &Client,
    namespace: &str,
    kind: RestartKind,
    selector: &str,
) -> Result<Vec<String>, RestartError> {
    let lp = ListParams::default()
        .labels(selector)
        .limit((MAX_SELECTOR_MATCHES + 1) as u32);
    let list = match dynamic(client, namespace, kind).list_metadata(&lp).await {
        Ok(l) => l,
        // No Rollout CRD in the cluster: nothing matches.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(source) => {
            return Err(RestartError::Kube {
                action: "listing",
                kind,
                namespace: namespace.to_owned(),
                source,
            });
        }
    };
    if list.items.len() > MAX_SELECTOR_MATCHES
        || list.metadata.continue_.is_some_and(|c| !c.is_empty())
    {
        return Err(RestartError::TooMany {
            kind,
            selector: selector.to_owned(),
            namespace: namespace.to_owned(),
            max: MAX_SELECTOR_MATCHES,
        });
    }
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Restarts one workload: the pod template's annotation, or a Rollout's `spec.restartAt` (`at` is RFC 3339
/// in whole seconds, which a Rollout's `metav1.Time` field takes).
pub async fn restart(
    client: &Client,
    namespace: &str,
    kind: RestartKind,
    name: &str,
    at: &str,
) -> Result<Restarted, RestartError> {
    let patch = match kind {
        RestartKind::Rollout => serde_json::json!({"spec": {"restartAt": at}}),
        _ => serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {ANNOTATION_RESTARTED_AT: at}}}}
        }),
    };
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    match dynamic(client, namespace, kind)
        .patch(name, &pp, &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Restarted::Done),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Restarted::Missing),
        Err(source) => Err(RestartError::Kube {
            action: "patching",
            kind,
            namespace: namespace.to_owned(),
            source,
        }),
    }
}
