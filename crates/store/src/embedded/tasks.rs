//! Rotation tasks: kept per secret (at most [`TASKS_PER_SECRET`], the oldest pruned, all of them deleted
//! with their secret) and indexed by secret, so that a reconcile's look-up of one secret's tasks costs the
//! same however many secrets and tasks the project holds.

use super::*;
use redb::ReadableTableMetadata;

/// Tasks kept per secret; older ones are pruned (never the one in progress).
pub const TASKS_PER_SECRET: usize = 20;

impl Inner {
    /// Writes a task, indexes it under its secret, and prunes the secret's oldest tasks.
    pub(super) fn write_task(
        &self,
        txn: &WriteTransaction,
        project: &str,
        task: &RotationTask,
    ) -> StoreResult<()> {
        let bytes = serde_json::to_vec(task).ctx("encoding a task")?;
        {
            let mut t = txn.open_table(TASKS).ctx("opening tasks")?;
            t.insert(task_key(project, &task.task_id).as_str(), bytes.as_slice())
                .ctx("writing a task")?;
            let mut index = txn.open_table(TASK_INDEX).ctx("opening the task index")?;
            index
                .insert(
                    task_index_key(project, &task.secret_name, &task.task_id).as_str(),
                    &[][..],
                )
                .ctx("indexing a task")?;
        }
        self.prune_tasks(txn, project, &task.secret_name, &task.task_id)
    }

    /// The task ids of one secret, from the index.
    fn task_ids_in(
        &self,
        index: &impl ReadableTable<&'static str, &'static [u8]>,
        project: &str,
        name: &str,
    ) -> StoreResult<Vec<String>> {
        let prefix = version_prefix(project, name);
        let end = prefix_end(&prefix);
        let mut ids = Vec::new();
        for item in index
            .range(prefix.as_str()..end.as_str())
            .ctx("listing a secret's tasks")?
        {
            let (k, _) = item.ctx("listing a secret's tasks")?;
            ids.push(k.value()[prefix.len()..].to_owned());
        }
        Ok(ids)
    }

