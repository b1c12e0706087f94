//! The `csms` store: Huawei Cloud CSMS (or `secret-rotator serve`) over its REST API.
//!
//! Requests time out; connection errors, timeouts, 429, 500, 502, 503 and 504 are retried with capped
//! exponential backoff and full jitter; other 4xx answers are final (a 401 to an IAM token drops the token
//! and tries once more with a new one). Calls that are not idempotent are made safe to retry: after an
//! ambiguous failure a rotation looks for the task it may have started, a new version is recognised by its
//! value, and a secret by its name. A rotation whose task is still PROCESSING is polled until SUCCESS or
//! FAILED.
//!
//! Answers are read as the real service gives them, which is often less than the SDK models list (see
//! [`crate::model`]): what the operator needs and the answer leaves out is read back (the version a
//! rotation made, the task a RotateSecret answer does not name, a version's creation time), and the rest
//! takes its default. Error answers: see [`route`].

pub mod auth;
mod client;
mod convert;
mod route;
mod tasks;

use crate::changer::RotateOptions;

use async_trait::async_trait;
use reqwest::Method;
use tracing::warn;

use crate::model::*;
use crate::protocol::wire::*;
use crate::{Store, StoreError, StoreResult, now_ms};
pub use auth::CsmsAuth;
pub use client::{CsmsOptions, CsmsStore};
use convert::*;
use route::Route;

