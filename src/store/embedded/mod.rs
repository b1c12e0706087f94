//! The embedded store: CSMS semantics in one redb file, every value under envelope encryption.
//!
//! Every state change is one redb write transaction (durable at commit). A database rotation spans three
//! of them around the database calls: (1) the pending version and its PROCESSING task, (2) the database
//! sets and tests the password, (3) SYSCURRENT moves and the task becomes SUCCESS. A crash between them
//! leaves SYSPENDING in place, and the next rotate resumes it with the same value.

pub mod crypto;
mod records;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tracing::{debug, info, warn};

use crate::password::PasswordPolicy;
use crate::secret_value::SecretValue;
use crate::store::error::{StoreError, codes};
use crate::store::model::*;
use crate::store::{SecretName, Store, StoreResult, now_ms};
use crypto::{Binding, MasterKey};
use records::{SecretRecord, StageRecord, VersionRecord};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");

const KCV_KEY: &str = "kcv";
const FORMAT_KEY: &str = "format";
const FORMAT: &[u8] = b"secret-rotator-store/1";
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// Deprecated (stage-less) versions kept per secret by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// Options of [`EmbeddedStore::open`].
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Deprecated versions kept per secret; older ones are pruned.
    pub history_limit: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history_limit: DEFAULT_HISTORY_LIMIT,
        }
    }
}

struct Inner {
    db: Database,
    key: MasterKey,
    path: PathBuf,
    history_limit: usize,
    rotating: Mutex<HashSet<String>>,
}

/// The embedded, encrypted store.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("key", &self.inner.key)
            .finish()
    }
}

fn secret_key(project: &str, name: &str) -> String {
    format!("{project}\0{name}")
}

fn version_key(project: &str, name: &str, num: u64) -> String {
    format!("{project}\0{name}\0{num:012}")
}

fn version_prefix(project: &str, name: &str) -> String {
    format!("{project}\0{name}\0")
}

fn task_key(project: &str, task_id: &str) -> String {
    format!("{project}\0{task_id}")
}

/// The end of a key range that starts with `prefix` (prefixes end in NUL; the next byte is 0x01).
fn prefix_end(prefix: &str) -> String {
    let mut s = prefix[..prefix.len() - 1].to_owned();
    s.push('\u{1}');
    s
}

fn version_num(id: &str) -> Option<u64> {
    id.strip_prefix('v')?.parse().ok().filter(|n| *n > 0)
}

trait Ctx<T> {
    fn ctx(self, operation: &str) -> StoreResult<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for Result<T, E> {
    fn ctx(self, operation: &str) -> StoreResult<T> {
        self.map_err(|e| StoreError::internal(operation, e))
    }
}

fn validate_name(name: &str) -> StoreResult<()> {
    SecretName::parse(name)
        .map(|_| ())
        .map_err(|e| StoreError::invalid("name", e.to_string()))
}

fn validate_project(project: &str) -> StoreResult<()> {
    if project.is_empty()
        || project.len() > 64
        || !project
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(StoreError::invalid(
            "project_id",
            "a project id is 1 to 64 letters, digits, '_' or '-'",
        ));
    }
    Ok(())
}

