//! Rollback: SYSCURRENT moves back to an earlier version the store still holds, recorded as a task
//! (`operate_type` ROLLBACK). A COMMON secret moves in one transaction. A database secret goes through the
//! rotation's steps with that version as the pending one: (1) SYSPENDING points at it, with its task; (2)
//! the database gets that version's password and a login test (the same precheck and put-back, so nothing
//! is locked out); (3) SYSCURRENT moves to it. A failed step (2) records the task as FAILED and drops
//! SYSPENDING, so the next rotation starts afresh instead of finishing the rollback.

use super::rotation::{PendingRotation, new_task};
use super::*;
use crate::changer::RotateOptions;

/// What step (1) of a rollback decided.
pub(super) enum RollbackStart {
    /// COMMON: done already.
    Done(RotateResult),
    /// A database secret: the password to set, as a pending rotation.
    Database(PendingRotation),
}

impl Inner {
    /// Step (1) of a rollback to `version_id`.
    pub(super) fn begin_rollback(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<RollbackStart> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        Self::check_readable(&rec)?;
        if rec.stages.contains_key(SYSPENDING) {
            return Err(StoreError::RotationInProgress {
                name: name.to_owned(),
            });
        }
        let num = version_num(version_id).ok_or_else(|| StoreError::NotFound {
            kind: "version",
            name: format!("{name}/{version_id}"),
        })?;
        let value = {
            let vt = txn.open_table(VERSIONS).ctx("opening versions")?;
            let v = self.read_version_in(&vt, project, name, num)?;
            self.open_version(project, name, &v)?
        };
        let now = now_ms();
        let mut task = new_task(name, now);
        task.operate_type = "ROLLBACK".to_owned();
        task.attempt_nums = 1;
        if rec.secret.secret_type == "COMMON" {
            Self::move_stage(&mut rec, SYSCURRENT, version_id, now);
            rec.secret.update_time = now;
            task.task_status = TaskStatus::Success;
            self.write_task(&txn, project, &task)?;
            self.write_secret(&txn, project, &rec)?;
            txn.commit().ctx("committing")?;
            info!(project, secret = name, version = version_id, task = %task.task_id, "rolled back");
            return Ok(RollbackStart::Done(RotateResult {
                version_id: version_id.to_owned(),
                secret_name: name.to_owned(),
                rotation_task_id: task.task_id,
            }));
        }
        let cred = DatabaseCredential::from_value(&value).ok_or_else(|| {
            StoreError::invalid(
                "version_id",
                format!("version {version_id} of {name} is not a database credential"),
            )
        })?;
        if cred.password.is_empty() {
            return Err(StoreError::invalid(
                "version_id",
                format!("the store does not know the password of version {version_id} of {name}"),
            ));
        }
        let read_stage =
            |rec: &SecretRecord, stage: &str| -> StoreResult<Option<DatabaseCredential>> {
                let Some(s) = rec.stages.get(stage) else {
                    return Ok(None);
                };
                let Some(n) = version_num(&s.version_id) else {
                    return Ok(None);
                };
                let vt = txn.open_table(VERSIONS).ctx("opening versions")?;
                let v = self.read_version_in(&vt, project, name, n)?;
                Ok(DatabaseCredential::from_value(
                    &self.open_version(project, name, &v)?,
                ))
            };
        let current_for_user = Self::current_password_for(&rec, &cred.username, &read_stage)?;
        let in_use = read_stage(&rec, SYSCURRENT)?.is_some_and(|c| c.username == cred.username);
        rec.stages.insert(
            SYSPENDING.to_owned(),
            StageRecord {
                version_id: version_id.to_owned(),
                update_time: now,
            },
        );
        rec.secret.update_time = now;
        self.commit_with_task(txn, project, &mut rec, &task)?;
        info!(project, secret = name, version = version_id, task = %task.task_id, user = %cred.username, "rollback started");
        Ok(RollbackStart::Database(PendingRotation {
            version_id: version_id.to_owned(),
            task_id: task.task_id,
            user: cred.username.clone(),
            new: SecretValue::from_str_value(&cred.password),
            current_for_user,
            in_use,
            resumed: false,
        }))
    }
}

impl EmbeddedStore {
    /// Rolls SYSCURRENT back to `version_id` (see the module doc).
    pub(super) async fn rollback_secret(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        let _lock = self.lock_rotation(project, name).await?;
        let (project_id, secret, version) =
            (project.to_owned(), name.to_owned(), version_id.to_owned());
        let pending = match self
            .blocking(move |i| i.begin_rollback(&project_id, &secret, &version))
            .await?
        {
            RollbackStart::Done(r) => return Ok(r),
            RollbackStart::Database(p) => Arc::new(p),
        };
        self.database_steps(project, name, pending, opts.changer, true)
            .await
    }
}