#[async_trait]
impl Store for CsmsStore {
    async fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
        let body = json(&CreateSecretBody {
            name: req.name.clone(),
            kms_key_id: req.kms_key_id,
            description: req.description,
            secret_binary: wire_binary(&req.secret_binary),
            secret_string: wire_string(&req.secret_string),
            secret_type: req.secret_type,
            auto_rotation: req.auto_rotation,
            rotation_period: req.rotation_period,
            rotation_config: req.rotation_config,
            event_subscriptions: (!req.event_subscriptions.is_empty())
                .then_some(req.event_subscriptions),
            enterprise_project_id: req.enterprise_project_id,
            rotation_func_urn: req.rotation_func_urn,
        })?;
        let name = req.name.clone();
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            let name = name.clone();
            Box::pin(async move {
                self.show_secret(project, &name)
                    .await
                    .ok()
                    .map(|secret| SecretBody { secret })
            })
        };
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::project(project, "secrets"),
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            // Created, but the answer does not say what: read it back.
            return self.show_secret(project, &name).await;
        }
        Ok(with_name(b.secret, &name))
    }

    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let b: SecretBody = self
            .call(
                project,
                Method::GET,
                &Route::secret(project, name),
                &[],
                None,
                true,
                None,
            )
            .await?;
        if b.secret == Secret::default() {
            return Err(StoreError::internal(
                format!("reading secret {name}"),
                "the answer holds no secret",
            ));
        }
        Ok(with_name(b.secret, name))
    }

    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let q = paging(limit, marker);
        let b: SecretsBody = self
            .call(
                project,
                Method::GET,
                &Route::project(project, "secrets"),
                &q,
                None,
                true,
                None,
            )
            .await?;
        Ok(SecretPage {
            secrets: b.secrets,
            page_info: b.page_info,
        })
    }

    async fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret> {
        let body = json(&UpdateSecretBody {
            kms_key_id: req.kms_key_id,
            description: req.description,
            auto_rotation: req.auto_rotation,
            rotation_period: req.rotation_period,
            event_subscriptions: req.event_subscriptions,
            rotation_func_urn: req.rotation_func_urn,
            state: req.state,
        })?;
        let b: SecretBody = self
            .call(
                project,
                Method::PUT,
                &Route::secret(project, name),
                &[],
                Some(body),
                true,
                None,
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
    }

    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let _: serde_json::Value = self
            .call(
                project,
                Method::DELETE,
                &Route::secret(project, name),
                &[],
                None,
                true,
                None,
            )
            .await?;
        Ok(())
    }

    /// DeleteSecretForSchedule. After an ambiguous failure, a secret found PENDING_DELETE means it went
    /// through.
    async fn schedule_deletion(
        &self,
        project: &str,
        name: &str,
        recovery_window_in_days: Option<i64>,
    ) -> StoreResult<Secret> {
        let body = json(&ScheduleDeletionBody {
            recovery_window_in_days,
        })?;
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            Box::pin(async move {
                self.show_secret(project, name)
                    .await
                    .ok()
                    .filter(|s| s.state == SecretState::PendingDelete)
                    .map(|secret| SecretBody { secret })
            })
        };
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "scheduled-deleted-tasks/create"),
                &[],
                Some(body),
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
    }

    /// RestoreSecret. After an ambiguous failure, a secret found in another state than PENDING_DELETE
    /// means it went through.
    async fn restore_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let check = || -> futures::future::BoxFuture<'_, Option<SecretBody>> {
            Box::pin(async move {
                self.show_secret(project, name)
                    .await
                    .ok()
                    .filter(|s| s.state != SecretState::PendingDelete)
                    .map(|secret| SecretBody { secret })
            })
        };
        let b: SecretBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "scheduled-deleted-tasks/cancel"),
                &[],
                None,
                false,
                Some(&check),
            )
            .await?;
        if b.secret == Secret::default() {
            return self.show_secret(project, name).await;
        }
        Ok(with_name(b.secret, name))
    }

    async fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        let body = json(&CreateVersionBody {
            secret_binary: wire_binary(&req.secret_binary),
            secret_string: wire_string(&req.secret_string),
            version_stages: (!req.version_stages.is_empty()).then(|| req.version_stages.clone()),
            expire_time: req.expire_time,
        })?;
        let sent = req.secret_string.clone().or(req.secret_binary.clone());
        // If the newest version holds our value, it is the one this call created.
        let ours = || -> futures::future::BoxFuture<'_, Option<VersionMetadataBody>> {
            let sent = sent.clone();
            Box::pin(async move {
                let latest = self.show_version(project, name, LATEST).await.ok()?;
                (Some(&latest.value) == sent.as_ref()).then_some(VersionMetadataBody {
                    version_metadata: latest.version_metadata,
                })
            })
        };
        let b: VersionMetadataBody = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "versions"),
                &[],
                Some(body),
                false,
                Some(&ours),
            )
            .await?;
        let mut md = b.version_metadata;
        if md.id.is_empty() {
            // Created, but the answer does not name it: the newest version holding our value is it.
            md = ours().await.map(|b| b.version_metadata).ok_or_else(|| {
                StoreError::internal(
                    format!("creating a version of {name}"),
                    "the answer names no version, and the newest version is not the one sent",
                )
            })?;
        }
        if md.secret_name.is_empty() {
            md.secret_name = name.to_owned();
        }
        Ok(md)
    }

    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        let b: VersionBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_item(project, name, "versions", version_id),
                &[],
                None,
                true,
                None,
            )
            .await?;
        let mut v = version_from_wire(b.version, name, version_id)?;
        self.complete_metadata(project, name, version_id, &mut v.version_metadata)
            .await?;
        Ok(v)
    }

    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let q = paging(limit, marker);
        let b: VersionMetadatasBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_action(project, name, "versions"),
                &q,
                None,
                true,
                None,
            )
            .await?;
        let mut version_metadatas = b.version_metadatas;
        for v in &mut version_metadatas {
            if v.secret_name.is_empty() {
                v.secret_name = name.to_owned();
            }
        }
        Ok(VersionPage {
            version_metadatas,
            page_info: b.page_info,
        })
    }

    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        let b: StageBody = self
            .call(
                project,
                Method::GET,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                None,
                true,
                None,
            )
            .await?;
        if b.stage.version_id.is_empty() {
            return Err(StoreError::internal(
                format!("reading stage {stage} of {name}"),
                "the answer names no version",
            ));
        }
        Ok(with_stage_names(b.stage, name, stage))
    }

    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        let body = json(&UpdateStageBody {
            version_id: version_id.to_owned(),
        })?;
        let b: StageBody = self
            .call(
                project,
                Method::PUT,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                Some(body),
                true,
                None,
            )
            .await?;
        let mut s = with_stage_names(b.stage, name, stage);
        if s.version_id.is_empty() {
            s.version_id = version_id.to_owned();
        }
        Ok(s)
    }

    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        let _: serde_json::Value = self
            .call(
                project,
                Method::DELETE,
                &Route::secret_item(project, name, "stages", stage),
                &[],
                None,
                true,
                None,
            )
            .await?;
        Ok(())
    }

    /// CSMS changes the database through the secret's rotation function.
    fn changes_databases(&self) -> bool {
        false
    }

    /// RotateSecret, then: the task it started is polled until it finishes (when the answer names none,
    /// the secret's newest task since the call is), and the version it made current is read back (the
    /// answer's `version_id` may be missing, or name a version still pending).
    async fn rotate(
        &self,
        project: &str,
        name: &str,
        _opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        // The service changes the database itself; the in-process target and policy do not apply.
        let started = now_ms();
        // After an ambiguous failure: a task for this secret started since this call means it went through.
        let check = || -> futures::future::BoxFuture<'_, Option<RotateResult>> {
            Box::pin(async move {
                let task = self.find_rotation_task(project, name, started).await?;
                Some(RotateResult {
                    rotation_task_id: task,
                    ..RotateResult::default()
                })
            })
        };
        let answer: RotateResult = self
            .call(
                project,
                Method::POST,
                &Route::secret_action(project, name, "rotate"),
                &[],
                None,
                false,
                Some(&check),
            )
            .await?;
        let task_id = if answer.rotation_task_id.is_empty() {
            self.find_rotation_task(project, name, started).await
        } else {
            Some(answer.rotation_task_id)
        };
        match &task_id {
            Some(id) => self.poll_task(project, name, id).await?,
            None => warn!(
                secret = name,
                project,
                "RotateSecret named no task and none was found; reading the current version"
            ),
        }
        let current = self.show_stage(project, name, SYSCURRENT).await?;
        Ok(RotateResult {
            version_id: current.version_id,
            secret_name: name.to_owned(),
            rotation_task_id: task_id.unwrap_or_default(),
        })
    }

    async fn list_tasks(&self, project: &str, filter: TaskFilter) -> StoreResult<TaskPage> {
        let mut q = Vec::new();
        if let Some(n) = filter.secret_name {
            q.push(("secret_name", n));
        }
        if let Some(s) = filter.status {
            q.push(("status", s.as_str().to_owned()));
        }
        if let Some(t) = filter.task_id {
            q.push(("task_id", t));
        }
        if let Some(l) = filter.limit {
            q.push(("limit", l.to_string()));
        }
        if let Some(m) = filter.marker {
            q.push(("marker", m));
        }
        let b: TasksBody = self
            .call(
                project,
                Method::GET,
                &Route::project(project, "csms/tasks"),
                &q,
                None,
                true,
                None,
            )
            .await?;
        Ok(TaskPage {
            total: b
                .total
                .max(u32::try_from(b.tasks.len()).unwrap_or(u32::MAX)),
            tasks: b.tasks,
            next_marker: b.next_marker.filter(|m| !m.is_empty()),
        })
    }

    /// One task by id; a service that ignores the `task_id` filter is read past.
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
            .find(|t| t.task_id == task_id)
            .ok_or_else(|| StoreError::NotFound {
                kind: "task",
                name: task_id.to_owned(),
            })
    }
}
