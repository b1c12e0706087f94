//! Checks on files that hold credentials or keys.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Why a credential file is refused.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Cannot stat.
    #[error("{what} {path}: {source}")]
    Stat {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Readable by group or others.
    #[error(
        "{what} {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}` (in Kubernetes, mount it with defaultMode 0400)"
    )]
    TooOpen {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
}

/// The process's primary and supplementary group ids, from /proc (Linux).
fn own_groups() -> Vec<u32> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut out = Vec::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Gid:") {
            out.extend(
                rest.split_whitespace()
                    .take(1)
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
        if let Some(rest) = line.strip_prefix("Groups:") {
            out.extend(
                rest.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Refuses a file that others can read or write, or that a group the process does not belong to can.
/// (A Kubernetes Secret volume with `fsGroup` is group-readable by the pod's own group: that is allowed.)
/// Symlinks are followed (Kubernetes mounts Secrets as links into a `..data` directory).
pub fn check_private(path: &Path, what: &'static str) -> Result<(), FileError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|source| FileError::Stat {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    let others = mode & 0o007 != 0;
    let foreign_group =
        mode & 0o070 != 0 && (meta.gid() == 0 || !own_groups().contains(&meta.gid()));
    if others || foreign_group {
        return Err(FileError::TooOpen {
            what,
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_group_and_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "x").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o644, false),
            (0o602, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(check_private(&p, "master key").is_ok(), ok, "mode {mode:o}");
        }
        let e = check_private(&dir.path().join("missing"), "auth file").unwrap_err();
        assert!(e.to_string().contains("auth file"));
    }
}