    fn decode_task(&self, raw: &[u8]) -> StoreResult<RotationTask> {
        serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
            path: self.path.display().to_string(),
            message: format!("task record: {e}"),
        })
    }

    /// Keeps the newest [`TASKS_PER_SECRET`] tasks of a secret, and always `keep`.
    fn prune_tasks(
        &self,
        txn: &WriteTransaction,
        project: &str,
        name: &str,
        keep: &str,
    ) -> StoreResult<()> {
        let mut index = txn.open_table(TASK_INDEX).ctx("opening the task index")?;
        let ids = self.task_ids_in(&index, project, name)?;
        if ids.len() <= TASKS_PER_SECRET {
            return Ok(());
        }
        let mut tasks = txn.open_table(TASKS).ctx("opening tasks")?;
        let mut dated = Vec::with_capacity(ids.len());
        for id in ids {
            let time = match tasks
                .get(task_key(project, &id).as_str())
                .ctx("reading a task")?
            {
                Some(raw) => self.decode_task(raw.value())?.task_time,
                None => i64::MIN,
            };
            dated.push((time, id));
        }
        dated.sort_by(|a, b| b.cmp(a));
        for (_, id) in dated.into_iter().skip(TASKS_PER_SECRET) {
            if id == keep {
                continue;
            }
            tasks
                .remove(task_key(project, &id).as_str())
                .ctx("pruning a task")?;
            index
                .remove(task_index_key(project, name, &id).as_str())
                .ctx("pruning a task")?;
        }
        Ok(())
    }

    /// Deletes every task of a secret (DeleteSecret).
    pub(super) fn delete_tasks(
        &self,
        txn: &WriteTransaction,
        project: &str,
        name: &str,
    ) -> StoreResult<()> {
        let mut index = txn.open_table(TASK_INDEX).ctx("opening the task index")?;
        let ids = self.task_ids_in(&index, project, name)?;
        let mut tasks = txn.open_table(TASKS).ctx("opening tasks")?;
        for id in ids {
            tasks
                .remove(task_key(project, &id).as_str())
                .ctx("deleting a task")?;
            index
                .remove(task_index_key(project, name, &id).as_str())
                .ctx("deleting a task")?;
        }
        Ok(())
    }

    /// Builds the task index of a store written before it existed (once, at open).
    pub(super) fn build_task_index(&self) -> StoreResult<()> {
        {
            let r = self.db.begin_read().ctx("starting a read")?;
            let index = r.open_table(TASK_INDEX);
            let indexed = match index {
                Ok(t) => !t.is_empty().ctx("reading the task index")?,
                Err(redb::TableError::TableDoesNotExist(_)) => false,
                Err(e) => return Err(StoreError::internal("opening the task index", e)),
            };
            let tasks = r.open_table(TASKS).ctx("opening tasks")?;
            if indexed || tasks.is_empty().ctx("reading tasks")? {
                return Ok(());
            }
        }
        let txn = self.db.begin_write().ctx("starting a transaction")?;
        {
            let tasks = txn.open_table(TASKS).ctx("opening tasks")?;
            let mut index = txn.open_table(TASK_INDEX).ctx("opening the task index")?;
            for item in tasks.iter().ctx("reading tasks")? {
                let (k, v) = item.ctx("reading tasks")?;
                let project = k.value().split('\0').next().unwrap_or_default().to_owned();
                let task = self.decode_task(v.value())?;
                index
                    .insert(
                        task_index_key(&project, &task.secret_name, &task.task_id).as_str(),
                        &[][..],
                    )
                    .ctx("indexing a task")?;
            }
        }
        txn.commit().ctx("committing")?;
        info!(path = %self.path.display(), "built the task index");
        Ok(())
    }

    /// ListSecretTask: by task id (one read), by secret (its indexed tasks), or the whole project.
    pub(super) fn list_tasks(&self, project: &str, filter: &TaskFilter) -> StoreResult<TaskPage> {
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
        let r = self.db.begin_read().ctx("starting a read")?;
        let t = r.open_table(TASKS).ctx("opening tasks")?;
        let mut all = Vec::new();
        if let Some(id) = filter.task_id.as_deref() {
            if let Some(raw) = t
                .get(task_key(project, id).as_str())
                .ctx("reading a task")?
            {
                all.push(self.decode_task(raw.value())?);
            }
        } else if let Some(name) = filter.secret_name.as_deref() {
            let index = r.open_table(TASK_INDEX).ctx("opening the task index")?;
            for id in self.task_ids_in(&index, project, name)? {
                if let Some(raw) = t
                    .get(task_key(project, &id).as_str())
                    .ctx("reading a task")?
                {
                    all.push(self.decode_task(raw.value())?);
                }
            }
        } else {
            let prefix = format!("{project}\0");
            let end = prefix_end(&prefix);
            for item in t
                .range(prefix.as_str()..end.as_str())
                .ctx("listing tasks")?
            {
                let (_, raw) = item.ctx("listing tasks")?;
                all.push(self.decode_task(raw.value())?);
            }
        }
        all.retain(|task| {
            filter
                .secret_name
                .as_deref()
                .is_none_or(|n| n == task.secret_name)
                && filter.status.is_none_or(|s| s == task.task_status)
                && filter
                    .task_id
                    .as_deref()
                    .is_none_or(|id| id == task.task_id)
        });
        page_of(all, filter.marker.as_deref(), limit)
    }
}

/// Newest first, `limit` after `marker`.
fn page_of(
    mut all: Vec<RotationTask>,
    marker: Option<&str>,
    limit: usize,
) -> StoreResult<TaskPage> {
    all.sort_by(|a, b| {
        b.task_time
            .cmp(&a.task_time)
            .then_with(|| a.task_id.cmp(&b.task_id))
    });
    let total = all.len() as u32;
    let start = match marker {
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
