//! The tables of the store file and the keys of their records: `project\0name` for secrets, with the
//! version number (zero-padded) or task id after a second NUL, so a secret's versions are one key range.

use redb::TableDefinition;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
pub(super) const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
pub(super) const TASKS: TableDefinition<&str, &[u8]> = TableDefinition::new("tasks");
/// The tasks of each secret: `project\0name\0task_id`, empty values. Derived from TASKS (built at open when
/// missing), so listing one secret's tasks never scans the project.
pub(super) const TASK_INDEX: TableDefinition<&str, &[u8]> = TableDefinition::new("task_index");

pub(super) const KCV_KEY: &str = "kcv";
pub(super) const FORMAT_KEY: &str = "format";
/// The current format: secret records carry a MAC under a key derived from the master key.
pub(super) const FORMAT: &[u8] = b"secret-rotator-store/2";
/// The first format (secret records without a MAC), migrated at open.
pub(super) const FORMAT_V1: &[u8] = b"secret-rotator-store/1";

pub(super) fn secret_key(project: &str, name: &str) -> String {
    format!("{project}\0{name}")
}

pub(super) fn version_key(project: &str, name: &str, num: u64) -> String {
    format!("{project}\0{name}\0{num:012}")
}

pub(super) fn version_prefix(project: &str, name: &str) -> String {
    format!("{project}\0{name}\0")
}

pub(super) fn task_key(project: &str, task_id: &str) -> String {
    format!("{project}\0{task_id}")
}

pub(super) fn task_index_key(project: &str, name: &str, task_id: &str) -> String {
    format!("{project}\0{name}\0{task_id}")
}

/// The end of a key range that starts with `prefix` (prefixes end in NUL; the next byte is 0x01).
pub(super) fn prefix_end(prefix: &str) -> String {
    let mut s = prefix[..prefix.len() - 1].to_owned();
    s.push('\u{1}');
    s
}

pub(super) fn version_num(id: &str) -> Option<u64> {
    id.strip_prefix('v')?.parse().ok().filter(|n| *n > 0)
}