fn validate_stages(stages: &[String]) -> StoreResult<()> {
    if stages.len() > 12 {
        return Err(StoreError::invalid("version_stages", "at most 12 stages"));
    }
    for s in stages {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(StoreError::invalid(
                "version_stages",
                "a stage is 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if s == SYSPENDING || s == SYSPREVIOUS {
            return Err(StoreError::invalid(
                "version_stages",
                format!("{s} is managed by the store and cannot be set directly"),
            ));
        }
    }
    Ok(())
}

fn secret_type_of(t: Option<&str>) -> StoreResult<String> {
    match t.unwrap_or("COMMON") {
        "" | "COMMON" => Ok("COMMON".to_owned()),
        "RDS-FG" => Ok("RDS-FG".to_owned()),
        "GaussDB-FG" => Ok("GaussDB-FG".to_owned()),
        other => Err(StoreError::invalid(
            "secret_type",
            format!(
                "{:?} is not one of COMMON, RDS-FG, GaussDB-FG",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// The value and kind of a create request; exactly one of string and binary.
fn value_of(
    secret_string: Option<SecretValue>,
    secret_binary: Option<SecretValue>,
) -> StoreResult<(SecretValue, ValueKind)> {
    match (secret_string, secret_binary) {
        (Some(s), None) => Ok((s, ValueKind::String)),
        (None, Some(b)) => Ok((b, ValueKind::Binary)),
        (None, None) => Err(StoreError::invalid(
            "secret_string",
            "one of secret_string and secret_binary is required",
        )),
        (Some(_), Some(_)) => Err(StoreError::invalid(
            "secret_binary",
            "give secret_string or secret_binary, not both",
        )),
    }
}

const MAX_VALUE_BYTES: usize = 32 * 1024;

/// What phase one of a rotation hands to the database steps.
struct PendingRotation {
    version_id: String,
    task_id: String,
    user: String,
    new: SecretValue,
    current_for_user: Option<SecretValue>,
    resumed: bool,
}

impl Inner {
    fn read_secret_in(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        project: &str,
        name: &str,
    ) -> StoreResult<SecretRecord> {
        let raw = table
            .get(secret_key(project, name).as_str())
            .ctx("reading a secret")?
            .ok_or_else(|| StoreError::NotFound {
                kind: "secret",
                name: name.to_owned(),
            })?;
        serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("secret record {name}: {e}"),
        })
    }

    fn read_version_in(
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

    fn write_secret(
        &self,
        txn: &WriteTransaction,
        project: &str,
        rec: &SecretRecord,
    ) -> StoreResult<()> {
        let mut t = txn.open_table(SECRETS).ctx("opening secrets")?;
        let bytes = serde_json::to_vec(rec).ctx("encoding a secret record")?;
        t.insert(
            secret_key(project, &rec.secret.name).as_str(),
            bytes.as_slice(),
        )
        .ctx("writing a secret")?;
        Ok(())
    }

    fn write_version(
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

    fn write_task(
        &self,
        txn: &WriteTransaction,
        project: &str,
        task: &RotationTask,
    ) -> StoreResult<()> {
        let mut t = txn.open_table(TASKS).ctx("opening tasks")?;
        let bytes = serde_json::to_vec(task).ctx("encoding a task")?;
        t.insert(task_key(project, &task.task_id).as_str(), bytes.as_slice())
            .ctx("writing a task")?;
        Ok(())
    }

    fn read_task_txn(
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

    fn seal_version(
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

    fn open_version(
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
    fn move_stage(rec: &mut SecretRecord, stage: &str, version_id: &str, now: i64) {
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
    fn prune(&self, txn: &WriteTransaction, project: &str, rec: &SecretRecord) -> StoreResult<()> {
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

    fn metadata(&self, rec: &SecretRecord, v: &VersionRecord) -> VersionMetadata {
        VersionMetadata {
            id: v.id.clone(),
            create_time: v.create_time,
            expire_time: v.expire_time,
            kms_key_id: v.kms_key_id.clone(),
            secret_name: rec.secret.name.clone(),
            version_stages: rec.stages_of(&v.id),
        }
    }

    fn check_readable(rec: &SecretRecord) -> StoreResult<()> {
        if rec.secret.state != SecretState::Enabled {
            return Err(StoreError::Disabled {
                name: rec.secret.name.clone(),
            });
        }
        Ok(())
    }

    // ---- operations, each run on a blocking thread ----

    fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
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
        {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            if t.get(secret_key(project, &req.name).as_str())
                .ctx("reading a secret")?
                .is_some()
            {
                return Err(StoreError::AlreadyExists { name: req.name });
            }
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

    fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        let r = self.db.begin_read().ctx("starting a read")?;
        let t = r.open_table(SECRETS).ctx("opening secrets")?;
        Ok(self.read_secret_in(&t, project, name)?.secret)
    }

    fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
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
            let (_, v) = item.ctx("listing secrets")?;
            if secrets.len() == limit {
                more = true;
                break;
            }
            let rec: SecretRecord =
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!("secret record: {e}"),
                })?;
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

    fn update_secret(&self, project: &str, name: &str, req: UpdateSecret) -> StoreResult<Secret> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
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

    fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        {
            let mut t = txn.open_table(SECRETS).ctx("opening secrets")?;
            if t.remove(secret_key(project, name).as_str())
                .ctx("deleting a secret")?
                .is_none()
            {
                return Err(StoreError::NotFound {
                    kind: "secret",
                    name: name.to_owned(),
                });
            }
            let mut v = txn.open_table(VERSIONS).ctx("opening versions")?;
            let prefix = version_prefix(project, name);
            let end = prefix_end(&prefix);
            v.retain_in(prefix.as_str()..end.as_str(), |_, _| false)
                .ctx("deleting versions")?;
        }
        txn.commit().ctx("committing")?;
        info!(project, secret = name, "deleted secret");
        Ok(())
    }

    fn create_version(
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

    fn show_version(&self, project: &str, name: &str, version_id: &str) -> StoreResult<Version> {
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

    fn show_version_by_stage(
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
    fn read_version_value(
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

    fn list_versions(
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

    fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        let r = self.db.begin_read().ctx("starting a read")?;
        let st = r.open_table(SECRETS).ctx("opening secrets")?;
        let rec = self.read_secret_in(&st, project, name)?;
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

    fn update_stage(
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

    fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        if stage == SYSCURRENT || stage == SYSPENDING {
            return Err(StoreError::StageConstraint {
                name: name.to_owned(),
                message: format!("{stage} cannot be removed"),
            });
        }
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
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

    /// Phase one: durably record the pending version and its task (or pick up an interrupted one).
    fn begin_rotation(
        &self,
        project: &str,
        name: &str,
        policy: &PasswordPolicy,
    ) -> StoreResult<PendingRotation> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut rec = {
            let t = txn.open_table(SECRETS).ctx("opening secrets")?;
            self.read_secret_in(&t, project, name)?
        };
        if rec.secret.secret_type == "COMMON" {
            return Err(StoreError::RotateUnsupported {
                name: name.to_owned(),
            });
        }
        Self::check_readable(&rec)?;
        let now = now_ms();
        let read_stage =
            |rec: &SecretRecord, stage: &str| -> StoreResult<Option<DatabaseCredential>> {
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
            };

        if let Some(pending) = rec.stages.get(SYSPENDING).map(|s| s.version_id.clone()) {
            // Resume: the same value, the same task.
            let cred = read_stage(&rec, SYSPENDING)?.ok_or_else(|| StoreError::Corrupt {
                path: self.path.display().to_string(),
                message: format!(
                    "pending version {pending} of {name} is not a database credential"
                ),
            })?;
            let current_for_user = Self::current_password_for(&rec, &cred.username, &read_stage)?;
            let mut task = match rec.active_task.as_deref() {
                Some(id) => self.read_task_txn(&txn, project, id)?,
                None => None,
            }
            .unwrap_or_else(|| new_task(name, now));
            task.task_status = TaskStatus::Processing;
            task.attempt_nums += 1;
            task.task_time = now;
            rec.active_task = Some(task.task_id.clone());
            self.write_task(&txn, project, &task)?;
            self.write_secret(&txn, project, &rec)?;
            txn.commit().ctx("committing")?;
            info!(project, secret = name, version = %pending, task = %task.task_id, attempt = task.attempt_nums, "resuming rotation");
            return Ok(PendingRotation {
                version_id: pending,
                task_id: task.task_id,
                user: cred.username.clone(),
                new: SecretValue::from_str_value(&cred.password),
                current_for_user,
                resumed: true,
            });
        }

        let current = read_stage(&rec, SYSCURRENT)?.ok_or_else(|| StoreError::invalid(
            "secret_string",
            format!("the SYSCURRENT value of {name} is not a database credential JSON {{\"username\",\"password\"}}"),
        ))?;
        let cfg: RotationConfig = rec
            .secret
            .rotation_config
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        let user = if cfg.secret_sub_type == "MultiUser" {
            match read_stage(&rec, SYSPREVIOUS)? {
                Some(prev) if prev.username != current.username => prev.username.clone(),
                _ => cfg
                    .usernames
                    .iter()
                    .find(|u| **u != current.username)
                    .cloned()
                    .unwrap_or_else(|| format!("{}_clone", current.username)),
            }
        } else {
            current.username.clone()
        };
        let current_for_user = Self::current_password_for(&rec, &user, &read_stage)?;
        let password = crate::password::generate(policy)
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
        rec.active_task = Some(task.task_id.clone());
        rec.secret.update_time = now;
        self.write_version(&txn, project, name, num, &v)?;
        self.write_task(&txn, project, &task)?;
        self.write_secret(&txn, project, &rec)?;
        txn.commit().ctx("committing")?;
        info!(project, secret = name, version = %v.id, task = %task.task_id, user = %user, "rotation started");
        Ok(PendingRotation {
            version_id: v.id,
            task_id: task.task_id,
            user,
            new: password,
            current_for_user,
            resumed: false,
        })
    }

    /// The password the store holds for `user`: SYSCURRENT's or SYSPREVIOUS's when it names that account.
    fn current_password_for(
        rec: &SecretRecord,
        user: &str,
        read_stage: &dyn Fn(&SecretRecord, &str) -> StoreResult<Option<DatabaseCredential>>,
    ) -> StoreResult<Option<SecretValue>> {
        for stage in [SYSCURRENT, SYSPREVIOUS] {
            if let Some(c) = read_stage(rec, stage)?
                && c.username == user
            {
                return Ok(Some(SecretValue::from_str_value(&c.password)));
            }
        }
        Ok(None)
    }

    /// Phase three: SYSCURRENT moves to the pending version; the task succeeds.
    fn finish_rotation(
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

    /// Records a failed database step; SYSPENDING stays for the next attempt.
    fn fail_rotation(
        &self,
        project: &str,
        name: &str,
        p: &PendingRotation,
        code: &str,
        message: &str,
    ) -> StoreResult<()> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let now = now_ms();
        let mut task = self
            .read_task_txn(&txn, project, &p.task_id)?
            .unwrap_or_else(|| new_task(name, now));
        task.task_status = TaskStatus::Failed;
        task.task_error_code = code.to_owned();
        task.task_error_msg = message.chars().take(512).collect();
        self.write_task(&txn, project, &task)?;
        txn.commit().ctx("committing")?;
        warn!(project, secret = name, task = %p.task_id, code, error = message, "rotation failed; the pending version is kept");
        Ok(())
    }

    fn list_tasks(&self, project: &str, filter: &TaskFilter) -> StoreResult<TaskPage> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let r = self.db.begin_read().ctx("starting a read")?;
        let t = r.open_table(TASKS).ctx("opening tasks")?;
        let prefix = format!("{project}\0");
        let end = prefix_end(&prefix);
        let mut all = Vec::new();
        for item in t
            .range(prefix.as_str()..end.as_str())
            .ctx("listing tasks")?
        {
            let (_, raw) = item.ctx("listing tasks")?;
            let task: RotationTask =
                serde_json::from_slice(raw.value()).map_err(|e| StoreError::Corrupt {
                    path: self.path.display().to_string(),
                    message: format!("task record: {e}"),
                })?;
            if filter
                .secret_name
                .as_deref()
                .is_some_and(|n| n != task.secret_name)
                || filter.status.is_some_and(|s| s != task.task_status)
                || filter
                    .task_id
                    .as_deref()
                    .is_some_and(|id| id != task.task_id)
            {
                continue;
            }
            all.push(task);
        }
        all.sort_by(|a, b| {
            b.task_time
                .cmp(&a.task_time)
                .then_with(|| a.task_id.cmp(&b.task_id))
        });
        let total = all.len() as u32;
        let start = match filter.marker.as_deref() {
            Some(m) => all
                .iter()
                .position(|t| t.task_id == m)
                .map(|i| i + 1)
                .unwrap_or(all.len()),
            None => 0,
        };
        let tasks: Vec<RotationTask> = all.into_iter().skip(start).take(limit + 1).collect();
        let (tasks, next_marker) = if tasks.len() > limit {
            let page: Vec<RotationTask> = tasks.into_iter().take(limit).collect();
            let m = page.last().map(|t| t.task_id.clone());
            (page, m)
        } else {
            (tasks, None)
        };
        Ok(TaskPage {
            total,
            tasks,
            next_marker,
        })
    }
}

fn new_task(name: &str, now: i64) -> RotationTask {
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

/// Creates the store file readable by its owner only.
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Checks the key check value of an existing store without writing to it. `Ok(false)` means the file
/// needs crash recovery before it can be read (redb refuses a read-only open then).
fn verify_read_only(path: &Path, key: &MasterKey) -> StoreResult<bool> {
    let db = match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => db,
        Err(redb::DatabaseError::RepairAborted) => return Ok(false),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(StoreError::internal(
                format!("opening {}", path.display()),
                "the store is already open in another process",
            ));
        }
        Err(e) => return Err(corrupt(path, e)),
    };
    let r = db.begin_read().map_err(|e| corrupt(path, e))?;
    let t = r.open_table(META).map_err(|e| corrupt(path, e))?;
    check_meta(path, key, &t)?;
    scan(path, &r)?;
    Ok(true)
}

/// Reads every record of every table and decodes it: damage shows here, at open, rather than later.
fn scan(path: &Path, r: &redb::ReadTransaction) -> StoreResult<()> {
    fn each<T: serde::de::DeserializeOwned>(
        path: &Path,
        r: &redb::ReadTransaction,
        table: TableDefinition<&str, &[u8]>,
        what: &str,
    ) -> StoreResult<()> {
        let t = r.open_table(table).map_err(|e| corrupt(path, e))?;
        for item in t.iter().map_err(|e| corrupt(path, e))? {
            let (k, v) = item.map_err(|e| corrupt(path, e))?;
            // Decoding the key too: the engine decodes text keys by unwrapping (a panic, guarded).
            if k.value().is_empty() {
                return Err(corrupt(path, format!("a {what} record has an empty key")));
            }
            serde_json::from_slice::<T>(v.value())
                .map_err(|e| corrupt(path, format!("a {what} record does not decode: {e}")))?;
        }
        Ok(())
    }
    each::<SecretRecord>(path, r, SECRETS, "secret")?;
    each::<VersionRecord>(path, r, VERSIONS, "version")?;
    each::<RotationTask>(path, r, TASKS, "task")?;
    Ok(())
}

/// Runs `f`, turning a panic inside the storage engine (it asserts on some damaged files) into an error.
fn guarded<T>(path: &Path, f: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(corrupt(
            path,
            "the storage engine found the file inconsistent (damaged or truncated); restore it from a backup",
        )),
    }
}

fn check_meta(
    path: &Path,
    key: &MasterKey,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> StoreResult<()> {
    let format = t.get(FORMAT_KEY).map_err(|e| corrupt(path, e))?;
    if format.as_ref().map(|f| f.value()) != Some(FORMAT) {
        return Err(corrupt(path, "missing or unknown format marker"));
    }
    let kcv = t
        .get(KCV_KEY)
        .map_err(|e| corrupt(path, e))?
        .ok_or_else(|| corrupt(path, "no key check value"))?;
    if !key.verify_key_check_value(kcv.value()) {
        return Err(StoreError::WrongMasterKey {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

impl EmbeddedStore {
    /// Opens (or creates) the store at `path` with the master key. An existing store opened with another
    /// key fails with [`StoreError::WrongMasterKey`] before anything is written.
    pub fn open(
        path: &Path,
        key: MasterKey,
        options: EmbeddedOptions,
    ) -> StoreResult<EmbeddedStore> {
        let exists = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        if exists {
            guarded(path, || verify_read_only(path, &key))?;
        }
        // A file that needed crash recovery was not scanned read-only; the engine repairs it here.
        let db = guarded(path, || {
            let db = if exists {
                Database::open(path).map_err(|e| match e {
                    redb::DatabaseError::DatabaseAlreadyOpen => StoreError::internal(
                        format!("opening {}", path.display()),
                        "the store is already open in another process",
                    ),
                    e => corrupt(path, e),
                })?
            } else {
                if path.exists() {
                    std::fs::remove_file(path).ctx("removing an empty store file")?;
                }
                let file = create_private_file(path)
                    .map_err(|e| StoreError::internal(format!("creating {}", path.display()), e))?;
                redb::Builder::new()
                    .create_file(file)
                    .map_err(|e| corrupt(path, e))?
            };
            let txn = db.begin_write().map_err(|e| corrupt(path, e))?;
            {
                let mut meta = txn.open_table(META).map_err(|e| corrupt(path, e))?;
                if exists {
                    // Verified read-only above, unless the file needed recovery: check again after it.
                    check_meta(path, &key, &meta)?;
                } else {
                    let kcv = key.key_check_value()?;
                    meta.insert(KCV_KEY, kcv.as_slice())
                        .map_err(|e| corrupt(path, e))?;
                    meta.insert(FORMAT_KEY, FORMAT)
                        .map_err(|e| corrupt(path, e))?;
                }
                txn.open_table(SECRETS).map_err(|e| corrupt(path, e))?;
                txn.open_table(VERSIONS).map_err(|e| corrupt(path, e))?;
                txn.open_table(TASKS).map_err(|e| corrupt(path, e))?;
            }
            if exists {
                txn.abort().map_err(|e| corrupt(path, e))?;
            } else {
                txn.commit().map_err(|e| corrupt(path, e))?;
            }
            Ok(db)
        })?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                key,
                path: path.to_owned(),
                history_limit: options.history_limit,
                rotating: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Re-wraps every data key from `old` to `new` in one transaction; values are not re-encrypted.
    /// Returns the number of versions re-wrapped.
    pub fn rekey(path: &Path, old: MasterKey, new: &MasterKey) -> StoreResult<usize> {
        let store = EmbeddedStore::open(path, old, EmbeddedOptions::default())?;
        let inner = &store.inner;
        let txn = inner.db.begin_write().ctx("starting a transaction")?;
        let mut count = 0;
        {
            let mut vt = txn.open_table(VERSIONS).ctx("opening versions")?;
            let mut updates = Vec::new();
            for item in vt.iter().ctx("reading versions")? {
                let (k, v) = item.ctx("reading versions")?;
                let key = k.value().to_owned();
                let mut rec: VersionRecord =
                    serde_json::from_slice(v.value()).map_err(|e| corrupt(path, e))?;
                let mut parts = key.split('\0');
                let (Some(project), Some(secret)) = (parts.next(), parts.next()) else {
                    return Err(corrupt(path, "malformed version key"));
                };
                rec.sealed = inner.key.rewrap(
                    new,
                    Binding {
                        project,
                        secret,
                        version: &rec.id,
                    },
                    &rec.sealed,
                )?;
                rec.kms_key_id = new.key_id();
                updates.push((key, serde_json::to_vec(&rec).ctx("encoding a version")?));
            }
            for (k, v) in updates {
                vt.insert(k.as_str(), v.as_slice())
                    .ctx("writing a version")?;
                count += 1;
            }
            let mut meta = txn.open_table(META).ctx("opening meta")?;
            let kcv = new.key_check_value()?;
            meta.insert(KCV_KEY, kcv.as_slice())
                .ctx("writing the key check value")?;
        }
        txn.commit().ctx("committing the re-key")?;
        info!(path = %path.display(), versions = count, new_key = %new.key_id(), "re-keyed the store");
        Ok(count)
    }

    /// The id of the master key in use.
    pub fn key_id(&self) -> String {
        self.inner.key.key_id()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::internal("a store task", e))?
    }
}

/// Marks a secret as being rotated in this process; released on drop.
struct RotationGuard {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for RotationGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.inner.rotating.lock() {
            set.remove(&self.key);
        }
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_secret(&self, project: &str, req: CreateSecret) -> StoreResult<Secret> {
        let project = project.to_owned();
        self.blocking(move |i| i.create_secret(&project, req)).await
    }

    async fn show_secret(&self, project: &str, name: &str) -> StoreResult<Secret> {
        self.inner.show_secret(project, name)
    }

    async fn list_secrets(
        &self,
        project: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<SecretPage> {
        let (project, marker) = (project.to_owned(), marker.map(str::to_owned));
        self.blocking(move |i| i.list_secrets(&project, limit, marker.as_deref()))
            .await
    }

    async fn update_secret(
        &self,
        project: &str,
        name: &str,
        req: UpdateSecret,
    ) -> StoreResult<Secret> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.update_secret(&project, &name, req))
            .await
    }

    async fn delete_secret(&self, project: &str, name: &str) -> StoreResult<()> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.delete_secret(&project, &name))
            .await
    }

    async fn create_version(
        &self,
        project: &str,
        name: &str,
        req: CreateVersion,
    ) -> StoreResult<VersionMetadata> {
        let (project, name) = (project.to_owned(), name.to_owned());
        self.blocking(move |i| i.create_version(&project, &name, req))
            .await
    }

    async fn show_version(
        &self,
        project: &str,
        name: &str,
        version_id: &str,
    ) -> StoreResult<Version> {
        // Reads are short and never wait for a commit: they run inline.
        self.inner.show_version(project, name, version_id)
    }

    async fn show_version_by_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
    ) -> StoreResult<Version> {
        self.inner.show_version_by_stage(project, name, stage)
    }

    async fn list_versions(
        &self,
        project: &str,
        name: &str,
        limit: Option<u32>,
        marker: Option<&str>,
    ) -> StoreResult<VersionPage> {
        let (project, name, marker) = (
            project.to_owned(),
            name.to_owned(),
            marker.map(str::to_owned),
        );
        self.blocking(move |i| i.list_versions(&project, &name, limit, marker.as_deref()))
            .await
    }

    async fn show_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<Stage> {
        self.inner.show_stage(project, name, stage)
    }

    async fn update_stage(
        &self,
        project: &str,
        name: &str,
        stage: &str,
        version_id: &str,
    ) -> StoreResult<Stage> {
        let (project, name, stage, id) = (
            project.to_owned(),
            name.to_owned(),
            stage.to_owned(),
            version_id.to_owned(),
        );
        self.blocking(move |i| i.update_stage(&project, &name, &stage, &id))
            .await
    }

    async fn delete_stage(&self, project: &str, name: &str, stage: &str) -> StoreResult<()> {
        let (project, name, stage) = (project.to_owned(), name.to_owned(), stage.to_owned());
        self.blocking(move |i| i.delete_stage(&project, &name, &stage))
            .await
    }

    async fn rotate(
        &self,
        project: &str,
        name: &str,
        opts: RotateOptions,
    ) -> StoreResult<RotateResult> {
        let key = secret_key(project, name);
        {
            let mut set = self
                .inner
                .rotating
                .lock()
                .map_err(|_| StoreError::internal("locking the rotation set", "poisoned"))?;
            if !set.insert(key.clone()) {
                return Err(StoreError::RotationInProgress {
                    name: name.to_owned(),
                });
            }
        }
        let _guard = RotationGuard {
            inner: self.inner.clone(),
            key,
        };
        let policy = opts.policy.clone().unwrap_or_default();
        let (p1, n1) = (project.to_owned(), name.to_owned());
        let pending = self
            .blocking(move |i| i.begin_rotation(&p1, &n1, &policy))
            .await?;

        let outcome = match opts.target.as_deref() {
            None => Err(crate::store::target::TargetError::new(
                "CONFIG",
                "no database target is configured for this secret",
            )),
            Some(target) => {
                let already =
                    pending.resumed && target.test_login(&pending.user, &pending.new).await.is_ok();
                if already {
                    debug!(
                        secret = name,
                        "the database already has the pending password"
                    );
                    Ok(())
                } else {
                    match target
                        .set_password(
                            &pending.user,
                            &pending.new,
                            pending.current_for_user.as_ref(),
                        )
                        .await
                    {
                        Ok(()) => target.test_login(&pending.user, &pending.new).await,
                        Err(e) => Err(e),
                    }
                }
            }
        };
        let pending = Arc::new(pending);
        match outcome {
            Ok(()) => {
                let (p3, n3, pr) = (project.to_owned(), name.to_owned(), pending.clone());
                self.blocking(move |i| i.finish_rotation(&p3, &n3, &pr))
                    .await
            }
            Err(e) => {
                let code = format!("{}.{}", codes::TARGET_FAILED, e.code);
                let message = e.message.clone();
                let (p3, n3, pr, c, m) = (
                    project.to_owned(),
                    name.to_owned(),
                    pending.clone(),
                    code.clone(),
                    message.clone(),
                );
                self.blocking(move |i| i.fail_rotation(&p3, &n3, &pr, &c, &m))
                    .await?;
                Err(StoreError::RotationFailed {
                    name: name.to_owned(),
                    task_id: pending.task_id.clone(),
                    code,
                    message,
                })
            }
        }
    }

    async fn list_tasks(&self, project: &str, filter: TaskFilter) -> StoreResult<TaskPage> {
        let project = project.to_owned();
        self.blocking(move |i| i.list_tasks(&project, &filter))
            .await
    }
}

/// Decodes the base64 `secret_binary` of the API.
pub fn decode_binary(text: &str) -> StoreResult<SecretValue> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map(SecretValue::new)
        .map_err(|_| StoreError::invalid("secret_binary", "must be base64"))
}

#[cfg(test)]
mod tests;
