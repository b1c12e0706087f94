//! The store as one reconcile sees it: one store secret in one project, every call timed into the store
//! latency histogram. The steps get this handle instead of the whole context.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::controller::Context;
use crate::metrics::{Metrics, OperationLabel};
use crate::validation::ValidatedSpec;
use secret_rotator_store::model::*;
use secret_rotator_store::{RotateOptions, Store, StoreResult};

/// One store secret of one project.
pub struct ScopedStore<'a> {
    store: &'a dyn Store,
    metrics: &'a Metrics,
    /// The CSMS project: the spec's, or the operator's default.
    pub project: String,
    /// The store secret's name.
    pub name: &'a str,
    /// Whether the store changes database passwords itself (embedded) or a CSMS rotation function does.
    pub changes_databases: bool,
}

impl<'a> ScopedStore<'a> {
    /// The handle for `spec`'s store secret.
    pub fn new(ctx: &'a Context, spec: &'a ValidatedSpec) -> ScopedStore<'a> {
        ScopedStore {
            store: ctx.store.as_ref(),
            metrics: &ctx.metrics,
            project: spec.project.clone().unwrap_or_else(|| ctx.project.clone()),
            name: spec.store_secret.as_str(),
            changes_databases: ctx.store.changes_databases(),
        }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Instant::now();
        let r = f.instrument(tracing::debug_span!("store", operation)).await;
        self.metrics
            .store_latency
            .get_or_create(&OperationLabel { operation })
            .observe(start.elapsed().as_secs_f64());
        r
    }

    /// The version at `stage`.
    pub async fn version_at(&self, stage: &str) -> StoreResult<Version> {
        let read = self
            .store
            .show_version_by_stage(&self.project, self.name, stage);
        self.timed("show_version", read).await
    }

    /// The secret's metadata.
    pub async fn secret(&self) -> StoreResult<Secret> {
        self.timed(
            "show_secret",
            self.store.show_secret(&self.project, self.name),
        )
        .await
    }

    /// Changes the secret's description (the ownership claim lives there).
    pub async fn describe(&self, description: String) -> StoreResult<Secret> {
        let req = UpdateSecret {
            description: Some(description),
            ..UpdateSecret::default()
        };
        self.timed(
            "update_secret",
            self.store.update_secret(&self.project, self.name, req),
        )
        .await
    }

    /// Creates the secret.
    pub async fn create(&self, req: CreateSecret) -> StoreResult<Secret> {
        self.timed(
            "create_secret",
            self.store.create_secret(&self.project, req),
        )
        .await
    }

    /// RotateSecret.
    pub async fn rotate(&self, opts: RotateOptions) -> StoreResult<RotateResult> {
        self.timed("rotate", self.store.rotate(&self.project, self.name, opts))
            .await
    }

    /// CreateSecretVersion (a COMMON rotation).
    pub async fn create_version(&self, req: CreateVersion) -> StoreResult<VersionMetadata> {
        self.timed(
            "create_version",
            self.store.create_version(&self.project, self.name, req),
        )
        .await
    }

    /// Moves SYSCURRENT back to `version`.
    pub async fn rollback(&self, version: &str, opts: RotateOptions) -> StoreResult<RotateResult> {
        self.timed(
            "rollback",
            self.store.rollback(&self.project, self.name, version, opts),
        )
        .await
    }

    /// The newest versions, at most `limit`.
    pub async fn versions(&self, limit: u32) -> StoreResult<VersionPage> {
        let read = self
            .store
            .list_versions(&self.project, self.name, Some(limit), None);
        self.timed("list_versions", read).await
    }

    /// The task that produced the current version: the newest successful one.
    pub async fn latest_task(&self) -> StoreResult<Option<String>> {
        let filter = TaskFilter {
            secret_name: Some(self.name.to_owned()),
            status: Some(TaskStatus::Success),
            limit: Some(1),
            ..TaskFilter::default()
        };
        let page = self
            .timed("list_tasks", self.store.list_tasks(&self.project, filter))
            .await?;
        Ok(page.tasks.into_iter().next().map(|t| t.task_id))
    }
}
