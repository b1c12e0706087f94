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
pub(super) fn verify_read_only(
    path: &Path,
    key: &MasterKey,
    cache_bytes: usize,
) -> StoreResult<bool> {
    let db = match redb::Builder::new()
        .set_cache_size(cache_bytes)
        .open_read_only(path)
    {
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
    let authenticated = check_meta(path, key, &t)?;
    let record_key = record_mac::record_key(key);
    scan(path, &r, authenticated.then_some(record_key.as_slice()))?;
    Ok(true)
}

/// Reads every record of every table and decodes it: damage shows here, at open, rather than later. With
/// `record_key`, secret records must carry a valid MAC: a record changed outside the store is refused here.
pub(super) fn scan(
    path: &Path,
    r: &redb::ReadTransaction,
    record_key: Option<&[u8]>,
) -> StoreResult<()> {
    fn each<T: serde::de::DeserializeOwned>(
        path: &Path,
        r: &redb::ReadTransaction,
        table: TableDefinition<&str, &[u8]>,
        what: &str,
        record_key: Option<&[u8]>,
    ) -> StoreResult<()> {
        let t = r.open_table(table).map_err(|e| corrupt(path, e))?;
        for item in t.iter().map_err(|e| corrupt(path, e))? {
            let (k, v) = item.map_err(|e| corrupt(path, e))?;
            // Decoding the key too: the engine decodes text keys by unwrapping (a panic, guarded).
            if k.value().is_empty() {
                return Err(corrupt(path, format!("a {what} record has an empty key")));
            }
            let json = match record_key {
                None => v.value(),
                Some(key) => record_mac::open(key, k.value(), v.value()).ok_or_else(|| {
                    let name = k.value().split('\0').nth(1).unwrap_or_default();
                    corrupt(
                        path,
                        format!(
                            "the record of {what} {name} was changed outside the store (its MAC does not match the master key): restore the file from a backup"
                        ),
                    )
                })?,
            };
            serde_json::from_slice::<T>(json)
                .map_err(|e| corrupt(path, format!("a {what} record does not decode: {e}")))?;
        }
        Ok(())
    }
    each::<SecretRecord>(path, r, SECRETS, "secret", record_key)?;
    each::<VersionRecord>(path, r, VERSIONS, "version", None)?;
    each::<RotationTask>(path, r, TASKS, "task", None)?;
    // The task index holds keys only; reading them all is what shows damage to its pages.
    match r.open_table(TASK_INDEX) {
        Ok(t) => {
            for item in t.iter().map_err(|e| corrupt(path, e))? {
                let (k, v) = item.map_err(|e| corrupt(path, e))?;
                if k.value().split('\0').count() != 3 || !v.value().is_empty() {
                    return Err(corrupt(path, "a task index entry is malformed"));
                }
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(corrupt(path, e)),
    }
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

/// Checks the format marker and the key; `Ok(true)` when secret records carry MACs (the current format),
/// `Ok(false)` for the first format (migrated at open).
pub(super) fn check_meta(
    path: &Path,
    key: &MasterKey,
    t: &impl ReadableTable<&'static str, &'static [u8]>,
) -> StoreResult<bool> {
    let format = t.get(FORMAT_KEY).map_err(|e| corrupt(path, e))?;
    let authenticated = match format.as_ref().map(|f| f.value()) {
        Some(f) if f == FORMAT => true,
        Some(f) if f == FORMAT_V1 => false,
        _ => return Err(corrupt(path, "missing or unknown format marker")),
    };
    let kcv = t
        .get(KCV_KEY)
        .map_err(|e| corrupt(path, e))?
        .ok_or_else(|| corrupt(path, "no key check value"))?;
    if !key.verify_key_check_value(kcv.value()) {
        return Err(StoreError::WrongMasterKey {
            path: path.display().to_string(),
        });
    }
    Ok(authenticated)
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
        let scanned =
            !exists || guarded(path, || verify_read_only(path, &key, options.cache_bytes))?;
        // A file that needed crash recovery was not scanned read-only; the engine repairs it here, and the
        // scan follows the repair.
        let (db, authenticated) = guarded(path, || {
            let db = if exists {
                redb::Builder::new()
                    .set_cache_size(options.cache_bytes)
                    .open(path)
                    .map_err(|e| match e {
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
                    .set_cache_size(options.cache_bytes)
                    .create_file(file)
                    .map_err(|e| corrupt(path, e))?
            };
            let txn = db.begin_write().map_err(|e| corrupt(path, e))?;
            let mut authenticated = true;
            {
                let mut meta = txn.open_table(META).map_err(|e| corrupt(path, e))?;
                if exists {
                    // Verified read-only above, unless the file needed recovery: check again after it.
                    authenticated = check_meta(path, &key, &meta)?;
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
            if !scanned {
                let record_key = record_mac::record_key(&key);
                let r = db.begin_read().map_err(|e| corrupt(path, e))?;
                scan(path, &r, authenticated.then_some(record_key.as_slice()))?;
            }
            Ok((db, authenticated))
        })?;
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db: Db(Some(db), options.bulk_load),
                record_key: record_mac::record_key(&key),
                key,
                path: path.to_owned(),
                history_limit: options.history_limit,
                rotating: Mutex::new(HashSet::new()),
            }),
        };
        // Both read whole tables; on a file the engine just repaired (not scanned above), a damaged page
        // makes the engine panic, which `guarded` turns into an error.
        let ready = guarded(path, || {
            if !authenticated {
                store.inner.authenticate_records()?;
            }
            store.inner.build_task_index()
        });
        ready?;
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
            // The records' MACs follow the master key.
            let new_record_key = record_mac::record_key(new);
            let mut st = txn.open_table(SECRETS).ctx("opening secrets")?;
            let mut records = Vec::new();
            for item in st.iter().ctx("reading secrets")? {
                let (k, v) = item.ctx("reading secrets")?;
                let rec = inner.decode_secret(k.value(), v.value())?;
                let json = serde_json::to_vec(&rec).ctx("encoding a secret record")?;
                let key = k.value().to_owned();
                records.push((key.clone(), record_mac::seal(&new_record_key, &key, json)));
            }
            for (k, v) in records {
                st.insert(k.as_str(), v.as_slice())
                    .ctx("writing a secret")?;
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

impl Inner {
    /// Migrates a store of the first format: every secret record gets its MAC, in one transaction.
    fn authenticate_records(&self) -> StoreResult<()> {
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        let mut count = 0usize;
        {
            let mut t = txn.open_table(SECRETS).ctx("opening secrets")?;
            let mut records = Vec::new();
            for item in t.iter().ctx("reading secrets")? {
                let (k, v) = item.ctx("reading secrets")?;
                let key = k.value().to_owned();
                records.push((
                    key.clone(),
                    record_mac::seal(&self.record_key, &key, v.value().to_vec()),
                ));
            }
            for (k, v) in records {
                t.insert(k.as_str(), v.as_slice()).ctx("writing a secret")?;
                count += 1;
            }
            let mut meta = txn.open_table(META).ctx("opening meta")?;
            meta.insert(FORMAT_KEY, FORMAT).ctx("writing the format")?;
        }
        txn.commit().ctx("committing")?;
        info!(path = %self.path.display(), records = count, "secret records authenticated (format 2)");
        Ok(())
    }
}
