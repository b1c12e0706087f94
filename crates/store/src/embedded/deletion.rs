//! Scheduled deletion, as CSMS does it: DeleteSecretForSchedule puts a secret in PENDING_DELETE with a
//! deletion time `recovery_window_in_days` (7 to 30, default 30) ahead; until then nothing of it can be used
//! (values, versions, stages, metadata changes, rotation: CSMS.0103), RestoreSecret makes it ENABLED again,
//! and once the time has passed it is gone. The state and the time are fields of the secret record, so the
//! record's MAC covers them: someone with the file but not the key can neither cancel a deletion nor
//! bring a deleted secret's deadline back.
//!
//! A secret whose time has passed is deleted lazily: every read treats it as missing, a write that meets it
//! (CreateSecret of the same name, DeleteSecret) removes it in its own transaction, and
//! [`Inner::purge_due_deletions`] (run by `serve` at start and periodically) removes the rest with their
//! versions and tasks.

use super::*;

/// The shortest recovery window, in days.
pub const MIN_RECOVERY_DAYS: i64 = 7;
/// The longest recovery window, in days.
pub const MAX_RECOVERY_DAYS: i64 = 30;
/// The window when the request names none, in days.
pub const DEFAULT_RECOVERY_DAYS: i64 = 30;

const DAY_MS: i64 = 86_400_000;

/// The deletion time of a secret scheduled at `now` (epoch ms) with `days` of recovery window.
pub fn deletion_time(now: i64, days: Option<i64>) -> StoreResult<i64> {
    let days = days.unwrap_or(DEFAULT_RECOVERY_DAYS);
    if !(MIN_RECOVERY_DAYS..=MAX_RECOVERY_DAYS).contains(&days) {
        return Err(StoreError::invalid(
            "recovery_window_in_days",
            format!("must be from {MIN_RECOVERY_DAYS} to {MAX_RECOVERY_DAYS} days, not {days}"),
        ));
    }
    Ok(now.saturating_add(days * DAY_MS))
}

/// Whether `secret` is scheduled for deletion and its time has come at `now` (epoch ms): it no longer
/// exists.
pub fn deletion_due(secret: &Secret, now: i64) -> bool {
    secret.state == SecretState::PendingDelete
        && secret.scheduled_delete_time > 0
        && now >= secret.scheduled_delete_time
}

/// An epoch-ms time as RFC 3339, for messages.
pub(super) fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{ms} ms after the epoch"))
}

