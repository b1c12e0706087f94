//! Secrets, versions and stages: the CSMS calls other than rotation, each one transaction.

use super::*;

impl Inner {
    pub(super) fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
        validate_project(project)?;
        validate_name(&req.name)?;
        let secret_type = secret_type_of(req.secret_type.as_deref())?;
        if let Some(cfg) = &req.rotation_config
            && cfg.len() > 1024
        {
            return Err(StoreError::invalid(
                "rotation_config",
                "at most 1024 characters",
            ));
        }
        if secret_type != "COMMON" {
            let cfg: RotationConfig = req
                .rotation_config
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| StoreError::invalid("rotation_config", "must be JSON {\"InstanceId\":\"\",\"SecretSubType\":\"SingleUser|MultiUser\"}"))?
                .unwrap_or_default();
            if !matches!(cfg.secret_sub_type.as_str(), "SingleUser" | "MultiUser") {
                return Err(StoreError::invalid(
                    "rotation_config",
                    format!(
                        "SecretSubType must be SingleUser or MultiUser for {secret_type} secrets"
                    ),
                ));
            }
        }
        let (value, kind) = value_of(req.secret_string, req.secret_binary)?;
        if secret_type != "COMMON" && DatabaseCredential::from_value(&value).is_none() {
            return Err(StoreError::invalid(
                "secret_string",
                "a database secret's value is JSON {\"username\":\"...\",\"password\":\"...\"}",
            ));
        }
        let now = now_ms();
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let existing = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            t.get(secret_key(project, &req.name).as_str())
                .ctx("reading a secret")?
                .map(|raw| {
                    self.decode_secret(&secret_key(project, &req.name), raw.value())
                        .map(|rec| deletion::deletion_due(&rec.secret, now))
                })
                .transpose()?
        };
        match existing {
            None => {}
            // Its scheduled deletion is due: it is gone, and the name is free.
            Some(true) => {
                self.remove_secret_in(&txn, project, &req.name)?;
            }
            Some(false) => return Err(StoreError::AlreadyExists { name: req.name }),
        }
        let secret = Secret {
            id: uuid::Uuid::new_v4().to_string(),
            name: req.name.clone(),
            state: SecretState::Enabled,
            kms_key_id: req.kms_key_id.unwrap_or_else(|| self.key.key_id()),
            description: req.description.unwrap_or_default(),
            create_time: now,
            update_time: now,
            scheduled_delete_time: 0,
            secret_type,
            auto_rotation: req.auto_rotation.unwrap_or(false),
            rotation_period: req.rotation_period,
            rotation_config: req.rotation_config,
            rotation_time: None,
            next_rotation_time: None,
            event_subscriptions: req.event_subscriptions,
            enterprise_project_id: req.enterprise_project_id,
            rotation_func_urn: req.rotation_func_urn,
        };
        let mut rec = SecretRecord {
            secret: secret.clone(),
            next_version: 2,
            stages: Default::default(),
            active_task: None,
        };
        let v = self.seal_version(project, &req.name, 1, &value, kind, 0)?;
        Self::move_stage(&mut rec, SYSCURRENT, "v1", now);
        self.write_version(&txn, project, &req.name, 1, &v)?;
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        info!(project, secret = %req.name, "created secret");
        Ok(secret)
    }

    pub(super) fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let r = self.db.begin_read().ctx("starting a read")?;
        let t = r.open_table(SECRETS).ctx("opening secrets")?;
        Ok(self.read_secret_in(&t, project, name)?.secret)
    }

    pub(super) fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let now = now_ms();
        let r = self.db.begin_read().ctx("starting a read")?;
        let t = r.open_table(SECRETS).ctx("opening secrets")?;
        let start = match marker {
            Some(m) => format!("{project}\0{m}\0"),
            None => format!("{project}\0"),
        };
        let end = prefix_end(&format!("{project}\0"));
        let mut secrets = Vec::new();
        let mut more = false;
        for item in t
            .range(start.as_str()..end.as_str())
            .ctx("listing secrets")?
        {
            let (k, v) = item.ctx("listing secrets")?;
            if secrets.len() == limit {
                more = true;
                break;
            }
            let rec = self.decode_secret(k.value(), v.value())?;
            if deletion::deletion_due(&rec.secret, now) {
                continue;
            }
            secrets.push(rec.secret);
        }
        let next_marker = if more {
            secrets.last().map(|s| s.name.clone())
        } else {
            None
        };
        Ok(SecretPage {
            page_info: PageInfo {
                next_marker,
                previous_marker: marker.map(str::to_owned),
                current_count: secrets.len() as u32,
            },
            secrets,
        })
    }

    pub(super) fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        Self::check_usable(&rec)?;
        let s = &mut rec.secret;
        if let Some(d) = req.description {
            if d.len() > 2048 {
                return Err(StoreError::invalid(
                    "description",
                    "at most 2048 characters",
                ));
            }
            s.description = d;
        }
        if let Some(k) = req.kms_key_id {
            s.kms_key_id = k;
        }
        if let Some(a) = req.auto_rotation {
            s.auto_rotation = a;
        }
        if let Some(p) = req.rotation_period {
            s.rotation_period = Some(p);
        }
        if let Some(e) = req.event_subscriptions {
            s.event_subscriptions = e;
        }
        if let Some(f) = req.rotation_func_urn {
            s.rotation_func_urn = Some(f);
        }
        if let Some(state) = req.state {
            if !matches!(state, SecretState::Enabled | SecretState::Disabled) {
                return Err(StoreError::invalid(
                    "state",
                    "only ENABLED and DISABLED can be set",
                ));
            }
            s.state = state;
        }
        s.update_time = now_ms();
        let out = s.clone();
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        Ok(out)
    }

    /// DeleteSecret: at once, whatever its state (a secret pending deletion included).
    pub(super) fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let already_due = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            match t
                .get(secret_key(project, name).as_str())
                .ctx("reading a secret")?
            {
                Some(raw) => deletion::deletion_due(
                    &self
                        .decode_secret(&secret_key(project, name), raw.value())?
                        .secret,
                    now_ms(),
                ),
                None => false,
            }
        };
        let removed = self.remove_secret_in(&txn, project, name)?;
        txn.commit().ctx("committing")?;
        if !removed || already_due {
            // A secret whose scheduled deletion was due was already gone; its remains went just now.
            return Err(StoreError::NotFound {
                kind: "secret",
                name: name.to_owned(),
            });
        }
        info!(project, secret = name, "deleted secret");
        Ok(())
    }

    pub(super) fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        let stages = if req.version_stages.is_empty() {
            vec![SYSCURRENT.to_owned()]
        } else {
            req.version_stages.clone()
        };
        validate_stages(&stages)?;
        let (value, kind) = value_of(req.secret_string, req.secret_binary)?;
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        Self::check_readable(&rec)?;
        let num = rec.next_version;
        let v = self.seal_version(
            project,
            name,
            num,
            &value,
            kind,
            req.expire_time.unwrap_or(0),
        )?;
        let now = now_ms();
        for s in &stages {
            Self::move_stage(&mut rec, s, &v.id, now);
        }
        rec.next_version += 1;
        rec.secret.update_time = now;
        self.write_version(&txn, project, name, num, &v)?;
        self.write_secret(&txn, project, &rec)?;
        self.prune(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        debug!(project, secret = name, version = %v.id, "created version");
        Ok(self.metadata(&rec, &v))
    }

    pub(super) fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        self.read_version_value(project, name, |rec| {
            if version_id == LATEST {
                return Ok(rec.next_version.saturating_sub(1));
            }
            version_num(version_id).ok_or_else(|| StoreError::NotFound {
                kind: "version",
                name: format!("{name}/{}", version_id.chars().take(32).collect::<String>()),
            })
        })
    }

    pub(super) fn show_version_by_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
    ) -> StoreResult<Version> {
        self.read_version_value(project, name, |rec| {
            rec.stages
                .get(stage)
                .and_then(|s| version_num(&s.version_id))
                .ok_or_else(|| StoreError::NotFound {
                    kind: "stage",
                    name: format!("{name}/{}", stage.chars().take(64).collect::<String>()),
                })
        })
    }

    /// One read transaction: the secret, the version `pick` chooses, its value decrypted.
    pub(super) fn read_version_value(
        &self,
        project: &str,
        name: &str,
        pick: impl FnOnce(&SecretRecord) -> StoreResult<u64>,
    ) -> StoreResult<Version> {
        let r = self.db.begin_read().ctx("starting a read")?;
        let st = r.open_table(SECRETS).ctx("opening secrets")?;
        let rec = self.read_secret_in(&st, project, name)?;
        Self::check_readable(&rec)?;
        let num = pick(&rec)?;
        let vt = r.open_table(VERSIONS).ctx("opening versions")?;
        let v = self.read_version_in(&vt, project, name, num)?;
        let value = self.open_version(project, name, &v)?;
        Ok(Version {
            version_metadata: self.metadata(&rec, &v),
            value,
            kind: v.kind,
        })
    }

    pub(super) fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let r = self.db.begin_read().ctx("starting a read")?;
        let st = r.open_table(SECRETS).ctx("opening secrets")?;
        let rec = self.read_secret_in(&st, project, name)?;
        Self::check_usable(&rec)?;
        let vt = r.open_table(VERSIONS).ctx("opening versions")?;
        let prefix = version_prefix(project, name);
        let end = match marker.and_then(version_num) {
            Some(n) => version_key(project, name, n),
            None => prefix_end(&prefix),
        };
        let mut out = Vec::new();
        let mut more = false;
        for item in vt
            .range(prefix.as_str()..end.as_str())
            .ctx("listing versions")?
            .rev()
        {
            let (_, raw) = item.ctx("listing versions")?;
            if out.len() == limit {
                more = true;
                break;
            }
            let v: VersionRecord =
                serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!("version record: {e}"),
                })?;
            out.push(self.metadata(&rec, &v));
        }
        let next_marker = if more {
            out.last().map(|v| v.id.clone())
        } else {
            None
        };
        Ok(VersionPage {
            page_info: PageInfo {
                next_marker,
                previous_marker: marker.map(str::to_owned),
                current_count: out.len() as u32,
            },
            version_metadatas: out,
        })
    }

    pub(super) fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        let r = self.db.begin_read().ctx("starting a read")?;
        let st = r.open_table(SECRETS).ctx("opening secrets")?;
        let rec = self.read_secret_in(&st, project, name)?;
        Self::check_usable(&rec)?;
        let s = rec.stages.get(stage).ok_or_else(|| StoreError::NotFound {
            kind: "stage",
            name: format!("{name}/{}", stage.chars().take(64).collect::<String>()),
        })?;
        Ok(Stage {
            name: stage.to_owned(),
            update_time: s.update_time,
            secret_name: name.to_owned(),
            version_id: s.version_id.clone(),
        })
    }

    pub(super) fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        validate_stages(&[stage.to_owned()])?;
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        Self::check_usable(&rec)?;
        let num = version_num(version_id).ok_or_else(|| StoreError::NotFound {
            kind: "version",
            name: format!("{name}/{}", version_id.chars().take(32).collect::<String>()),
        })?;
        {
            let vt = txn.open_table(VERSIONS).ctx("opening versions")?;
            self.read_version_in(&vt, project, name, num)?;
        }
        let now = now_ms();
        Self::move_stage(&mut rec, stage, version_id, now);
        rec.secret.update_time = now;
        self.write_secret(&txn, project, &rec)?;
        self.prune(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        Ok(Stage {
            name: stage.to_owned(),
            update_time: now,
            secret_name: name.to_owned(),
            version_id: version_id.to_owned(),
        })
    }

    pub(super) fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        if stage == SYSCURRENT || stage == SYSPENDING {
            return Err(StoreError::SystemStage {
                name: name.to_owned(),
                stage: stage.to_owned(),
            });
        }
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        Self::check_usable(&rec)?;
        if rec.stages.remove(stage).is_none() {
            return Err(StoreError::NotFound {
                kind: "stage",
                name: format!("{name}/{}", stage.chars().take(64).collect::<String>()),
            });
        }
        rec.secret.update_time = now_ms();
        self.write_secret(&txn, project, &rec)?;
        self.prune(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        Ok(())
    }
}
