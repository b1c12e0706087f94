//! The embedded store's behaviour: CSMS semantics, rotation steps, errors, paging.

use crate::changer::RotateOptions;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::changer::{ChangeError, MemoryChanger, PasswordChanger};

const P: &str = "proj1";

fn open(dir: &tempfile::TempDir) -> (EmbeddedStore, MasterKey) {
    let key = MasterKey::generate().unwrap();
    let s = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        key.clone(),
        EmbeddedOptions::default(),
    )
    .unwrap();
    (s, key)
}

fn text(v: &str) -> Option<SecretValue> {
    Some(SecretValue::from_str_value(v))
}

fn db_secret(name: &str, sub: &str, user: &str, pw: &str) -> CreateSecret {
    CreateSecret {
        name: name.to_owned(),
        secret_type: Some("RDS-FG".to_owned()),
        secret_string: Some(
            DatabaseCredential {
                username: user.to_owned(),
                password: pw.to_owned(),
            }
            .to_value(),
        ),
        rotation_config: Some(format!(
            r#"{{"InstanceId":"i1","SecretSubType":"{sub}","Usernames":["app_a","app_b"]}}"#
        )),
        ..CreateSecret::default()
    }
}

fn with_target(t: &Arc<MemoryChanger>) -> RotateOptions {
    RotateOptions {
        changer: Some(t.clone() as Arc<dyn PasswordChanger>),
        policy: None,
    }
}

/// The version ids of a page, in order.
fn ids(page: &VersionPage) -> Vec<String> {
    page.version_metadatas
        .iter()
        .map(|v| v.id.clone())
        .collect()
}

async fn current(s: &EmbeddedStore, name: &str) -> Version {
    s.show_version_by_stage(P, name, SYSCURRENT).await.unwrap()
}

