//! The embedded store: CSMS semantics in one redb file, every value under envelope encryption.
//!
//! Every state change is one redb write transaction (durable at commit). A database rotation spans three
//! of them around the database calls: (1) the pending version and its PROCESSING task, (2) the database
//! sets and tests the password, (3) SYSCURRENT moves and the task becomes SUCCESS. A crash between them
//! leaves SYSPENDING in place, and the next rotate resumes it with the same value.

pub mod crypto;
pub mod deletion;
mod file;
mod keys;
mod record_mac;
mod records;
mod records_io;
mod rollback;
mod rotation;
mod rules;
mod secrets;
mod tasks;

use crate::changer::RotateOptions;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tracing::{debug, info, warn};

use crate::error::{StoreError, codes};
use crate::model::*;
use crate::{SecretName, Store, StoreResult, now_ms};
use crypto::{Binding, MasterKey};
use keys::*;
use records::{SecretRecord, StageRecord, VersionRecord};
use rules::*;
use secret_rotator_core::password::PasswordPolicy;
use secret_rotator_core::secret_value::SecretValue;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// Deprecated (stage-less) versions kept per secret by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// Options of [`EmbeddedStore::open`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Deprecated versions kept per secret; older ones are pruned.
    pub history_limit: usize,
    /// Bytes of the engine's page cache. redb's own default is 1 GiB, which a store of 10,000 secrets
    /// fills with pages it rarely reads again (a reconcile reads one secret); the operating system's
    /// page cache holds the file as well.
    pub cache_bytes: usize,
    /// Commits without waiting for the disk. Only for benchmarks that fill a store with generated
    /// secrets (a crash loses what was written since the last durable commit); no flag reaches it.
    #[doc(hidden)]
    pub bulk_load: bool,
}

/// The engine's page cache by default: 8 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_limit: DEFAULT_HISTORY_LIMIT,
            cache_bytes: DEFAULT_CACHE_BYTES,
            bulk_load: false,
        }
    }
}

struct Inner {
    db: Db,
    key: MasterKey,
    /// Authenticates secret records ([`record_mac`]).
    record_key: zeroize::Zeroizing<Vec<u8>>,
    path: PathBuf,
    history_limit: usize,
    rotating: Mutex<HashSet<String>>,
}

/// The redb database, closed under `catch_unwind`: redb asserts on some damaged files while it closes them
/// (its allocator state is rewritten at close), and a store must not take the process down on drop.
struct Db(Option<Database>, bool);

/// Why the database could not start a transaction.
#[derive(Debug, thiserror::Error)]
enum DbError {
    #[error(transparent)]
    Transaction(#[from] redb::TransactionError),
    #[error("the store is closed")]
    Closed,
    #[error(transparent)]
    Durability(#[from] redb::SetDurabilityError),
}

impl Db {
    fn begin_write(&self) -> Result<WriteTransaction, DbError> {
        let mut txn = self.0.as_ref().ok_or(DbError::Closed)?.begin_write()?;
        if self.1 {
            txn.set_durability(redb::Durability::None)?;
        }
        Ok(txn)
    }

    fn begin_read(&self) -> Result<redb::ReadTransaction, DbError> {
        Ok(self.0.as_ref().ok_or(DbError::Closed)?.begin_read()?)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // After a bulk load, one durable commit makes everything before it durable.
        if self.1
            && let Some(db) = self.0.as_ref()
        {
            let done = db
                .begin_write()
                .map_err(|e| e.to_string())
                .and_then(|t| t.commit().map_err(|e| e.to_string()));
            if let Err(e) = done {
                warn!(error = %e, "the last commit of a bulk load failed");
            }
        }
        if let Some(db) = self.0.take()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db))).is_err()
        {
            warn!("the storage engine failed while closing the store file; it may be damaged");
        }
    }
}

/// The embedded, encrypted store.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("key", &self.inner.key)
            .finish()
    }
}
impl EmbeddedStore {
    /// The id of the master key in use.
    pub fn key_id(&self) -> String {
        self.inner.key.key_id()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::internal("a store task", e))?
    }
}

trait Ctx<T> {
    fn ctx(self, operation: &str) -> StoreResult<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, operation: &str) -> StoreResult<T> {
        self.map_err(|e| StoreError::internal(operation, e))
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
        let project = project.to_owned();
        self.blocking(move |i| i.create_secret(&project, req)).await
    }

    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        self.inner.show_secret(project, name)
    }

    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let (project, marker) = (project.to_owned(), marker.map(str::to_owned));
        self.blocking(move |i| i.list_secrets(&project, limit, marker.as_deref()))
            .await
    }

    async fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.update_secret(&project, &name, req))
            .await
    }

    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.delete_secret(&project, &name))
            .await
    }

    async fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.create_version(&project, &name, req))
            .await
    }

    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        // Reads are short and never wait for a commit: they run inline.
        self.inner.show_version(project, name, version_id)
    }

    async fn show_version_by_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
    ) -> StoreResult<Version> {
        self.inner.show_version_by_stage(project, name, stage)
    }

    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let (project, name, marker) = (
            project.to_owned(),
            name.to_owned(),
            marker.map(str::to_owned),
        );
        self.blocking(move |i| i.list_versions(&project, &name, limit, marker.as_deref()))
            .await
    }

    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        self.inner.show_stage(project, name, stage)
    }

    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        let (project, name, stage, id) = (
            project.to_owned(),
            name.to_owned(),
            stage.to_owned(),
            version_id.to_owned(),
        );
        self.blocking(move |i| i.update_stage(&project, &name, &stage, &id))
            .await
    }

    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        let (project, name, stage) = (project.to_owned(), name.to_owned(), stage.to_owned());
        self.blocking(move |i| i.delete_stage(&project, &name, &stage))
            .await
    }

    async fn rotate(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        self.rotate_secret(project, name, opts).await
    }

    async fn start_rotation(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        self.start_rotation_in_background(project, name, opts).await
    }

    async fn schedule_deletion(
        &self,
        project: &str,
        name: &str,
        recovery_window_in_days: Option<i64>,
    ) -> StoreResult<Secret> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| {
            i.schedule_deletion(&project, &name, recovery_window_in_days, now_ms())
        })
        .await
    }

    async fn restore_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.restore_secret(&project, &name, now_ms()))
            .await
    }

    async fn purge_scheduled_deletions(&self) -> StoreResult<usize> {
        self.blocking(|i| i.purge_due_deletions(now_ms())).await
    }

    async fn rollback(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        self.rollback_secret(project, name, version_id, opts).await
    }

    async fn list_tasks(&self, project: &str, filter: TaskFilter) -> StoreResult<TaskPage> {
        let project = project.to_owned();
        self.blocking(move |i| i.list_tasks(&project, &filter))
            .await
    }
}

#[cfg(test)]
mod tests;
