//! The one `Store` trait the operator and the API server talk to, with CSMS semantics; its
//! implementations: `embedded` (an encrypted file) and `csms` (Huawei Cloud CSMS over HTTP); the CSMS wire
//! protocol both sides of HTTP share; and the database password changers a rotation drives.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod changer;
pub mod csms;
pub mod database;
pub mod embedded;
pub mod error;
pub mod model;
pub mod protocol;
pub mod tls;

use async_trait::async_trait;

pub use changer::RotateOptions;
pub use error::StoreError;
pub use model::*;
pub use secret_rotator_core::names::SecretName;

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// The CSMS operations the operator and the API server need. Every method names its project.
#[async_trait]
pub trait Store: Send + Sync {
    /// Creates a secret and its first version `v1` (SYSCURRENT).
    async fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret>;
    /// A secret's metadata.
    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret>;
    /// Secrets by name, `limit` (default 50) after `marker` (a secret name).
    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage>;
    /// Changes a secret's metadata.
    async fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret>;
    /// Deletes a secret with all its versions.
    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()>;
    /// Adds a version; its stages (default SYSCURRENT) move to it.
    async fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata>;
    /// A version with its value, by id (`v3`) or `latest`.
    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version>;
    /// Versions, newest first, `limit` (default 50) after `marker` (a version id).
    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage>;
    /// A stage.
    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage>;
    /// Points a stage at a version (SYSCURRENT moving sends the old one to SYSPREVIOUS).
    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage>;
    /// Removes a stage (SYSCURRENT cannot be removed).
    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()>;
    /// Whether [`Store::rotate`] changes the database itself through [`RotateOptions::target`] (the
    /// embedded store), rather than the service doing it through its own rotation function (CSMS). The
    /// operator reads the administrator's credentials only for a store that uses them.
    fn changes_databases(&self) -> bool {
        true
    }

    /// RotateSecret: database secrets only (COMMON is refused). Returns once the rotation has finished:
    /// SUCCESS, or an error (a failed database step is [`StoreError::RotationFailed`], its task FAILED).
    async fn rotate(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult>;

    /// RotateSecret as the real service runs it: the rotation is started (the embedded store: its pending
    /// version and PROCESSING task written durably) and the answer names its task at once, with the version
    /// that becomes SYSCURRENT when it succeeds; the database steps run in the background and the task
    /// becomes SUCCESS or FAILED (ListSecretTask). Errors found before anything starts (COMMON, disabled,
    /// scheduled for deletion, a rotation already running) are returned. This default, for a store that
    /// cannot run a rotation in the background, runs it to the end first.
    async fn start_rotation(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        self.rotate(project, name, opts).await
    }

    /// DeleteSecretForSchedule: the secret becomes PENDING_DELETE, unusable, and is deleted once
    /// `recovery_window_in_days` (7 to 30, default 30) have passed, unless restored before.
    async fn schedule_deletion(
        &self,
        project: &str,
        name: &str,
        recovery_window_in_days: Option<i64>,
    ) -> StoreResult<Secret>;

    /// RestoreSecret: cancels a scheduled deletion; the secret is ENABLED again.
    async fn restore_secret(&self, project: &str, name: &str) -> StoreResult<Secret>;

    /// Deletes the secrets whose scheduled deletion time has passed; returns how many. A store whose
    /// service deletes them itself (CSMS) has nothing to do.
    async fn purge_scheduled_deletions(&self) -> StoreResult<usize> {
        Ok(0)
    }
    /// Moves SYSCURRENT back to `version_id`, an earlier version the store still holds. The embedded store
    /// records it as a ROLLBACK task and, for a database secret, sets that version's password on the
    /// database through the rotation's steps. This default (the csms backend) moves the stage of a COMMON
    /// secret and refuses a database secret, whose password only the service's rotation function changes.
    async fn rollback(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
        _opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        let secret = self.show_secret(project, name).await?;
        if secret.secret_type != "COMMON" {
            return Err(StoreError::invalid(
                "secret_type",
                format!(
                    "{name} is a {} secret: through the csms backend only COMMON secrets roll back (CSMS changes database passwords through its own rotation function)",
                    secret.secret_type
                ),
            ));
        }
        self.update_stage(project, name, model::SYSCURRENT, version_id)
            .await?;
        Ok(RotateResult {
            version_id: version_id.to_owned(),
            secret_name: name.to_owned(),
            rotation_task_id: String::new(),
        })
    }

    /// Rotation tasks, newest first.
    async fn list_tasks(&self, project: &str, filter: TaskFilter) -> StoreResult<TaskPage>;

    /// The version a stage points at, with its value.
    async fn show_version_by_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
    ) -> StoreResult<Version> {
        let s = self.show_stage(project, name, stage).await?;
        self.show_version(project, name, &s.version_id).await
    }

    /// One task by id.
    async fn show_task(&self, project: &str, task_id: &str) -> StoreResult<RotationTask> {
        let page = self
            .list_tasks(
                project,
                TaskFilter {
                    task_id: Some(task_id.to_owned()),
                    ..TaskFilter::default()
                },
            )
            .await?;
        page.tasks
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound {
                kind: "task",
                name: task_id.to_owned(),
            })
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}
