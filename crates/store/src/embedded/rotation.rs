//! RotateSecret for database secrets: (1) a pending version and its PROCESSING task, durably; (2) the
//! database sets and tests the password; (3) SYSCURRENT moves and the task becomes SUCCESS (or FAILED,
//! keeping the pending version, which the next rotation resumes with the same value).

use super::*;
use crate::changer::RotateOptions;
use crate::changer::{ChangeError, PasswordChanger};

/// What phase one of a rotation hands to the database steps.
pub(super) struct PendingRotation {
    pub(super) version_id: String,
    pub(super) task_id: String,
    pub(super) user: String,
    pub(super) new: SecretValue,
    pub(super) current_for_user: Option<SecretValue>,
    /// The account is SYSCURRENT's: an application logs in with it now (SingleUser).
    pub(super) in_use: bool,
    pub(super) resumed: bool,
}

pub(super) fn new_task(name: &str, now: i64) -> RotationTask {
    RotationTask {
        task_id: uuid::Uuid::new_v4().to_string(),
        secret_name: name.to_owned(),
        rotation_func_urn: String::new(),
        task_status: TaskStatus::Processing,
        operate_type: "ROTATE".to_owned(),
        task_time: now,
        attempt_nums: 0,
        task_error_code: String::new(),
        task_error_msg: String::new(),
    }
}

/// The open transaction of step (1) and what it read.
struct Start<'a> {
    txn: WriteTransaction,
    project: &'a str,
    name: &'a str,
    rec: SecretRecord,
    current_for_user: Option<SecretValue>,
    in_use: bool,
}

/// The account a rotation resets: SingleUser's one account; for MultiUser the one not in use (SYSPREVIOUS's,
/// or the other of the two configured).
fn next_account(
    rec: &SecretRecord,
    current: &DatabaseCredential,
    previous: Option<&DatabaseCredential>,
) -> String {
    let cfg: RotationConfig = rec
        .secret
        .rotation_config
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    if cfg.secret_sub_type != "MultiUser" {
        return current.username.clone();
    }
    match previous {
        Some(prev) if prev.username != current.username => prev.username.clone(),
        _ => cfg
            .usernames
            .iter()
            .find(|u| **u != current.username)
            .cloned()
            .unwrap_or_else(|| format!("{}_clone", current.username)),
    }
}

