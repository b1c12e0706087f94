//! Publish: the status write (a merge patch from what the apiserver holds, only when something changed),
//! the events and notifications of a settled status, and the next-rotation gauge.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};

use super::Run;
use crate::api::{FIELD_MANAGER, SecretRotation, SecretRotationStatus};
use crate::controller::error::StatusError;
use crate::controller::status::{self, Settled};
use crate::metrics::ResourceLabel;
use crate::notify;
use jiff::Timestamp;

/// Writes the status of one resource, remembering what the apiserver holds.
pub struct StatusWriter {
    written: SecretRotationStatus,
}

impl StatusWriter {
    /// A writer for the resource as it was read.
    pub fn new(run: &Run<'_>) -> StatusWriter {
        StatusWriter {
            written: run.previous.clone(),
        }
    }

    /// The status as the apiserver holds it: the last one written, or the one read.
    pub fn written(&self) -> &SecretRotationStatus {
        &self.written
    }

    /// Writes the whole status. A JSON merge patch (not server-side apply): Kubernetes 1.20 turns a field
    /// dropped from an applied status into null, which the schema refuses; a merge patch deletes it.
    pub async fn write(
        &mut self,
        run: &Run<'_>,
        status: SecretRotationStatus,
    ) -> Result<(), StatusError> {
        let api: Api<SecretRotation> = Api::namespaced(run.ctx.client.clone(), &run.ns);
        let patch = status::merge_patch(&self.written, &status);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let changed = status::changed_fields(&self.written, &patch);
            tracing::debug!(?changed, "writing the status");
        }
        let body = serde_json::json!({ "status": patch });
        let pp = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let written = api
            .patch_status(&run.name, &pp, &Patch::Merge(&body))
            .await
            .map_err(|source| StatusError {
                object: run.object(),
                source,
            })?;
        run.ctx.freshness.status_written(&written.metadata);
        self.written = status;
        Ok(())
    }

    /// Writes the settled status (when it changed), then queues its events and notifications, which never
    /// wait: both are delivered in the background.
    pub async fn publish(
        &mut self,
        run: &Run<'_>,
        settled: Settled,
        store_secret: &str,
        secret: Option<&str>,
    ) -> Result<(), StatusError> {
        if let Some(st) = settled.status {
            self.write(run, st).await?;
        }
        let about = notify::About {
            namespace: &run.ns,
            name: &run.name,
            store_secret,
            secret,
            version_id: self.written.version_id.as_deref(),
            task_id: self.written.rotation_task_id.as_deref(),
        };
        for note in &settled.notes {
            run.ctx.notifier.notify(&about, note);
        }
        for note in settled.notes {
            let ev = Event {
                type_: if note.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: note.reason.as_str().to_owned(),
                note: Some(note.message.chars().take(1000).collect()),
                action: note.action(),
                secondary: None,
            };
            run.ctx.events.publish(run.sr.object_ref(&()), ev);
        }
        Ok(())
    }
}

/// The next-rotation gauge: set to `next`, or removed when there is none (suspended, blocked).
pub fn next_rotation_gauge(run: &Run<'_>, next: Option<Timestamp>) {
    let label = ResourceLabel {
        namespace: run.ns.clone(),
        name: run.name.clone(),
    };
    match next {
        Some(next) => {
            run.ctx
                .metrics
                .next_rotation
                .get_or_create(&label)
                .set(next.as_second());
        }
        None => {
            run.ctx.metrics.next_rotation.remove(&label);
        }
    }
}
