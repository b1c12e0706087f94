//! The events of a settled status: a failure, a rollback, the synced Secret written, the restarts.

use super::{Frame, Outcome};
use crate::api::{RollbackResult, RollbackStatus, SecretRotationStatus};
use crate::controller::failure::Failure;
use crate::controller::synced::{Held, RestartResult};
use crate::note::{Facts, Note};
use crate::reasons::Reason;
use secret_rotator_core::planner::Creation;

/// The warning of a failed attempt; `st` already counts it.
pub fn failure(f: &Failure, st: &SecretRotationStatus) -> Note {
    Note::warning(
        Reason::RotationFailed,
        format!("{}: {}", f.code(), f.message()),
    )
    .with(Facts {
        version_id: st.version_id.clone(),
        task_id: f.task_id().map(str::to_owned),
        failed_attempts: Some(st.failed_attempts),
        error_code: Some(f.code()),
        ..Facts::default()
    })
}

/// The event of a handled rollback request.
pub fn rollback(r: &RollbackStatus) -> Note {
    let note = match r.result {
        RollbackResult::Done => Note::normal(Reason::RolledBack, r.message.clone()),
        RollbackResult::Refused => Note::warning(Reason::RollbackRefused, r.message.clone()),
        RollbackResult::Failed => Note::warning(Reason::RollbackFailed, r.message.clone()),
    };
    note.about(r.request.clone())
}

/// The events of a synced Secret written and of the restarts that followed.
pub fn held(frame: &Frame<'_>, outcome: &Outcome<'_>, held: &Held) -> Vec<Note> {
    let mut notes = Vec::new();
    let (store, version, secret) = (frame.store_secret, &held.version_id, &held.secret);
    if held.applied {
        let note = if outcome.created == Some(Creation::Generated) {
            Note::normal(
                Reason::Rotated,
                format!(
                    "created store secret {store} with a generated value {version}; Secret {secret} written"
                ),
            )
        } else if outcome.rotated {
            Note::normal(
                Reason::Rotated,
                format!("rotated store secret {store} to {version}; Secret {secret} updated"),
            )
        } else {
            Note::normal(
                Reason::Synced,
                format!("Secret {secret} written from {store} {version}"),
            )
        };
        notes.push(note.about(version.as_str()).with(Facts {
            version_id: Some(version.clone()),
            task_id: (!held.task_id.is_empty()).then(|| held.task_id.clone()),
            secret: Some(secret.clone()),
            ..Facts::default()
        }));
    }
    for r in &held.restarts {
        let note = match &r.result {
            RestartResult::Done => Note::normal(
                Reason::RestartTriggered,
                format!("restarted {:?} {} for {version}", r.kind, r.name),
            ),
            RestartResult::Missing => Note::warning(
                Reason::RestartTargetMissing,
                format!(
                    "{:?} {} does not exist in {}",
                    r.kind, r.name, frame.namespace
                ),
            ),
            RestartResult::Failed(e) => Note::warning(
                Reason::RestartFailed,
                format!("restarting {:?} {}: {e}", r.kind, r.name),
            ),
        };
        notes.push(note.about(format!("{:?} {}", r.kind, r.name)).with(Facts {
            version_id: Some(version.clone()),
            task_id: (!held.task_id.is_empty()).then(|| held.task_id.clone()),
            secret: Some(secret.clone()),
            workload: Some((r.kind, r.name.clone())),
            ..Facts::default()
        }));
    }
    notes
}
