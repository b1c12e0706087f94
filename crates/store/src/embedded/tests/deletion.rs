//! Scheduled deletion and restore (DeleteSecretForSchedule, RestoreSecret), and rotations run in the
//! background (RotateSecret as the service answers it).

use super::safety::rewrite_records;
use super::*;

const DAY_MS: i64 = 86_400_000;

async fn common(s: &EmbeddedStore, name: &str, value: &str) {
    s.create_secret(
        P,
        CreateSecret {
            name: name.into(),
            secret_string: text(value),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

fn code(e: StoreError) -> (u16, String) {
    (e.status(), e.code().to_owned())
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_is_unusable_until_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    common(&s, "api", "one").await;
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let before = now_ms();
    let pending = s.schedule_deletion(P, "api", Some(7)).await.unwrap();
    assert_eq!(pending.state, SecretState::PendingDelete);
    let expected = before + 7 * DAY_MS;
    assert!(
        (expected..expected + 60_000).contains(&pending.scheduled_delete_time),
        "{} is not 7 days after {before}",
        pending.scheduled_delete_time
    );
    // The default window is 30 days.
    let db = s.schedule_deletion(P, "db", None).await.unwrap();
    assert!(db.scheduled_delete_time >= before + 30 * DAY_MS);

    // Its metadata shows, listed and alone; nothing else of it can be used (CSMS.0103).
    let shown = s.show_secret(P, "api").await.unwrap();
    assert_eq!(
        (shown.state, shown.scheduled_delete_time),
        (SecretState::PendingDelete, pending.scheduled_delete_time)
    );
    let listed = s.list_secrets(P, None, None).await.unwrap().secrets;
    assert_eq!(listed.len(), 2);
    let scheduled = (400, codes::SCHEDULED_DELETION.to_owned());
    assert_eq!(
        code(s.show_version(P, "api", LATEST).await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(s.show_version(P, "api", "v1").await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(
            s.show_version_by_stage(P, "api", SYSCURRENT)
                .await
                .unwrap_err()
        ),
        scheduled
    );
    assert_eq!(
        code(s.list_versions(P, "api", None, None).await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(s.show_stage(P, "api", SYSCURRENT).await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(s.update_stage(P, "api", "canary", "v1").await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(
            s.create_version(
                P,
                "api",
                CreateVersion {
                    secret_string: text("two"),
                    ..Default::default()
                }
            )
            .await
            .unwrap_err()
        ),
        scheduled
    );
    let e = s
        .update_secret(
            P,
            "api",
            UpdateSecret {
                description: Some("x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(e.clone()), scheduled);
    assert!(e.to_string().contains("RestoreSecret"), "{e}");
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    assert_eq!(
        code(s.rotate(P, "db", with_target(&t)).await.unwrap_err()),
        scheduled
    );
    assert_eq!(
        code(
            s.start_rotation(P, "db", with_target(&t))
                .await
                .unwrap_err()
        ),
        scheduled
    );
    assert!(t.password("app").is_some_and(|p| p.expose() == b"pw0"));
    // Scheduling it again: CSMS.0107; a bad window: CSMS.0002; a missing secret: 404.
    assert_eq!(
        code(s.schedule_deletion(P, "api", Some(7)).await.unwrap_err()),
        (400, codes::PENDING_DELETION.to_owned())
    );
    common(&s, "other", "x").await;
    for days in [6, 31] {
        assert_eq!(
            code(
                s.schedule_deletion(P, "other", Some(days))
                    .await
                    .unwrap_err()
            ),
            (400, codes::INVALID_PARAMETER.to_owned())
        );
    }
    assert_eq!(
        s.show_secret(P, "other").await.unwrap().state,
        SecretState::Enabled,
        "a refused window changes nothing"
    );
    assert_eq!(
        s.schedule_deletion(P, "missing", None)
            .await
            .unwrap_err()
            .status(),
        404
    );
    assert_eq!(
        s.restore_secret(P, "missing").await.unwrap_err().status(),
        404
    );

    // Restored: ENABLED, no deletion time, usable again; a second restore is CSMS.0108.
    let restored = s.restore_secret(P, "api").await.unwrap();
    assert_eq!(
        (restored.state, restored.scheduled_delete_time),
        (SecretState::Enabled, 0)
    );
    assert_eq!(current(&s, "api").await.value.expose(), b"one");
    assert_eq!(
        code(s.restore_secret(P, "api").await.unwrap_err()),
        (400, codes::NOT_PENDING_DELETION.to_owned())
    );
    s.restore_secret(P, "db").await.unwrap();
    let r = s.rotate(P, "db", with_target(&t)).await.unwrap();
    assert_eq!(r.version_id, "v2");
    // A disabled secret can be scheduled too, and comes back ENABLED.
    s.update_secret(
        P,
        "other",
        UpdateSecret {
            state: Some(SecretState::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.schedule_deletion(P, "other", Some(30)).await.unwrap();
    assert_eq!(
        s.restore_secret(P, "other").await.unwrap().state,
        SecretState::Enabled
    );
}

#[tokio::test]
async fn a_secret_whose_window_has_passed_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    common(&s, "old", "first").await;
    common(&s, "kept", "kept").await;
    common(&s, "swept", "x").await;
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    s.rotate(P, "db", with_target(&t)).await.unwrap();
    // Scheduled eight days ago with a seven-day window: its time came yesterday.
    let eight_days_ago = now_ms() - 8 * DAY_MS;
    for name in ["old", "swept", "db"] {
        s.inner
            .schedule_deletion(P, name, Some(7), eight_days_ago)
            .unwrap();
    }
    // A window that has not passed yet (scheduled now) stays.
    s.schedule_deletion(P, "kept", Some(7)).await.unwrap();

    // Every read treats the due ones as missing at once.
    assert_eq!(s.show_secret(P, "old").await.unwrap_err().status(), 404);
    assert_eq!(
        s.show_version(P, "old", LATEST).await.unwrap_err().status(),
        404
    );
    assert_eq!(s.restore_secret(P, "old").await.unwrap_err().status(), 404);
    let names: Vec<String> = s
        .list_secrets(P, None, None)
        .await
        .unwrap()
        .secrets
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["kept"]);
    // The name is free again: a new secret, from v1.
    common(&s, "old", "second").await;
    let v = current(&s, "old").await;
    assert_eq!(
        (v.version_metadata.id.as_str(), v.value.expose()),
        ("v1", &b"second"[..])
    );
    assert_eq!(
        s.list_versions(P, "old", None, None)
            .await
            .unwrap()
            .version_metadatas
            .len(),
        1,
        "the old versions went with the old secret"
    );
    // DeleteSecret of a due one is a 404 (it was already gone) and removes its remains.
    assert_eq!(s.delete_secret(P, "swept").await.unwrap_err().status(), 404);

    // The sweep removes the rest with their versions and tasks; a second sweep finds nothing.
    let tasks = |name: &str| TaskFilter {
        secret_name: Some(name.into()),
        ..Default::default()
    };
    assert_eq!(s.list_tasks(P, tasks("db")).await.unwrap().total, 1);
    assert_eq!(s.purge_scheduled_deletions().await.unwrap(), 1);
    assert_eq!(s.purge_scheduled_deletions().await.unwrap(), 0);
    assert_eq!(s.list_tasks(P, tasks("db")).await.unwrap().total, 0);
    let r = s.inner.db.begin_read().unwrap();
    let versions = r.open_table(super::keys::VERSIONS).unwrap();
    let mut left = Vec::new();
    for item in versions.iter().unwrap() {
        left.push(item.unwrap().0.value().replace('\0', "/"));
    }
    assert_eq!(left, ["proj1/kept/000000000001", "proj1/old/000000000001"]);
    drop(r);
    // The one whose window has not passed is still there, and a sweep long after its time deletes it.
    assert_eq!(
        s.show_secret(P, "kept").await.unwrap().state,
        SecretState::PendingDelete
    );
    assert_eq!(
        s.inner.purge_due_deletions(now_ms() + 8 * DAY_MS).unwrap(),
        1
    );
    assert_eq!(s.show_secret(P, "kept").await.unwrap_err().status(), 404);
}

#[tokio::test]
async fn a_pending_deletion_changed_outside_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = open(&dir);
    common(&s, "api", "one").await;
    s.schedule_deletion(P, "api", Some(7)).await.unwrap();
    drop(s);
    // Cancel the deletion in the record's JSON, keeping its MAC: someone with the file but not the key.
    rewrite_records(&dir, |_, stored| {
        let (json, mac) = stored.split_at(stored.len() - 32);
        let mut rec: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(rec["secret"]["state"], "PENDING_DELETE");
        rec["secret"]["state"] = serde_json::json!("ENABLED");
        rec["secret"]["scheduled_delete_time"] = serde_json::json!(0);
        let mut out = serde_json::to_vec(&rec).unwrap();
        out.extend_from_slice(mac);
        out
    });
    let e = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        key,
        EmbeddedOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("changed outside the store"), "{e}");
}

/// A database whose password changes wait until the test opens the gate.
struct GatedTarget {
    db: MemoryChanger,
    gate: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl PasswordChanger for GatedTarget {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        cur: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        let _pass = self
            .gate
            .acquire()
            .await
            .map_err(|_| ChangeError::new("CONFIG", "gate closed"))?;
        self.db.set_password(user, new, cur).await
    }
    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        self.db.test_login(user, password).await
    }
    fn describe(&self) -> String {
        "gated".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_rotation_answers_at_once_and_its_task_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let gated = Arc::new(GatedTarget {
        db: MemoryChanger::default(),
        gate: tokio::sync::Semaphore::new(0),
    });
    gated.db.set("app", SecretValue::from_str_value("pw0"));
    let opts = RotateOptions {
        changer: Some(gated.clone() as Arc<dyn PasswordChanger>),
        policy: None,
    };
    // The database cannot change anything yet: the answer comes all the same.
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        s.start_rotation(P, "db", opts.clone()),
    )
    .await
    .expect("the answer waited for the database")
    .unwrap();
    assert_eq!(
        (answer.version_id.as_str(), answer.secret_name.as_str()),
        ("v2", "db")
    );
    let task = s.show_task(P, &answer.rotation_task_id).await.unwrap();
    assert_eq!(task.task_status, TaskStatus::Processing);
    assert_eq!(current(&s, "db").await.version_metadata.id, "v1");
    assert!(
        gated
            .db
            .password("app")
            .is_some_and(|p| p.expose() == b"pw0")
    );
    // While it runs, another rotation is refused; the running one holds the secret.
    assert_eq!(
        s.start_rotation(P, "db", opts.clone())
            .await
            .unwrap_err()
            .code(),
        codes::ROTATION_IN_PROGRESS
    );
    gated.gate.add_permits(1000);
    let task = wait_for_task(&s, &answer.rotation_task_id).await;
    assert_eq!(task.task_status, TaskStatus::Success);
    let cur = current(&s, "db").await;
    assert_eq!(cur.version_metadata.id, "v2");
    let cred = DatabaseCredential::from_value(&cur.value).unwrap();
    assert_eq!(
        gated.db.password("app").unwrap().expose(),
        cred.password.as_bytes(),
        "the database has the new SYSCURRENT password"
    );

    // A failing database step: the answer is the same; the task becomes FAILED with the step's code,
    // SYSCURRENT stays, and the next rotation resumes the same pending version (as the same task).
    *gated.db.fail_set.lock().unwrap() = Some("SET_PASSWORD".into());
    let failing = s.start_rotation(P, "db", opts.clone()).await.unwrap();
    assert_eq!(failing.version_id, "v3");
    let task = wait_for_task(&s, &failing.rotation_task_id).await;
    assert_eq!(
        (task.task_status, task.task_error_code.as_str()),
        (TaskStatus::Failed, "CSMS.0510.SET_PASSWORD")
    );
    assert_eq!(current(&s, "db").await.version_metadata.id, "v2");
    *gated.db.fail_set.lock().unwrap() = None;
    let resumed = s.start_rotation(P, "db", opts).await.unwrap();
    assert_eq!(
        (
            resumed.version_id.as_str(),
            resumed.rotation_task_id.as_str()
        ),
        ("v3", failing.rotation_task_id.as_str())
    );
    let task = wait_for_task(&s, &resumed.rotation_task_id).await;
    assert_eq!(
        (task.task_status, task.attempt_nums),
        (TaskStatus::Success, 2)
    );
    assert_eq!(current(&s, "db").await.version_metadata.id, "v3");
}

async fn wait_for_task(s: &EmbeddedStore, id: &str) -> RotationTask {
    for _ in 0..100 {
        let t = s.show_task(P, id).await.unwrap();
        if t.task_status != TaskStatus::Processing {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} still PROCESSING after 5 s");
}