#[tokio::test]
async fn versions_and_stages_follow_csms() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let created = s
        .create_secret(
            P,
            CreateSecret {
                name: "api".into(),
                secret_string: text("one"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.secret_type, "COMMON");
    assert_eq!(created.state, SecretState::Enabled);
    assert_eq!(current(&s, "api").await.version_metadata.id, "v1");

    let v2 = s
        .create_version(
            P,
            "api",
            CreateVersion {
                secret_string: text("two"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.id, "v2");
    assert_eq!(v2.version_stages, vec![SYSCURRENT]);
    let v1 = s.show_version(P, "api", "v1").await.unwrap();
    assert_eq!(v1.version_metadata.version_stages, vec![SYSPREVIOUS]);
    assert_eq!(v1.value.expose_str(), Some("one"));
    assert_eq!(
        s.show_version(P, "api", LATEST)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some("two")
    );

    // A custom stage, then a version that takes only the custom stage: SYSCURRENT stays.
    let v3 = s
        .create_version(
            P,
            "api",
            CreateVersion {
                secret_string: text("three"),
                version_stages: vec!["canary".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v3.version_stages, vec!["canary"]);
    assert_eq!(current(&s, "api").await.value.expose_str(), Some("two"));

    // Moving SYSCURRENT by update_stage sends the old one to SYSPREVIOUS.
    s.update_stage(P, "api", SYSCURRENT, "v3").await.unwrap();
    assert_eq!(current(&s, "api").await.value.expose_str(), Some("three"));
    assert_eq!(
        s.show_stage(P, "api", SYSPREVIOUS)
            .await
            .unwrap()
            .version_id,
        "v2"
    );
    let v1 = s.show_version(P, "api", "v1").await.unwrap();
    assert!(
        v1.version_metadata.version_stages.is_empty(),
        "v1 is deprecated now"
    );

    // Exactly one SYSCURRENT, always.
    let page = s.list_versions(P, "api", None, None).await.unwrap();
    assert_eq!(
        page.version_metadatas
            .iter()
            .map(|v| v.id.as_str())
            .collect::<Vec<_>>(),
        ["v3", "v2", "v1"]
    );
    assert_eq!(
        page.version_metadatas
            .iter()
            .filter(|v| v.version_stages.contains(&SYSCURRENT.to_owned()))
            .count(),
        1
    );

    // SYSCURRENT cannot be removed; a custom stage can; a missing one is 404.
    let e = s.delete_stage(P, "api", SYSCURRENT).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::SYSTEM_STAGE));
    s.delete_stage(P, "api", "canary").await.unwrap();
    assert_eq!(
        s.delete_stage(P, "api", "canary")
            .await
            .unwrap_err()
            .status(),
        404
    );
    // SYSPENDING and SYSPREVIOUS are the store's.
    assert_eq!(
        s.update_stage(P, "api", SYSPENDING, "v1")
            .await
            .unwrap_err()
            .status(),
        400
    );
    assert_eq!(
        s.update_stage(P, "api", SYSCURRENT, "v9")
            .await
            .unwrap_err()
            .status(),
        404
    );
}

#[tokio::test]
async fn not_found_duplicates_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let e = s.show_secret(P, "nope").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (404, "CSMS.0005"));
    s.create_secret(
        P,
        CreateSecret {
            name: "a".into(),
            secret_string: text("x"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = s
        .create_secret(
            P,
            CreateSecret {
                name: "a".into(),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::ALREADY_EXISTS));
    for bad in ["", "a/b", "sp ace", &"x".repeat(65)] {
        let e = s
            .create_secret(
                P,
                CreateSecret {
                    name: bad.into(),
                    secret_string: text("x"),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), 400, "{bad:?}");
    }
    let e = s
        .create_secret(
            P,
            CreateSecret {
                name: "b".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::INVALID_PARAMETER);
    let e = s
        .create_secret(
            P,
            CreateSecret {
                name: "c".into(),
                secret_type: Some("RDS".into()),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), codes::INVALID_PARAMETER);
    // A database secret needs a credential value and a sub type.
    let mut d = db_secret("d", "SingleUser", "u", "p");
    d.secret_string = text("not json");
    assert_eq!(s.create_secret(P, d).await.unwrap_err().status(), 400);
    let e = s
        .create_secret(P, db_secret("d", "Triple", "u", "p"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    // Projects are separate.
    assert_eq!(s.show_secret("proj2", "a").await.unwrap_err().status(), 404);
    assert_eq!(
        s.show_version(P, "a", "v7").await.unwrap_err().status(),
        404
    );
    assert_eq!(
        s.show_version(P, "a", "bogus").await.unwrap_err().status(),
        404
    );
}

#[tokio::test]
async fn listing_pages_with_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    for i in 0..7 {
        s.create_secret(
            P,
            CreateSecret {
                name: format!("s{i}"),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    s.create_secret(
        "other",
        CreateSecret {
            name: "zz".into(),
            secret_string: text("x"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s.list_secrets(P, Some(3), marker.as_deref()).await.unwrap();
        names.extend(page.secrets.iter().map(|x| x.name.clone()));
        assert_eq!(page.page_info.current_count as usize, page.secrets.len());
        match page.page_info.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>());

    for i in 0..4 {
        s.create_version(
            P,
            "s0",
            CreateVersion {
                secret_string: text(&format!("v{i}")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let p1 = s.list_versions(P, "s0", Some(2), None).await.unwrap();
    assert_eq!(ids(&p1), ["v5", "v4"]);
    let p2 = s
        .list_versions(P, "s0", Some(2), p1.page_info.next_marker.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&p2), ["v3", "v2"]);
    let p3 = s
        .list_versions(P, "s0", Some(2), p2.page_info.next_marker.as_deref())
        .await
        .unwrap();
    assert_eq!(ids(&p3), ["v1"]);
    assert_eq!(p3.page_info.next_marker, None);
}

#[tokio::test]
async fn deprecated_versions_are_pruned_beyond_the_history_limit() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate().unwrap();
    let s = EmbeddedStore::open(
        &dir.path().join("s.redb"),
        key,
        EmbeddedOptions {
            history_limit: 3,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    s.create_secret(
        P,
        CreateSecret {
            name: "a".into(),
            secret_string: text("0"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for i in 1..10 {
        s.create_version(
            P,
            "a",
            CreateVersion {
                secret_string: text(&i.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let ids: Vec<String> = s
        .list_versions(P, "a", None, None)
        .await
        .unwrap()
        .version_metadatas
        .into_iter()
        .map(|v| v.id)
        .collect();
    // SYSCURRENT v10, SYSPREVIOUS v9, and three deprecated ones.
    assert_eq!(ids, ["v10", "v9", "v8", "v7", "v6"]);
}

#[tokio::test]
async fn disabled_secrets_can_be_neither_read_nor_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    s.update_secret(
        P,
        "db",
        UpdateSecret {
            state: Some(SecretState::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = s.show_version(P, "db", LATEST).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::SECRET_DISABLED));
    let t = Arc::new(MemoryChanger::default());
    assert_eq!(
        s.rotate(P, "db", with_target(&t)).await.unwrap_err().code(),
        codes::SECRET_DISABLED
    );
    s.update_secret(
        P,
        "db",
        UpdateSecret {
            state: Some(SecretState::Enabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(s.show_version(P, "db", LATEST).await.is_ok());
}

#[tokio::test]
async fn rotate_refuses_common_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(
        P,
        CreateSecret {
            name: "c".into(),
            secret_string: text("x"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let e = s
        .rotate(P, "c", RotateOptions::default())
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::ROTATE_UNSUPPORTED));
    assert!(
        e.to_string()
            .contains("RotateSecret does not support COMMON secrets"),
        "{e}"
    );
    assert_eq!(
        s.list_versions(P, "c", None, None)
            .await
            .unwrap()
            .version_metadatas
            .len(),
        1
    );
}

#[tokio::test]
async fn single_user_rotation_changes_the_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let r = s.rotate(P, "db", with_target(&t)).await.unwrap();
    assert_eq!(r.version_id, "v2");
    assert_eq!(r.secret_name, "db");
    assert!(uuid::Uuid::parse_str(&r.rotation_task_id).is_ok());
    let cur = DatabaseCredential::from_value(&current(&s, "db").await.value).unwrap();
    assert_eq!(cur.username, "app");
    assert_ne!(cur.password, "pw0");
    assert_eq!(cur.password.len(), 32);
    assert_eq!(
        t.password("app").unwrap().expose_str(),
        Some(cur.password.as_str())
    );
    assert_eq!(
        s.show_stage(P, "db", SYSPREVIOUS).await.unwrap().version_id,
        "v1"
    );
    assert!(s.show_stage(P, "db", SYSPENDING).await.is_err());
    let task = s.show_task(P, &r.rotation_task_id).await.unwrap();
    assert_eq!(task.task_status, TaskStatus::Success);
    assert_eq!(task.attempt_nums, 1);
    assert_eq!(task.operate_type, "ROTATE");
    assert!(
        s.show_secret(P, "db")
            .await
            .unwrap()
            .rotation_time
            .is_some()
    );
}

#[tokio::test]
async fn multi_user_rotation_alternates_and_never_touches_the_current_account() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app_a", SecretValue::from_str_value("pwA"));
    s.create_secret(P, db_secret("db", "MultiUser", "app_a", "pwA"))
        .await
        .unwrap();
    let mut users = Vec::new();
    for _ in 0..4 {
        let before = DatabaseCredential::from_value(&current(&s, "db").await.value).unwrap();
        let before_pw = t.password(&before.username);
        s.rotate(P, "db", with_target(&t)).await.unwrap();
        let after = DatabaseCredential::from_value(&current(&s, "db").await.value).unwrap();
        assert_ne!(
            after.username, before.username,
            "the other account becomes current"
        );
        assert_eq!(
            t.password(&before.username),
            before_pw,
            "the account in use was changed"
        );
        assert_eq!(
            t.password(&after.username).unwrap().expose_str(),
            Some(after.password.as_str())
        );
        let prev = s.show_version_by_stage(P, "db", SYSPREVIOUS).await.unwrap();
        assert_eq!(
            DatabaseCredential::from_value(&prev.value)
                .unwrap()
                .username,
            before.username
        );
        users.push(after.username.clone());
    }
    assert_eq!(users, ["app_b", "app_a", "app_b", "app_a"]);
}

#[tokio::test]
async fn a_failed_database_step_keeps_current_and_resumes_the_same_value() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    *t.fail_set.lock().unwrap() = Some("CONNECT".into());
    let e = s.rotate(P, "db", with_target(&t)).await.unwrap_err();
    let StoreError::RotationFailed { task_id, code, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(code, "CSMS.0510.CONNECT");
    assert_eq!(e.status(), 502);
    let task = s.show_task(P, task_id).await.unwrap();
    assert_eq!(task.task_status, TaskStatus::Failed);
    assert_eq!(task.task_error_code, "CSMS.0510.CONNECT");
    assert_eq!(
        current(&s, "db").await.version_metadata.id,
        "v1",
        "SYSCURRENT untouched"
    );
    assert_eq!(t.password("app").unwrap().expose_str(), Some("pw0"));
    let pending = s.show_version_by_stage(P, "db", SYSPENDING).await.unwrap();
    let pending_pw = DatabaseCredential::from_value(&pending.value)
        .unwrap()
        .password
        .clone();
    // A second failure: still the same pending version, no new one.
    s.rotate(P, "db", with_target(&t)).await.unwrap_err();
    assert_eq!(
        s.show_version(P, "db", LATEST)
            .await
            .unwrap()
            .version_metadata
            .id,
        "v2"
    );

    *t.fail_set.lock().unwrap() = None;
    let r = s.rotate(P, "db", with_target(&t)).await.unwrap();
    assert_eq!(r.version_id, "v2", "resumed, not a new version");
    assert_eq!(&r.rotation_task_id, task_id, "the same task");
    assert_eq!(
        t.password("app").unwrap().expose_str(),
        Some(pending_pw.as_str())
    );
    let task = s.show_task(P, task_id).await.unwrap();
    assert_eq!(task.task_status, TaskStatus::Success);
    assert_eq!(task.attempt_nums, 3);
    assert!(task.task_error_code.is_empty());
    let tasks = s
        .list_tasks(
            P,
            TaskFilter {
                secret_name: Some("db".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.total, 1);
}

#[tokio::test]
async fn a_rotation_without_a_target_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let e = s
        .rotate(P, "db", RotateOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::RotationFailed { ref code, .. } if code.ends_with("CONFIG")),
        "{e:?}"
    );
    assert_eq!(current(&s, "db").await.version_metadata.id, "v1");
}

/// A target whose set_password waits, to hold a rotation open.
struct SlowTarget(MemoryChanger);

#[async_trait::async_trait]
impl PasswordChanger for SlowTarget {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        cur: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.set_password(user, new, cur).await
    }
    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        self.0.test_login(user, password).await
    }
    fn describe(&self) -> String {
        "slow".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rotations_at_once_one_proceeds_one_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let db = MemoryChanger::default();
    db.set("app", SecretValue::from_str_value("pw0"));
    let t: Arc<dyn PasswordChanger> = Arc::new(SlowTarget(db));
    let opts = RotateOptions {
        changer: Some(t),
        policy: None,
    };
    let (a, b) = tokio::join!(
        s.rotate(P, "db", opts.clone()),
        s.rotate(P, "db", opts.clone())
    );
    let results = [a, b];
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let err = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(err.code(), codes::ROTATION_IN_PROGRESS);
    assert_eq!(
        s.list_versions(P, "db", None, None)
            .await
            .unwrap()
            .version_metadatas
            .len(),
        2,
        "never two new versions"
    );
}

#[tokio::test]
async fn the_password_policy_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    let t = Arc::new(MemoryChanger::default());
    // The database holds what the store holds (the operator's check before a change logs in with it).
    t.set("app", SecretValue::from_str_value("pw0"));
    let policy = secret_rotator_core::password::PasswordPolicy {
        length: 20,
        exclude_punctuation: true,
        ..Default::default()
    };
    s.rotate(
        P,
        "db",
        RotateOptions {
            changer: Some(t.clone()),
            policy: Some(policy),
        },
    )
    .await
    .unwrap();
    let cur = DatabaseCredential::from_value(&current(&s, "db").await.value).unwrap();
    assert_eq!(cur.password.len(), 20);
    assert!(cur.password.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[tokio::test]
async fn the_store_file_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let key = MasterKey::generate().unwrap();
    let s = EmbeddedStore::open(&path, key, EmbeddedOptions::default()).unwrap();
    let mut values = Vec::new();
    for i in 0..20 {
        let v = format!("known-plaintext-{i}-{}", uuid::Uuid::new_v4());
        s.create_secret(
            P,
            CreateSecret {
                name: format!("k{i}"),
                secret_string: text(&v),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        values.push(v);
    }
    let t = Arc::new(MemoryChanger::default());
    t.set(
        "app",
        SecretValue::from_str_value("initial-db-password-xyz"),
    );
    s.create_secret(
        P,
        db_secret("db", "SingleUser", "app", "initial-db-password-xyz"),
    )
    .await
    .unwrap();
    values.push("initial-db-password-xyz".into());
    s.rotate(P, "db", with_target(&t)).await.unwrap();
    let rotated = DatabaseCredential::from_value(&current(&s, "db").await.value).unwrap();
    values.push(rotated.password.clone());
    drop(s);
    let raw = std::fs::read(&path).unwrap();
    for v in &values {
        assert!(
            !raw.windows(v.len()).any(|w| w == v.as_bytes()),
            "a value was found in the store file"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn a_wrong_master_key_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let key = MasterKey::generate().unwrap();
    {
        let s = EmbeddedStore::open(&path, key.clone(), EmbeddedOptions::default()).unwrap();
        s.create_secret(
            P,
            CreateSecret {
                name: "a".into(),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let wrong = MasterKey::generate().unwrap();
    let e = EmbeddedStore::open(&path, wrong, EmbeddedOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::WrongMasterKey { .. }), "{e:?}");
    assert!(e.to_string().contains("master key does not match"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file changed");
    // The right key still opens it.
    let s = EmbeddedStore::open(&path, key, EmbeddedOptions::default()).unwrap();
    assert_eq!(
        s.show_version(P, "a", LATEST)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some("x")
    );
}

#[tokio::test]
async fn rekey_rewraps_every_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let old = MasterKey::generate().unwrap();
    {
        let s = EmbeddedStore::open(&path, old.clone(), EmbeddedOptions::default()).unwrap();
        for i in 0..5 {
            s.create_secret(
                P,
                CreateSecret {
                    name: format!("k{i}"),
                    secret_string: text(&format!("value-{i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.create_version(
                P,
                &format!("k{i}"),
                CreateVersion {
                    secret_string: text(&format!("value2-{i}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    }
    let new = MasterKey::generate().unwrap();
    assert_eq!(EmbeddedStore::rekey(&path, old.clone(), &new).unwrap(), 10);
    assert!(matches!(
        EmbeddedStore::open(&path, old, EmbeddedOptions::default()),
        Err(StoreError::WrongMasterKey { .. })
    ));
    let s = EmbeddedStore::open(&path, new, EmbeddedOptions::default()).unwrap();
    for i in 0..5 {
        assert_eq!(
            s.show_version(P, &format!("k{i}"), "v1")
                .await
                .unwrap()
                .value
                .expose_str(),
            Some(format!("value-{i}").as_str())
        );
        assert_eq!(
            s.show_version(P, &format!("k{i}"), "v2")
                .await
                .unwrap()
                .value
                .expose_str(),
            Some(format!("value2-{i}").as_str())
        );
    }
}

#[tokio::test]
async fn task_listing_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    for n in ["a", "b"] {
        // Each secret's account on a database of its own, holding what the store holds.
        let t = Arc::new(MemoryChanger::default());
        t.set("app", SecretValue::from_str_value("pw0"));
        s.create_secret(P, db_secret(n, "SingleUser", "app", "pw0"))
            .await
            .unwrap();
        for _ in 0..3 {
            s.rotate(P, n, with_target(&t)).await.unwrap();
        }
    }
    let all = s.list_tasks(P, TaskFilter::default()).await.unwrap();
    assert_eq!(all.total, 6);
    let a = s
        .list_tasks(
            P,
            TaskFilter {
                secret_name: Some("a".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.total, 3);
    assert!(a.tasks.iter().all(|t| t.secret_name == "a"));
    let failed = s
        .list_tasks(
            P,
            TaskFilter {
                status: Some(TaskStatus::Failed),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.total, 0);
    let p1 = s
        .list_tasks(
            P,
            TaskFilter {
                limit: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p1.tasks.len(), 4);
    let p2 = s
        .list_tasks(
            P,
            TaskFilter {
                limit: Some(4),
                marker: p1.next_marker.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.tasks.len(), 2);
    assert_eq!(p2.next_marker, None);
    let mut ids: Vec<_> = p1
        .tasks
        .iter()
        .chain(p2.tasks.iter())
        .map(|t| t.task_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(
        s.show_task(P, "no-such-task").await.unwrap_err().status(),
        404
    );
}

#[tokio::test]
async fn debug_of_a_version_hides_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(
        P,
        CreateSecret {
            name: "a".into(),
            secret_string: text("very-secret-value"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let v = s.show_version(P, "a", LATEST).await.unwrap();
    let d = format!("{v:?} {s:?}");
    assert!(!d.contains("very-secret-value"), "{d}");
}

mod deletion;
mod rollback;
mod safety;
