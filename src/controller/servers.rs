//! The database servers as the reconcile reads them: ClusterDatabaseServers and DatabaseServers from
//! watches, looked up by a SecretRotation's `serverRef`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use tokio::sync::watch;
use tracing::warn;

use crate::api::{ClusterDatabaseServer, DatabaseServer, ServerKind, ServerRef};
use crate::validation::server::{InvalidServer, Server};

/// The servers, once both watches have listed.
#[derive(Clone)]
pub struct ServerCache {
    cluster: reflector::Store<ClusterDatabaseServer>,
    namespaced: reflector::Store<DatabaseServer>,
    listed: watch::Receiver<(bool, bool)>,
}

/// Fills a [`ServerCache`]: the writers go to the watches, `listed` is told when each has listed.
pub struct ServerCacheWriter {
    /// ClusterDatabaseServers.
    pub cluster: Writer<ClusterDatabaseServer>,
    /// DatabaseServers.
    pub namespaced: Writer<DatabaseServer>,
    /// `(cluster listed, namespaced listed)`.
    pub listed: watch::Sender<(bool, bool)>,
}

/// An empty cache and its writer.
pub fn server_cache() -> (ServerCache, ServerCacheWriter) {
    let (cluster, cw) = reflector::store();
    let (namespaced, nw) = reflector::store();
    let (tx, rx) = watch::channel((false, false));
    (
        ServerCache {
            cluster,
            namespaced,
            listed: rx,
        },
        ServerCacheWriter {
            cluster: cw,
            namespaced: nw,
            listed: tx,
        },
    )
}

impl ServerCache {
    /// The server `r` names for a resource in `namespace`: none when there is no such object.
    pub async fn get(
        &self,
        r: &ServerRef,
        namespace: &str,
    ) -> Option<Result<Server, InvalidServer>> {
        let mut listed = self.listed.clone();
        let _ = listed.wait_for(|(c, n)| *c && *n).await;
        match r.kind {
            ServerKind::ClusterDatabaseServer => self
                .cluster
                .get(&ObjectRef::new(&r.name))
                .map(|s| Server::of_cluster(&s)),
            ServerKind::DatabaseServer => self
                .namespaced
                .get(&ObjectRef::new(&r.name).within(namespace))
                .map(|s| Server::of_namespaced(&s)),
        }
    }

    /// Every ClusterDatabaseServer and DatabaseServer, for the mapping from a server to its resources.
    pub fn cluster_names(&self) -> Vec<String> {
        self.cluster
            .state()
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect()
    }
}

/// The labels of `namespace`, for servers that allow namespaces by selector. Unreadable: none (so a
/// selector matches nothing), with a warning.
pub async fn namespace_labels(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_metadata_opt(namespace).await {
        Ok(Some(ns)) => ns.metadata.labels.unwrap_or_default(),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            warn!(%namespace, error = %e, "reading the namespace's labels failed; no server selector matches it");
            BTreeMap::new()
        }
    }
}
