//! Rotation tasks as the service runs them: finding the task a RotateSecret call started, polling it to
//! SUCCESS or FAILED, and reading back what an answer left out.

use tracing::warn;

use super::client::*;
use crate::error::codes;
use crate::model::*;
use crate::{Store, StoreError, StoreResult};

impl CsmsStore {
    /// The task a RotateSecret call that started at `started` made: the newest task of the secret that
    /// began since then, looked for a few times (the task list may lag behind the call).
    pub(super) async fn find_rotation_task(
        &self,
        project: &str,
        name: &str,
        started: i64,
    ) -> Option<String> {
        for look in 0..3 {
            if look > 0 {
                tokio::time::sleep(self.opts.task_poll).await;
            }
            let page = self
                .list_tasks(
                    project,
                    TaskFilter {
                        secret_name: Some(name.to_owned()),
                        limit: Some(10),
                        ..TaskFilter::default()
                    },
                )
                .await
                .ok()?;
            if let Some(t) = page.tasks.into_iter().find(|t| {
                !t.task_id.is_empty()
                    && (t.secret_name.is_empty() || t.secret_name == name)
                    && t.task_time >= started - TASK_CLOCK_SLACK_MS
            }) {
                return Some(t.task_id);
            }
        }
        None
    }

    /// Waits for a rotation task to finish: SUCCESS, FAILED (an error), or the task timeout. A status this
    /// client does not know counts as not finished.
    pub(super) async fn poll_task(
        &self,
        project: &str,
        name: &str,
        task_id: &str,
    ) -> StoreResult<()> {
        let deadline = tokio::time::Instant::now() + self.opts.task_timeout;
        let mut warned = false;
        loop {
            let task = self.show_task(project, task_id).await?;
            match task.task_status {
                TaskStatus::Success => return Ok(()),
                TaskStatus::Failed => {
                    return Err(StoreError::RotationFailed {
                        name: name.to_owned(),
                        task_id: task_id.to_owned(),
                        code: if task.task_error_code.is_empty() {
                            codes::TARGET_FAILED.to_owned()
                        } else {
                            task.task_error_code
                        },
                        message: if task.task_error_msg.is_empty() {
                            "the rotation task failed without a message".to_owned()
                        } else {
                            task.task_error_msg
                        },
                    });
                }
                status if tokio::time::Instant::now() >= deadline => {
                    return Err(StoreError::Timeout {
                        operation: format!(
                            "waiting for rotation task {task_id} of {name} (still {})",
                            status.as_str()
                        ),
                    });
                }
                status => {
                    if status == TaskStatus::Unknown && !warned {
                        warned = true;
                        warn!(
                            secret = name,
                            task = task_id,
                            "the rotation task has no status this client knows; waiting for SUCCESS or FAILED"
                        );
                    }
                    tokio::time::sleep(self.opts.task_poll).await;
                }
            }
        }
    }

    /// Completes a version's metadata that an answer left short: its id and secret from the request, and
    /// its creation time (which the schedule depends on) read back from the version list.
    pub(super) async fn complete_metadata(
        &self,
        project: &str,
        name: &str,
        requested: &str,
        md: &mut VersionMetadata,
    ) -> StoreResult<()> {
        if md.secret_name.is_empty() {
            md.secret_name = name.to_owned();
        }
        if md.id.is_empty() && requested != LATEST {
            md.id = requested.to_owned();
        }
        if !md.id.is_empty() && md.create_time > 0 {
            return Ok(());
        }
        let mut marker: Option<String> = None;
        for _ in 0..READ_BACK_PAGES {
            let page = self
                .list_versions(project, name, Some(50), marker.as_deref())
                .await?;
            // Newest first: `latest` is the first one.
            let found = if md.id.is_empty() {
                page.version_metadatas.first()
            } else {
                page.version_metadatas.iter().find(|v| v.id == md.id)
            };
            if let Some(v) = found {
                md.id.clone_from(&v.id);
                md.create_time = v.create_time;
                if md.version_stages.is_empty() {
                    md.version_stages.clone_from(&v.version_stages);
                }
                break;
            }
            match page.page_info.next_marker {
                Some(m) if !m.is_empty() && !page.version_metadatas.is_empty() => marker = Some(m),
                _ => break,
            }
        }
        if md.id.is_empty() || md.create_time <= 0 {
            return Err(StoreError::internal(
                format!("reading version {requested} of {name}"),
                "the answer gives no version id or creation time, and the version list does not either",
            ));
        }
        Ok(())
    }
}
