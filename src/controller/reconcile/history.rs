//! History: the versions the store holds, for the status (bounded), read only when SYSCURRENT changed, so
//! a steady reconcile makes no store call for it.

use tracing::warn;

use super::Run;
use super::act::Acted;
use super::scoped::ScopedStore;
use crate::api::VersionStatus;
use crate::controller::status::{from_millis, seconds};

/// The most versions the status lists.
pub const MAX_VERSIONS: u32 = 20;

/// The versions to put in the status, or `None` to keep the ones it has.
pub async fn versions(
    run: &Run<'_>,
    store: &ScopedStore<'_>,
    acted: &Acted,
) -> Option<Vec<VersionStatus>> {
    let (id, _) = acted.current.version()?;
    let stale = acted.moved()
        || run.previous.versions.is_empty()
        || run.previous.version_id.as_deref() != Some(id);
    if !stale {
        return None;
    }
    match store.versions(MAX_VERSIONS).await {
        Ok(page) => Some(
            page.version_metadatas
                .into_iter()
                .take(MAX_VERSIONS as usize)
                .map(|v| VersionStatus {
                    version_id: v.id,
                    created: seconds(from_millis(v.create_time)),
                    stages: v.version_stages.into_iter().take(16).collect(),
                })
                .collect(),
        ),
        Err(e) => {
            // The history is for people and the plugin; a store hiccup here is not the reconcile's failure.
            warn!(secret = %store.name, error = %e, "listing versions failed; the status keeps its list");
            None
        }
    }
}
