//! Rollback: SYSCURRENT moves back to an earlier version the store still holds, recorded as a task
//! (`operate_type` ROLLBACK). A COMMON secret moves in one transaction. A database secret goes through the
//! rotation's steps with that version as the pending one: (1) SYSPENDING points at it, with its task; (2)
//! the database gets that version's password and a login test (the same precheck and put-back, so nothing
//! is locked out); (3) SYSCURRENT moves to it. A failed step (2) records the task as FAILED and drops
//! SYSPENDING, so the next rotation starts afresh instead of finishing the rollback.

use super::rotation::{PendingRotation, new_task, set_on_database};
use super::*;
use crate::store::target::TargetError;

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

    /// A failed database step of a rollback: the task FAILED, SYSPENDING dropped, SYSCURRENT unchanged.
    pub(super) fn fail_rollback(
        &self,
        project: &str,
        name: &str,
        p: &PendingRotation,
        code: &str,
        message: &str,
    ) -> StoreResult<()> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        if rec.stages.get(SYSPENDING).map(|s| s.version_id.as_str()) == Some(p.version_id.as_str())
        {
            rec.stages.remove(SYSPENDING);
        }
        rec.active_task = None;
        let now = now_ms();
        let mut task = self
            .read_task_txn(&txn, project, &p.task_id)?
            .unwrap_or_else(|| new_task(name, now));
        task.task_status = TaskStatus::Failed;
        task.task_error_code = code.to_owned();
        task.task_error_msg = message.chars().take(512).collect();
        self.write_task(&txn, project, &task)?;
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        warn!(project, secret = name, task = %p.task_id, code, error = message, "rollback failed; SYSCURRENT unchanged");
        Ok(())
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
        let _claim = self.claim(project, name).await?;
        let (project_id, secret, version) =
            (project.to_owned(), name.to_owned(), version_id.to_owned());
        let pending = match self
            .blocking(move |i| i.begin_rollback(&project_id, &secret, &version))
            .await?
        {
            RollbackStart::Done(r) => return Ok(r),
            RollbackStart::Database(p) => Arc::new(p),
        };
        let outcome = match opts.target.as_deref() {
            None => Err(TargetError::new(
                "CONFIG",
                "no database target is configured for this secret",
            )),
            Some(target) => set_on_database(target, &pending, name).await,
        };
        let (project_id, secret, p) = (project.to_owned(), name.to_owned(), pending.clone());
        let error = match outcome {
            Ok(()) => {
                return self
                    .blocking(move |i| i.finish_rotation(&project_id, &secret, &p))
                    .await;
            }
            Err(e) => e,
        };
        let code = format!("{}.{}", codes::TARGET_FAILED, error.code);
        let (c, m) = (code.clone(), error.message.clone());
        self.blocking(move |i| i.fail_rollback(&project_id, &secret, &p, &c, &m))
            .await?;
        Err(StoreError::RotationFailed {
            name: name.to_owned(),
            task_id: pending.task_id.clone(),
            code,
            message: error.message,
        })
    }
}