/// Marks a secret as being rotated in this process; released on drop.
pub(super) struct RotationLock {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for RotationLock {
    fn drop(&mut self) {
        if let Ok(mut set) = self.inner.rotating.lock() {
            set.remove(&self.key);
        }
    }
}

impl Inner {
    /// Step (1): a pending version with a new password and its PROCESSING task, in one transaction; or the
    /// pending version already there, resumed with the same password and task.
    pub(super) fn begin_rotation(
        &self,
        project: &str,
        name: &str,
        policy: &PasswordPolicy,
    ) -> StoreResult<PendingRotation> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        if rec.secret.secret_type == "COMMON" {
            return Err(StoreError::RotateUnsupported {
                name: name.to_owned(),
            });
        }
        Self::check_readable(&rec)?;
        let read_stage = |rec: &SecretRecord, stage: &str| {
            self.stage_credential(&txn, project, name, rec, stage)
        };
        if let Some(pending) = rec.stages.get(SYSPENDING).map(|s| s.version_id.clone()) {
            let cred = read_stage(&rec, SYSPENDING)?.ok_or_else(|| StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!(
                    "pending version {pending} of {name} is not a database credential"
                ),
            })?;
            let current_for_user = Self::current_password_for(&rec, &cred.username, &read_stage)?;
            let in_use = read_stage(&rec, SYSCURRENT)?.is_some_and(|c| c.username == cred.username);
            let start = Start {
                txn,
                project,
                name,
                rec,
                current_for_user,
                in_use,
            };
            return self.resume(start, pending, cred);
        }
        let current = read_stage(&rec, SYSCURRENT)?.ok_or_else(|| StoreError::invalid(
            "secret_string",
            format!("the SYSCURRENT value of {name} is not a database credential JSON {{\"username\",\"password\"}}"),
        ))?;
        let previous = read_stage(&rec, SYSPREVIOUS)?;
        let user = next_account(&rec, &current, previous.as_ref());
        let current_for_user = Self::current_password_for(&rec, &user, &read_stage)?;
        let in_use = current.username == user;
        let start = Start {
            txn,
            project,
            name,
            rec,
            current_for_user,
            in_use,
        };
        self.start_pending(start, user, policy)
    }

    /// The credential a stage points at, if the stage exists.
    fn stage_credential(
        &self,
        txn: &WriteTransaction,
        project: &str,
        name: &str,
        rec: &SecretRecord,
        stage: &str,
    ) -> StoreResult<Option<DatabaseCredential>> {
        let Some(s) = rec.stages.get(stage) else {
            return Ok(None);
        };
        let num = version_num(&s.version_id).ok_or_else(|| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("stage {stage} of {name} points at {}", s.version_id),
        })?;
        let vt = txn.open_table(VERSIONS).ctx("opening versions")?;
        let v = self.read_version_in(&vt, project, name, num)?;
        let value = self.open_version(project, name, &v)?;
        Ok(DatabaseCredential::from_value(&value))
    }

    /// Resumes the pending version: the same value, the same task, one more attempt.
    fn resume(
        &self,
        start: Start<'_>,
        pending: String,
        cred: DatabaseCredential,
    ) -> StoreResult<PendingRotation> {
        let Start {
            txn,
            project,
            name,
            mut rec,
            current_for_user,
            in_use,
        } = start;
        let now = now_ms();
        let mut task = match rec.active_task.as_deref() {
            Some(id) => self.read_task_txn(&txn, project, id)?,
            None => None,
        }
        .unwrap_or_else(|| new_task(name, now));
        task.task_status = TaskStatus::Processing;
        task.attempt_nums += 1;
        task.task_time = now;
        self.commit_with_task(txn, project, &mut rec, &task)?;
        info!(project, secret = name, version = %pending, task = %task.task_id, attempt = task.attempt_nums, "resuming rotation");
        Ok(PendingRotation {
            version_id: pending,
            task_id: task.task_id,
            user: cred.username.clone(),
            new: SecretValue::from_str_value(&cred.password),
            current_for_user,
            in_use,
            resumed: true,
        })
    }

    /// Makes the pending version for `user` with a new password, and its task.
    fn start_pending(
        &self,
        start: Start<'_>,
        user: String,
        policy: &PasswordPolicy,
    ) -> StoreResult<PendingRotation> {
        let Start {
            txn,
            project,
            name,
            mut rec,
            current_for_user,
            in_use,
        } = start;
        let now = now_ms();
        let password = secret_rotator_core::password::generate(policy)
            .map_err(|e| StoreError::invalid("password_policy", e.to_string()))?;
        let cred = DatabaseCredential {
            username: user.clone(),
            password: password.expose_str().unwrap_or_default().to_owned(),
        };
        let num = rec.next_version;
        let v = self.seal_version(project, name, num, &cred.to_value(), ValueKind::String, 0)?;
        rec.next_version += 1;
        rec.stages.insert(
            SYSPENDING.to_owned(),
            StageRecord {
                version_id: v.id.clone(),
                update_time: now,
            },
        );
        let mut task = new_task(name, now);
        task.attempt_nums = 1;
        rec.secret.update_time = now;
        self.write_version(&txn, project, name, num, &v)?;
        self.commit_with_task(txn, project, &mut rec, &task)?;
        info!(project, secret = name, version = %v.id, task = %task.task_id, user = %user, "rotation started");
        Ok(PendingRotation {
            version_id: v.id,
            task_id: task.task_id,
            user,
            new: password,
            current_for_user,
            in_use,
            resumed: false,
        })
    }

    /// Ends step (1): `task` becomes the secret's active task, both are written, the transaction commits.
    pub(super) fn commit_with_task(
        &self,
        txn: WriteTransaction,
        project: &str,
        rec: &mut SecretRecord,
        task: &RotationTask,
    ) -> StoreResult<()> {
        rec.active_task = Some(task.task_id.clone());
        self.write_task(&txn, project, task)?;
        self.write_secret(&txn, project, rec)?;
        txn.commit().ctx("committing")
    }

    /// The password the store holds for `user`: SYSCURRENT's or SYSPREVIOUS's when it names that account;
    /// `None` when neither does, or the one that does is not known.
    pub(super) fn current_password_for(
        rec: &SecretRecord,
        user: &str,
        read_stage: &dyn Fn(&SecretRecord, &str) -> StoreResult<Option<DatabaseCredential>>,
    ) -> StoreResult<Option<SecretValue>> {
        for stage in [SYSCURRENT, SYSPREVIOUS] {
            if let Some(c) = read_stage(rec, stage)?
                && c.username == user
            {
                // An empty password is one the store does not know (an account an administrator sets).
                return Ok(
                    (!c.password.is_empty()).then(|| SecretValue::from_str_value(&c.password))
                );
            }
        }
        Ok(None)
    }

    /// Phase three: SYSCURRENT moves to the pending version; the task succeeds.
    pub(super) fn finish_rotation(
        &self,
        project: &str,
        name: &str,
        p: &PendingRotation,
    ) -> StoreResult<RotateResult> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        if rec.stages.get(SYSPENDING).map(|s| s.version_id.as_str()) != Some(p.version_id.as_str())
        {
            return Err(StoreError::StageConstraint {
                name: name.to_owned(),
                message: format!("SYSPENDING no longer points at {}", p.version_id),
            });
        }
        let now = now_ms();
        rec.stages.remove(SYSPENDING);
        Self::move_stage(&mut rec, SYSCURRENT, &p.version_id, now);
        rec.active_task = None;
        rec.secret.rotation_time = Some(now);
        rec.secret.update_time = now;
        let mut task = self
            .read_task_txn(&txn, project, &p.task_id)?
            .unwrap_or_else(|| new_task(name, now));
        task.task_status = TaskStatus::Success;
        task.task_error_code.clear();
        task.task_error_msg.clear();
        self.write_task(&txn, project, &task)?;
        self.write_secret(&txn, project, &rec)?;
        self.prune(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        info!(project, secret = name, version = %p.version_id, task = %p.task_id, "rotation finished");
        Ok(RotateResult {
            version_id: p.version_id.clone(),
            secret_name: name.to_owned(),
            rotation_task_id: p.task_id.clone(),
        })
    }

    /// Records a failed database step: the task FAILED. A rotation keeps SYSPENDING for the next attempt
    /// (`drop_pending` false); a rollback drops it, so the next rotation starts afresh.
    pub(super) fn fail_rotation(
        &self,
        project: &str,
        name: &str,
        p: &PendingRotation,
        failure: (&str, &str),
        drop_pending: bool,
    ) -> StoreResult<()> {
        let (code, message) = failure;
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let now = now_ms();
        let mut task = self
            .read_task_txn(&txn, project, &p.task_id)?
            .unwrap_or_else(|| new_task(name, now));
        task.task_status = TaskStatus::Failed;
        task.task_error_code = code.to_owned();
        task.task_error_msg = message.chars().take(512).collect();
        self.write_task(&txn, project, &task)?;
        if drop_pending {
            let mut rec = {
                let t = txn.open_table(SECRETS).ctx("opening secrets")?;
                self.read_secret_in(&t, project, name)?
            };
            if rec.stages.get(SYSPENDING).map(|s| s.version_id.as_str())
                == Some(p.version_id.as_str())
            {
                rec.stages.remove(SYSPENDING);
            }
            rec.active_task = None;
            self.write_secret(&txn, project, &rec)?;
        }
        txn.commit().ctx("committing")?;
        warn!(project, secret = name, task = %p.task_id, code, error = message, drop_pending, "database step failed");
        Ok(())
    }
}