impl Inner {
    /// DeleteSecretForSchedule at `now`.
    pub(super) fn schedule_deletion(
        &self,
        project: &str,
        name: &str,
        days: Option<i64>,
        now: i64,
    ) -> StoreResult<Secret> {
        let delete_at = deletion_time(now, days)?;
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_at(&t, project, name, now)?
        };
        if rec.secret.state == SecretState::PendingDelete {
            return Err(StoreError::PendingDeletion {
                name: name.to_owned(),
            });
        }
        rec.secret.state = SecretState::PendingDelete;
        rec.secret.scheduled_delete_time = delete_at;
        rec.secret.update_time = now;
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        info!(project, secret = name, delete_time = %rfc3339(delete_at), "secret scheduled for deletion");
        Ok(rec.secret)
    }

    /// RestoreSecret at `now`: a secret pending deletion becomes ENABLED again.
    pub(super) fn restore_secret(
        &self,
        project: &str,
        name: &str,
        now: i64,
    ) -> StoreResult<Secret> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_at(&t, project, name, now)?
        };
        if rec.secret.state != SecretState::PendingDelete {
            return Err(StoreError::NotPendingDeletion {
                name: name.to_owned(),
            });
        }
        rec.secret.state = SecretState::Enabled;
        rec.secret.scheduled_delete_time = 0;
        rec.secret.update_time = now;
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        info!(project, secret = name, "scheduled deletion cancelled");
        Ok(rec.secret)
    }

    /// Deletes every secret whose scheduled deletion time has passed at `now`, with its versions and
    /// tasks, in one transaction. Returns how many.
    pub(super) fn purge_due_deletions(&self, now: i64) -> StoreResult<usize> {
        let due: Vec<(String, String)> = {
            let r = self.db.begin_read().ctx("starting a read")?;
            let t = r.open_table(SECRETS).ctx("opening secrets")?;
            let mut due = Vec::new();
            for item in t.iter().ctx("listing secrets")? {
                let (k, v) = item.ctx("listing secrets")?;
                let rec = self.decode_secret(k.value(), v.value())?;
                if deletion_due(&rec.secret, now) {
                    let project = k.value().split('\0').next().unwrap_or_default().to_owned();
                    due.push((project, rec.secret.name));
                }
            }
            due
        };
        if due.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut removed = 0;
        for (project, name) in &due {
            // Read again inside the transaction: a RestoreSecret may have come in between.
            let still_due = {
                let t = txn.open_table(SECRETS).ctx("opening secrets")?;
                match t
                    .get(secret_key(project, name).as_str())
                    .ctx("reading a secret")?
                {
                    Some(raw) => deletion_due(
                        &self
                            .decode_secret(&secret_key(project, name), raw.value())?
                            .secret,
                        now,
                    ),
                    None => false,
                }
            };
            if still_due && self.remove_secret_in(&txn, project, name)? {
                removed += 1;
                info!(project, secret = %name, "deleted a secret whose scheduled deletion time had passed");
            }
        }
        txn.commit().ctx("committing")?;
        Ok(removed)
    }

    /// Removes a secret record with its versions and tasks inside `txn`; `false` when there was none.
    pub(super) fn remove_secret_in(
        &self,
        txn: &WriteTransaction,
        project: &str,
        name: &str,
    ) -> StoreResult<bool> {
        {
            let mut t = txn.open_table(SECRETS).ctx("opening secrets")?;
            if t.remove(secret_key(project, name).as_str())
                .ctx("deleting a secret")?
                .is_none()
            {
                return Ok(false);
            }
            let mut v = txn.open_table(VERSIONS).ctx("opening versions")?;
            let prefix = version_prefix(project, name);
            let end = prefix_end(&prefix);
            v.retain_in(prefix.as_str()..end.as_str(), |_, _| false)
                .ctx("deleting versions")?;
        }
        self.delete_tasks(txn, project, name)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_seven_to_thirty_days_and_thirty_by_default() {
        let now = 1_800_000_000_000;
        assert_eq!(deletion_time(now, None).unwrap(), now + 30 * DAY_MS);
        assert_eq!(deletion_time(now, Some(7)).unwrap(), now + 7 * DAY_MS);
        assert_eq!(deletion_time(now, Some(30)).unwrap(), now + 30 * DAY_MS);
        for bad in [6, 31, 0, -1, i64::MAX] {
            let e = deletion_time(now, Some(bad)).unwrap_err();
            assert_eq!(
                (e.status(), e.code()),
                (400, codes::INVALID_PARAMETER),
                "{bad}"
            );
            assert!(e.to_string().contains("recovery_window_in_days"), "{e}");
        }
    }

    #[test]
    fn a_deletion_is_due_at_its_time_and_only_when_pending() {
        let at = 1_800_000_000_000;
        let mut s = Secret {
            state: SecretState::PendingDelete,
            scheduled_delete_time: at,
            ..Secret::default()
        };
        assert!(!deletion_due(&s, at - 1));
        assert!(deletion_due(&s, at));
        assert!(deletion_due(&s, at + 7 * DAY_MS));
        s.state = SecretState::Enabled;
        assert!(!deletion_due(&s, at + 1), "restored");
        s.state = SecretState::PendingDelete;
        s.scheduled_delete_time = 0;
        assert!(!deletion_due(&s, at), "no time recorded");
    }
}
