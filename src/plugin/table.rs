//! What `kubectl srot` prints: rows from SecretRotations, and plain-text tables. Pure, so it is tested
//! without a cluster.

use serde::Serialize;

use crate::api::{SecretRotation, SecretRotationStatus};

/// One line of `kubectl srot status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRow {
    /// Namespace.
    pub namespace: String,
    /// SecretRotation name.
    pub name: String,
    /// The store secret.
    pub store_secret: String,
    /// The database server a database secret's account is on (`cdbs/NAME` or `dbs/NAME`).
    pub server: String,
    /// SYSCURRENT as the synced Secret holds it.
    pub version: String,
    /// The database account in use.
    pub current_user: String,
    /// Last rotation.
    pub last_rotation: String,
    /// Next rotation.
    pub next_rotation: String,
    /// Ready's status.
    pub ready: String,
    /// Ready's reason.
    pub reason: String,
    /// Failed attempts since the last success.
    pub failed_attempts: u32,
}

fn condition(st: &SecretRotationStatus, type_: &str) -> Option<(String, String, String)> {
    st.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Ready's status, reason and message.
pub fn ready(sr: &SecretRotation) -> Option<(String, String, String)> {
    condition(sr.status.as_ref()?, "Ready")
}

/// The status line of one resource.
pub fn status_row(sr: &SecretRotation) -> StatusRow {
    let st = sr.status.clone().unwrap_or_default();
    let (ready, reason, _) = condition(&st, "Ready").unwrap_or_default();
    StatusRow {
        namespace: sr.metadata.namespace.clone().unwrap_or_default(),
        name: sr.metadata.name.clone().unwrap_or_default(),
        store_secret: st
            .secret_name
            .clone()
            .unwrap_or_else(|| sr.store_secret_name()),
        server: sr
            .spec
            .database
            .as_ref()
            .map(|d| match d.server_ref.kind {
                crate::api::ServerKind::ClusterDatabaseServer => {
                    format!("cdbs/{}", d.server_ref.name)
                }
                crate::api::ServerKind::DatabaseServer => format!("dbs/{}", d.server_ref.name),
            })
            .unwrap_or_default(),
        version: st.version_id.clone().unwrap_or_default(),
        current_user: st.current_user.clone().unwrap_or_default(),
        last_rotation: st
            .last_rotation_time
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        next_rotation: if sr.spec.suspend {
            "suspended".to_owned()
        } else {
            st.next_rotation_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        },
        ready,
        reason,
        failed_attempts: st.failed_attempts,
    }
}

/// Left-aligned columns separated by three spaces, as `kubectl get` prints them; empty cells show `<none>`.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |s: &str| {
        if s.is_empty() {
            "<none>".to_owned()
        } else {
            s.to_owned()
        }
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let n = cells.len();
        let mut out = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(&c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// The `status` table; with `all`, a NAMESPACE column first.
pub fn status_table(rows: &[StatusRow], all: bool) -> String {
    let mut header = vec![
        "NAME",
        "STORE SECRET",
        "SERVER",
        "VERSION",
        "USER",
        "LAST ROTATION",
        "NEXT ROTATION",
        "READY",
        "REASON",
        "FAILED",
    ];
    if all {
        header.insert(0, "NAMESPACE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c = vec![
                r.name.clone(),
                r.store_secret.clone(),
                r.server.clone(),
                r.version.clone(),
                r.current_user.clone(),
                r.last_rotation.clone(),
                r.next_rotation.clone(),
                r.ready.clone(),
                r.reason.clone(),
                r.failed_attempts.to_string(),
            ];
            if all {
                c.insert(0, r.namespace.clone());
            }
            c
        })
        .collect();
    render(&header, &cells)
}

/// The `history` table: the versions the store holds, their stages and times, the current version's
/// task, and the last rollback.
pub fn history_table(sr: &SecretRotation) -> String {
    let st = sr.status.clone().unwrap_or_default();
    let rows: Vec<Vec<String>> = st
        .versions
        .iter()
        .map(|v| {
            let task = if st.version_id.as_deref() == Some(v.version_id.as_str()) {
                st.rotation_task_id.clone().unwrap_or_default()
            } else {
                String::new()
            };
            vec![
                v.version_id.clone(),
                v.created.0.to_string(),
                v.stages.join(","),
                task,
            ]
        })
        .collect();
    let mut out = render(&["VERSION", "CREATED", "STAGES", "TASK"], &rows);
    if let Some(r) = &st.last_rollback {
        out.push_str(&format!(
            "\nlast rollback: {} to {} at {}: {:?}: {}{}\n",
            r.request,
            r.version_id,
            r.time.0,
            r.result,
            r.message,
            r.task_id
                .as_ref()
                .map(|t| format!(" (task {t})"))
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sr(yaml: &str) -> SecretRotation {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const ORDERS: &str = "apiVersion: secretrotator.dev/v1alpha1
kind: SecretRotation
metadata: {name: orders-db, namespace: shop}
spec: {secretType: RDS-FG, rotation: {period: 30d}, database: {serverRef: {name: orders-pg}, username: orders_app}}
status:
  secretName: shop.orders-db
  versionId: v3
  rotationTaskId: 7f9c
  currentUser: orders_app
  lastRotationTime: '2026-11-28T10:00:00Z'
  nextRotationTime: '2026-12-28T10:00:00Z'
  failedAttempts: 0
  versions:
  - {versionId: v3, created: '2026-11-28T10:00:00Z', stages: [SYSCURRENT]}
  - {versionId: v2, created: '2026-10-29T10:00:00Z', stages: [SYSPREVIOUS]}
  conditions:
  - {type: Ready, status: 'True', reason: Synced, message: ok, lastTransitionTime: '2026-11-28T10:00:00Z'}
";

    #[test]
    fn status_rows_and_table() {
        let row = status_row(&sr(ORDERS));
        assert_eq!(row.store_secret, "shop.orders-db");
        assert_eq!(row.version, "v3");
        assert_eq!(row.reason, "Synced");
        let t = status_table(std::slice::from_ref(&row), false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME        STORE SECRET"), "{t}");
        assert!(
            lines[1].starts_with("orders-db   shop.orders-db   cdbs/orders-pg   v3"),
            "{t}"
        );
        assert_eq!(row.server, "cdbs/orders-pg");
        assert!(
            lines[1].contains("2026-12-28T10:00:00Z   True    Synced   0"),
            "{t}"
        );
        let all = status_table(&[row], true);
        assert!(all.starts_with("NAMESPACE   NAME"), "{all}");
        assert!(
            all.lines()
                .nth(1)
                .unwrap()
                .starts_with("shop        orders-db"),
            "{all}"
        );
    }

    #[test]
    fn empty_cells_and_suspension() {
        let mut s = sr(ORDERS);
        s.spec.suspend = true;
        s.status.as_mut().unwrap().current_user = None;
        let row = status_row(&s);
        assert_eq!(row.next_rotation, "suspended");
        assert!(status_table(&[row], false).contains("<none>"));
    }

    #[test]
    fn history_lists_versions_and_the_current_task() {
        let h = history_table(&sr(ORDERS));
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines[0],
            "VERSION   CREATED                STAGES        TASK"
        );
        assert_eq!(
            lines[1],
            "v3        2026-11-28T10:00:00Z   SYSCURRENT    7f9c"
        );
        assert_eq!(
            lines[2],
            "v2        2026-10-29T10:00:00Z   SYSPREVIOUS   <none>"
        );
    }
}