impl EmbeddedStore {
    /// RotateSecret: the three transactions around the database steps (see the module doc), to the end.
    pub(super) async fn rotate_secret(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        let _lock = self.lock_rotation(project, name).await?;
        let pending = self.begin(project, name, &opts).await?;
        self.complete(project, name, pending, opts.changer).await
    }

    /// RotateSecret as the service runs it: step (1) here (the pending version and its PROCESSING task,
    /// durably), steps (2) and (3) in a background task that holds the secret's rotation lock until the task is
    /// SUCCESS or FAILED. The answer names the task and the pending version.
    pub(super) async fn start_rotation_in_background(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        let lock = self.lock_rotation(project, name).await?;
        let pending = self.begin(project, name, &opts).await?;
        let answer = RotateResult {
            version_id: pending.version_id.clone(),
            secret_name: name.to_owned(),
            rotation_task_id: pending.task_id.clone(),
        };
        let span = tracing::info_span!("rotation", project, secret = name, task = %pending.task_id);
        let (store, project, name) = (self.clone(), project.to_owned(), name.to_owned());
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let _lock = lock;
                match store.complete(&project, &name, pending, opts.changer).await {
                    Ok(done) => debug!(version = %done.version_id, "background rotation finished"),
                    // The task holds the failure (and the failure was logged when it was recorded).
                    Err(StoreError::RotationFailed { .. }) => {}
                    Err(e) => {
                        warn!(error = %e, "background rotation could not record its outcome; the next rotation resumes it")
                    }
                }
            },
            span,
        ));
        Ok(answer)
    }

    /// Step (1), in a blocking task.
    async fn begin(
        &self,
        project: &str,
        name: &str,
        opts: &RotateOptions,
    ) -> StoreResult<PendingRotation> {
        let policy = opts.policy.clone().unwrap_or_default();
        let (project_id, secret) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.begin_rotation(&project_id, &secret, &policy))
            .await
    }

    /// Steps (2) and (3) of a rotation: the database, then SYSCURRENT moves (task SUCCESS) or the failure
    /// is recorded (task FAILED, the pending version kept).
    async fn complete(
        &self,
        project: &str,
        name: &str,
        pending: PendingRotation,
        target: Option<Arc<dyn PasswordChanger>>,
    ) -> StoreResult<RotateResult> {
        self.database_steps(project, name, Arc::new(pending), target, false)
            .await
    }

    /// Steps (2) and (3): the database gets the pending password and a login test, then SYSCURRENT moves
    /// (or the failure is recorded; `drop_pending` as in [`Inner::fail_rotation`]).
    pub(super) async fn database_steps(
        &self,
        project: &str,
        name: &str,
        pending: Arc<PendingRotation>,
        target: Option<Arc<dyn PasswordChanger>>,
        drop_pending: bool,
    ) -> StoreResult<RotateResult> {
        let outcome = match target.as_deref() {
            None => Err(ChangeError::new(
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
        self.blocking(move |i| i.fail_rotation(&project_id, &secret, &p, (&c, &m), drop_pending))
            .await?;
        Err(StoreError::RotationFailed {
            name: name.to_owned(),
            task_id: pending.task_id.clone(),
            code,
            message: error.message,
        })
    }

    /// Marks the secret as rotating in this process, or refuses a second rotation of it. A rotation
    /// releases its rotation lock just after its last commit, so a caller that saw its task finish may come within
    /// that moment: a rotation lock held for longer than [`LOCK_WAIT`] is another rotation in progress.
    pub(super) async fn lock_rotation(
        &self,
        project: &str,
        name: &str,
    ) -> StoreResult<RotationLock> {
        let key = secret_key(project, name);
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            {
                let mut set =
                    self.inner.rotating.lock().map_err(|_| {
                        StoreError::internal("locking the rotation set", "poisoned")
                    })?;
                if set.insert(key.clone()) {
                    return Ok(RotationLock {
                        inner: self.inner.clone(),
                        key,
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::RotationInProgress {
                    name: name.to_owned(),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// How long a rotation waits for another one's rotation lock on the same secret before it is refused.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Step (2) of a rotation: set the pending password on the database and test a login with it. A resumed
/// rotation whose password the database already has skips the change.
///
/// An application must never be left holding a dead password. So for the account in use, the operator first
/// proves that its own login test can succeed (a login with the current password) and changes nothing when
/// it cannot (pg_hba rules, an account limited to the application's hosts, CONNECT revoked); and when the
/// test after the change fails anyway, the previous password is put back before the failure is recorded.
pub(super) async fn set_on_database(
    target: &dyn PasswordChanger,
    pending: &PendingRotation,
    name: &str,
) -> Result<(), ChangeError> {
    let user = &pending.user;
    if pending.resumed && target.test_login(user, &pending.new).await.is_ok() {
        debug!(
            secret = name,
            "the database already has the pending password"
        );
        return Ok(());
    }
    if pending.in_use
        && let Some(current) = &pending.current_for_user
    {
        target.test_login(user, current).await.map_err(|e| {
            if e.code == "FORBIDDEN" {
                // The target may not touch this account at all: that, not a failed login, is the cause.
                return e;
            }
            ChangeError::new(
                "PRECHECK",
                format!(
                    "before changing anything, the operator's login as {user} with the current password failed ({}); nothing was changed: the operator must be able to log in as the account to confirm a new password (check pg_hba.conf, the hosts the account may log in from, CONNECT on the database)",
                    e.message
                ),
            )
        })?;
    }
    target
        .set_password(user, &pending.new, pending.current_for_user.as_ref())
        .await?;
    let Err(failed) = target.test_login(user, &pending.new).await else {
        return Ok(());
    };
    let restored = match &pending.current_for_user {
        Some(previous) => match target
            .set_password(user, previous, Some(&pending.new))
            .await
        {
            Ok(()) => "the previous password was put back".to_owned(),
            Err(e) => format!("putting the previous password back failed: {}", e.message),
        },
        None => "the previous password is not known, so it could not be put back".to_owned(),
    };
    warn!(secret = name, user = %user, "the login test after the change failed; {restored}");
    Err(ChangeError::new(
        &failed.code,
        format!("{}; {restored}", failed.message),
    ))
}
