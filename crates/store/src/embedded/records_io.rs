//! Reading and writing records inside one transaction, sealing and opening version values, moving stages
//! and pruning old versions.

use super::*;

impl Inner {
    /// A secret record, now. A secret whose scheduled deletion time has passed is missing.
    pub(super) fn read_secret_in(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        project: &str,
        name: &str,
    ) -> StoreResult<SecretRecord> {
        self.read_secret_at(table, project, name, now_ms())
    }

    /// A secret record as it stands at `now` (epoch ms): missing once its scheduled deletion is due.
    pub(super) fn read_secret_at(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        project: &str,
        name: &str,
        now: i64,
    ) -> StoreResult<SecretRecord> {
        let missing = || StoreError::NotFound {
            kind: "secret",
            name: name.to_owned(),
        };
        let raw = table
            .get(secret_key(project, name).as_str())
            .ctx("reading a secret")?
            .ok_or_else(missing)?;
        let rec = self.decode_secret(&secret_key(project, name), raw.value())?;
        if deletion::deletion_due(&rec.secret, now) {
            return Err(missing());
        }
        Ok(rec)
    }

    /// A stored secret record, authenticated.
    pub(super) fn decode_secret(
        &self,
        table_key: &str,
        stored: &[u8],
    ) -> StoreResult<SecretRecord> {
        let name = table_key.split('\0').nth(1).unwrap_or_default();
        let json = record_mac::open(&self.record_key, table_key, stored).ok_or_else(|| {
            StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!(
                    "the record of secret {name} was changed outside the store (its MAC does not match the master key): restore the file from a backup"
                ),
            }
        })?;
        serde_json::from_slice(json).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("secret record {name}: {e}"),
        })
    }

    pub(super) fn read_version_in(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        project: &str,
        name: &str,
        num: u64,
    ) -> StoreResult<VersionRecord> {
        let raw = table
            .get(version_key(project, name, num).as_str())
            .ctx("reading a version")?
            .ok_or_else(|| StoreError::NotFound {
                kind: "version",
                name: format!("{name}/v{num}"),
            })?;
        serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("version record {name}/v{num}: {e}"),
        })
    }

    pub(super) fn write_secret(
        &self,
        txn: &WriteTransaction,
        project: &str,
        rec: &SecretRecord,
    ) -> StoreResult<()> {
        let mut t = txn.open_table(SECRETS).ctx("opening secrets")?;
        let key = secret_key(project, &rec.secret.name);
        let json = serde_json::to_vec(rec).ctx("encoding a secret record")?;
        let stored = record_mac::seal(&self.record_key, &key, json);
        t.insert(key.as_str(), stored.as_slice())
            .ctx("writing a secret")?;
        Ok(())
    }

    pub(super) fn write_version(
        &self,
        txn: &WriteTransaction,
        project: &str,
        name: &str,
        num: u64,
        rec: &VersionRecord,
    ) -> StoreResult<()> {
        let mut t = txn.open_table(VERSIONS).ctx("opening versions")?;
        let bytes = serde_json::to_vec(rec).ctx("encoding a version record")?;
        t.insert(version_key(project, name, num).as_str(), bytes.as_slice())
            .ctx("writing a version")?;
        Ok(())
    }

    pub(super) fn read_task_txn(
        &self,
        txn: &WriteTransaction,
        project: &str,
        task_id: &str,
    ) -> StoreResult<Option<RotationTask>> {
        let t = txn.open_table(TASKS).ctx("opening tasks")?;
        let raw = t
            .get(task_key(project, task_id).as_str())
            .ctx("reading a task")?;
        match raw {
            None => Ok(None),
            Some(r) => {
                serde_json::from_slice(r.value())
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path: self.path.display().to_string(),
                        message: format!("task record {task_id}: {e}"),
                    })
            }
        }
    }

    pub(super) fn seal_version(
        &self,
        project: &str,
        name: &str,
        num: u64,
        value: &SecretValue,
        kind: ValueKind,
        expire_time: i64,
    ) -> StoreResult<VersionRecord> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::invalid(
                "secret_string",
                "a value is at most 32 KiB",
            ));
        }
        let id = format!("v{num}");
        let sealed = self.key.seal(
            Binding {
                project,
                secret: name,
                version: &id,
            },
            value,
        )?;
        Ok(VersionRecord {
            id,
            create_time: now_ms(),
            expire_time,
            kms_key_id: self.key.key_id(),
            kind,
            sealed,
        })
    }

    pub(super) fn open_version(
        &self,
        project: &str,
        name: &str,
        rec: &VersionRecord,
    ) -> StoreResult<SecretValue> {
        self.key.open(
            Binding {
                project,
                secret: name,
                version: &rec.id,
            },
            &rec.sealed,
        )
    }

    /// Points `stage` at `version_id`; a moving SYSCURRENT sends the old one to SYSPREVIOUS.
    pub(super) fn move_stage(rec: &mut SecretRecord, stage: &str, version_id: &str, now: i64) {
        if stage == SYSCURRENT
            && let Some(old) = rec.stages.get(SYSCURRENT).map(|s| s.version_id.clone())
            && old != version_id
        {
            rec.stages.insert(
                SYSPREVIOUS.to_owned(),
                StageRecord {
                    version_id: old,
                    update_time: now,
                },
            );
        }
        rec.stages.insert(
            stage.to_owned(),
            StageRecord {
                version_id: version_id.to_owned(),
                update_time: now,
            },
        );
    }

    /// Deletes the oldest stage-less versions beyond the history limit.
    pub(super) fn prune(
        &self,
        txn: &WriteTransaction,
        project: &str,
        rec: &SecretRecord,
    ) -> StoreResult<()> {
        let staged: HashSet<u64> = rec
            .stages
            .values()
            .filter_map(|s| version_num(&s.version_id))
            .collect();
        let mut t = txn.open_table(VERSIONS).ctx("opening versions")?;
        let prefix = version_prefix(project, &rec.secret.name);
        let end = prefix_end(&prefix);
        let mut existing = Vec::new();
        for item in t
            .range(prefix.as_str()..end.as_str())
            .ctx("listing versions")?
        {
            let (k, _) = item.ctx("listing versions")?;
            if let Some(n) = k
                .value()
                .rsplit('\0')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                && !staged.contains(&n)
            {
                existing.push(n);
            }
        }
        if existing.len() > self.history_limit {
            let excess = existing.len() - self.history_limit;
            for n in existing.into_iter().take(excess) {
                t.remove(version_key(project, &rec.secret.name, n).as_str())
                    .ctx("pruning a version")?;
            }
        }
        Ok(())
    }

    pub(super) fn metadata(&self, rec: &SecretRecord, v: &VersionRecord) -> VersionMetadata {
        VersionMetadata {
            id: v.id.clone(),
            create_time: v.create_time,
            expire_time: v.expire_time,
            kms_key_id: v.kms_key_id.clone(),
            secret_name: rec.secret.name.clone(),
            version_stages: rec.stages_of(&v.id),
        }
    }

    /// Refuses a secret scheduled for deletion (CSMS.0103): its values, versions and stages cannot be
    /// used, nor its metadata changed.
    pub(super) fn check_usable(rec: &SecretRecord) -> StoreResult<()> {
        if rec.secret.state == SecretState::PendingDelete {
            return Err(StoreError::ScheduledForDeletion {
                name: rec.secret.name.clone(),
                delete_time: deletion::rfc3339(rec.secret.scheduled_delete_time),
            });
        }
        Ok(())
    }

    /// Refuses a secret whose values cannot be read or rotated: scheduled for deletion, or disabled.
    pub(super) fn check_readable(rec: &SecretRecord) -> StoreResult<()> {
        Self::check_usable(rec)?;
        if rec.secret.state != SecretState::Enabled {
            return Err(StoreError::Disabled {
                name: rec.secret.name.clone(),
            });
        }
        Ok(())
    }
}
