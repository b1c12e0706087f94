//! The store file: creating it private, checking its format and key at open, scanning every record for
//! damage before anything writes, and re-wrapping data keys under a new master key.

use super::*;

/// Creates the store file readable by its owner only.
pub(super) fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

pub(super) fn corrupt(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Checks the key check value of an existing store without writing to it. `Ok(false)` means the file
/// needs crash recovery before it can be read (redb refuses a read-only open then).
pub(super) fn verify_read_only(path: &Path, key: &MasterKey) -> StoreResult<bool> {
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
pub(super) fn scan(path: &Path, r: &redb::ReadTransaction) -> StoreResult<()> {
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
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> StoreResult<T>) -> StoreResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(corrupt(
            path,
            "the storage engine found the file inconsistent (damaged or truncated); restore it from a backup",
        )),
    }
}

pub(super) fn check_meta(
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
                txn.open_table(TASK_INDEX).map_err(|e| corrupt(path, e))?;
            }
            if exists {
                txn.abort().map_err(|e| corrupt(path, e))?;
            } else {
                txn.commit().map_err(|e| corrupt(path, e))?;
            }
            Ok(db)
        })?;
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                key,
                path: path.to_owned(),
                history_limit: options.history_limit,
                rotating: Mutex::new(HashSet::new()),
            }),
        };
        store.inner.build_task_index()?;
        Ok(store)
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
}
