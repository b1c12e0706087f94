//! Rollback: the `secretrotator.dev/rollback-to` annotation asks the store to move SYSCURRENT back to an
//! earlier version it holds (for a database secret, with that version's password set on the database
//! through the rotation's steps). Each request is handled once; a refused or failed one is recorded in
//! `status.lastRollback` and an event, and changes nothing else.

use jiff::Timestamp;
use tracing::{info, warn};

use super::Run;
use super::act::{Acted, connection};
use super::observe::{read_current, reading};
use crate::api::{ANNOTATION_ROLLBACK_TO, RollbackResult, RollbackStatus};
use crate::controller::Error;
use crate::controller::status::seconds;
use crate::validation::ValidatedSpec;
use secret_rotator_store::model::RotateOptions;

/// A rollback request not handled yet: the annotation's value and the version it names.
pub fn pending(run: &Run<'_>) -> Option<(String, String)> {
    let value = run
        .sr
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_ROLLBACK_TO)?
        .trim()
        .to_owned();
    if value.is_empty()
        || run
            .previous
            .last_rollback
            .as_ref()
            .map(|r| r.request.as_str())
            == Some(value.as_str())
    {
        return None;
    }
    let version = value.split('/').next().unwrap_or_default().to_owned();
    Some((value, version))
}

/// Whether `v` reads as a version id (`v` and digits).
fn is_version_id(v: &str) -> bool {
    v.len() > 1 && v.len() <= 21 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Handles the request: `acted` gets the new SYSCURRENT and the task when it was done.
pub async fn handle(
    run: &Run<'_>,
    spec: &ValidatedSpec,
    request: (String, String),
    acted: &mut Acted,
) -> Result<(), Error> {
    let (value, version) = request;
    let record =
        |result: RollbackResult, message: String, task_id: Option<String>| RollbackStatus {
            request: value.chars().take(128).collect(),
            version_id: version.chars().take(64).collect(),
            result,
            message: message.chars().take(1024).collect(),
            time: seconds(run.now),
            task_id,
        };
    let current = acted.current.version().map(|(id, _)| id.to_owned());
    let refused = if !is_version_id(&version) {
        Some(format!(
            "{ANNOTATION_ROLLBACK_TO}: {:?} is not a version id such as v3 (optionally v3/<anything new>)",
            version.chars().take(64).collect::<String>()
        ))
    } else if spec.suspend {
        Some("the resource is suspended: resume it before rolling back".to_owned())
    } else if current.as_deref() == Some(version.as_str()) {
        Some(format!("{version} is already SYSCURRENT; nothing to do"))
    } else {
        None
    };
    if let Some(message) = refused {
        info!(secret = %spec.store_secret, request = %value, "rollback refused: {message}");
        acted.rollback = Some(record(RollbackResult::Refused, message, None));
        return Ok(());
    }
    let opts = match &spec.database {
        Some(db) if run.ctx.store.changes_databases() => match connection(run, db).await {
            Ok(target) => RotateOptions {
                target: Some(target),
                policy: None,
            },
            Err(f) => {
                let message = format!("{}: {}", f.code(), f.message());
                acted.rollback = Some(record(RollbackResult::Failed, message, None));
                return Ok(());
            }
        },
        _ => RotateOptions::default(),
    };
    let project = run.project(spec);
    let name = spec.store_secret.as_str();
    let result = run
        .timed(
            "rollback",
            run.ctx.store.rollback(&project, name, &version, opts),
        )
        .await;
    match result {
        Ok(r) => {
            info!(secret = %spec.store_secret, version = %version, task = %r.rotation_task_id, "rolled back");
            let task = (!r.rotation_task_id.is_empty()).then(|| r.rotation_task_id.clone());
            acted.rollback = Some(record(
                RollbackResult::Done,
                format!(
                    "SYSCURRENT of {name} moved back to {version}{}",
                    current.map(|c| format!(" from {c}")).unwrap_or_default()
                ),
                task.clone(),
            ));
            acted.rolled_back_task = Some(task.unwrap_or_default());
            acted.current = read_current(run, spec)
                .await
                .map_err(|e| reading(spec, e))?;
        }
        Err(e) if e.status() == 404 => {
            acted.rollback = Some(record(
                RollbackResult::Refused,
                format!("the store does not hold version {version} of {name}"),
                None,
            ));
        }
        Err(e) => {
            warn!(secret = %spec.store_secret, version = %version, error = %e, "rollback failed");
            acted.rollback = Some(record(
                RollbackResult::Failed,
                format!("{}: {e}; SYSCURRENT unchanged", e.code()),
                None,
            ));
        }
    }
    Ok(())
}

/// The time the planner counts from for SYSCURRENT `id` created at `created`: the rollback's time when a
/// rollback made it SYSCURRENT (an old version would otherwise look long overdue and rotate at once).
pub fn counted_from(last: Option<&RollbackStatus>, id: &str, created: Timestamp) -> Timestamp {
    match last {
        Some(r) if r.result == RollbackResult::Done && r.version_id == id => created.max(r.time.0),
        _ => created,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids() {
        for ok in ["v1", "v42"] {
            assert!(is_version_id(ok), "{ok}");
        }
        for bad in ["", "v", "1", "V1", "v1a", "latest", "v-1"] {
            assert!(!is_version_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_rolled_back_version_counts_from_the_rollback() {
        let old: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let r = RollbackStatus {
            request: "v1".into(),
            version_id: "v1".into(),
            result: RollbackResult::Done,
            message: String::new(),
            time: seconds(at),
            task_id: None,
        };
        assert_eq!(counted_from(Some(&r), "v1", old), at);
        assert_eq!(counted_from(Some(&r), "v2", old), old);
        let refused = RollbackStatus {
            result: RollbackResult::Refused,
            ..r
        };
        assert_eq!(counted_from(Some(&refused), "v1", old), old);
        assert_eq!(counted_from(None, "v1", old), old);
    }
}
