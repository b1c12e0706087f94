//! Rollback: SYSCURRENT back to an earlier version, as a ROLLBACK task; database secrets through the
//! rotation's steps.

use super::*;

async fn tasks_of(s: &EmbeddedStore, name: &str) -> Vec<RotationTask> {
    s.list_tasks(
        P,
        TaskFilter {
            secret_name: Some(name.to_owned()),
            ..TaskFilter::default()
        },
    )
    .await
    .unwrap()
    .tasks
}

#[tokio::test]
async fn a_common_secret_rolls_back_to_a_version_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(
        P,
        CreateSecret {
            name: "api".into(),
            secret_string: text("one"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for v in ["two", "three"] {
        s.create_version(
            P,
            "api",
            CreateVersion {
                secret_string: text(v),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let r = s
        .rollback(P, "api", "v1", RotateOptions::default())
        .await
        .unwrap();
    assert_eq!(r.version_id, "v1");
    let cur = current(&s, "api").await;
    assert_eq!(cur.version_metadata.id, "v1");
    assert_eq!(cur.value.expose(), b"one");
    let prev = s
        .show_version_by_stage(P, "api", SYSPREVIOUS)
        .await
        .unwrap();
    assert_eq!(prev.version_metadata.id, "v3");
    let tasks = tasks_of(&s, "api").await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].task_id, r.rotation_task_id);
    assert_eq!(tasks[0].operate_type, "ROLLBACK");
    assert_eq!(tasks[0].task_status, TaskStatus::Success);
    // A version the store does not hold.
    let e = s
        .rollback(P, "api", "v9", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404, "{e}");
    let e = s
        .rollback(P, "api", "latest", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), 404, "{e}");
}

#[tokio::test]
async fn a_database_secret_gets_the_old_password_back_on_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("first-pw"));
    s.create_secret(P, db_secret("db", "SingleUser", "app", "first-pw"))
        .await
        .unwrap();
    s.rotate(P, "db", with_target(&t)).await.unwrap();
    let v2 = current(&s, "db").await;
    assert_ne!(t.password("app").unwrap().expose(), b"first-pw");

    let r = s.rollback(P, "db", "v1", with_target(&t)).await.unwrap();
    assert_eq!(r.version_id, "v1");
    assert_eq!(current(&s, "db").await.version_metadata.id, "v1");
    assert_eq!(t.password("app").unwrap().expose(), b"first-pw");
    let tasks = tasks_of(&s, "db").await;
    let rollback = tasks
        .iter()
        .find(|t| t.task_id == r.rotation_task_id)
        .unwrap();
    assert_eq!(rollback.operate_type, "ROLLBACK");
    assert_eq!(rollback.task_status, TaskStatus::Success);
    assert!(
        s.show_stage(P, "db", SYSPENDING).await.is_err(),
        "no pending version left"
    );

    // A failing database: the task fails, SYSCURRENT and the database keep v1, and SYSPENDING is gone, so
    // the next rotation makes a new password instead of finishing the rollback.
    *t.fail_set.lock().unwrap() = Some("CONNECT".into());
    let e = s
        .rollback(P, "db", &v2.version_metadata.id, with_target(&t))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::RotationFailed { code, .. } if code == "CSMS.0510.CONNECT"),
        "{e:?}"
    );
    assert_eq!(current(&s, "db").await.version_metadata.id, "v1");
    assert_eq!(t.password("app").unwrap().expose(), b"first-pw");
    assert!(s.show_stage(P, "db", SYSPENDING).await.is_err());
    *t.fail_set.lock().unwrap() = None;
    let rotated = s.rotate(P, "db", with_target(&t)).await.unwrap();
    assert_eq!(
        rotated.version_id, "v3",
        "a new version, not the rollback's"
    );
}
