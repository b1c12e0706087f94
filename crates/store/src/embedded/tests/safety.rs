//! No lockout (the login checks around a change) and bounded tasks.

use super::*;

/// A database that checks passwords like [`MemoryChanger`] but refuses the operator's logins for some
/// passwords (an access rule that lets the application in and not the operator).
struct Guarded {
    db: MemoryChanger,
    /// Logins refused for every password.
    refuse_all: bool,
    /// Logins accepted only with this password.
    only: Option<String>,
}

#[async_trait::async_trait]
impl PasswordChanger for Guarded {
    async fn set_password(
        &self,
        user: &str,
        new: &SecretValue,
        current: Option<&SecretValue>,
    ) -> Result<(), ChangeError> {
        self.db.set_password(user, new, current).await
    }

    async fn test_login(&self, user: &str, password: &SecretValue) -> Result<(), ChangeError> {
        let allowed = !self.refuse_all
            && self
                .only
                .as_deref()
                .is_none_or(|o| password.expose_str() == Some(o));
        if !allowed {
            return Err(ChangeError::new("LOGIN_TEST", "refused by an access rule"));
        }
        self.db.test_login(user, password).await
    }

    fn describe(&self) -> String {
        "guarded".into()
    }
}

#[tokio::test]
async fn the_account_in_use_never_keeps_a_password_it_cannot_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    // The operator's login is refused outright: nothing is changed.
    let t = Arc::new(Guarded {
        db: MemoryChanger::default(),
        refuse_all: true,
        only: None,
    });
    t.db.set("app", SecretValue::from_str_value("pw0"));
    let opts = RotateOptions {
        changer: Some(t.clone()),
        policy: None,
    };
    let e = s.rotate(P, "db", opts).await.unwrap_err();
    let StoreError::RotationFailed { code, message, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(code, "CSMS.0510.PRECHECK", "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(t.db.password("app").unwrap().expose_str(), Some("pw0"));

    // The login with the current password works, but not with the new one: the old one is put back.
    let t = Arc::new(Guarded {
        db: MemoryChanger::default(),
        refuse_all: false,
        only: Some("pw0".into()),
    });
    t.db.set("app", SecretValue::from_str_value("pw0"));
    let opts = RotateOptions {
        changer: Some(t.clone()),
        policy: None,
    };
    let e = s.rotate(P, "db", opts).await.unwrap_err();
    let StoreError::RotationFailed { code, message, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(code, "CSMS.0510.LOGIN_TEST", "{message}");
    assert!(
        message.contains("the previous password was put back"),
        "{message}"
    );
    assert_eq!(
        t.db.password("app").unwrap().expose_str(),
        Some("pw0"),
        "the database holds SYSCURRENT's password again"
    );
    assert_eq!(current(&s, "db").await.version_metadata.id, "v1");
}

#[tokio::test]
async fn tasks_are_bounded_per_secret_and_go_with_their_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    t.set("other", SecretValue::from_str_value("pw0"));
    s.create_secret(P, db_secret("neighbour", "SingleUser", "other", "pw0"))
        .await
        .unwrap();
    s.rotate(P, "neighbour", with_target(&t)).await.unwrap();
    let mut last = String::new();
    for _ in 0..(super::tasks::TASKS_PER_SECRET + 5) {
        last = s
            .rotate(P, "db", with_target(&t))
            .await
            .unwrap()
            .rotation_task_id;
    }
    let of = |name: &str| TaskFilter {
        secret_name: Some(name.to_owned()),
        limit: Some(200),
        ..TaskFilter::default()
    };
    let page = s.list_tasks(P, of("db")).await.unwrap();
    assert_eq!(
        page.total as usize,
        super::tasks::TASKS_PER_SECRET,
        "older tasks pruned"
    );
    assert_eq!(page.tasks[0].task_id, last, "the newest kept");
    assert_eq!(s.list_tasks(P, of("neighbour")).await.unwrap().total, 1);
    let by_id = TaskFilter {
        task_id: Some(last.clone()),
        ..TaskFilter::default()
    };
    assert_eq!(s.list_tasks(P, by_id.clone()).await.unwrap().tasks.len(), 1);

    // A store written before the index existed: the index is rebuilt at open.
    drop(s);
    {
        let db = redb::Database::open(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(super::keys::TASK_INDEX).unwrap();
        txn.commit().unwrap();
    }
    let s = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        key,
        EmbeddedOptions::default(),
    )
    .unwrap();
    assert_eq!(
        s.list_tasks(P, of("db")).await.unwrap().total as usize,
        super::tasks::TASKS_PER_SECRET
    );

    // DeleteSecret takes the secret's tasks with it, and only those.
    s.delete_secret(P, "db").await.unwrap();
    assert_eq!(s.list_tasks(P, of("db")).await.unwrap().total, 0);
    assert!(s.list_tasks(P, by_id).await.unwrap().tasks.is_empty());
    let all = s.list_tasks(P, TaskFilter::default()).await.unwrap();
    assert_eq!(all.total, 1, "the neighbour's task stays");
}

/// Rewrites every secret record of a closed store file with `f` (as someone with the file but not the
/// key could).
pub(super) fn rewrite_records(dir: &tempfile::TempDir, f: impl Fn(&str, &[u8]) -> Vec<u8>) {
    let db = redb::Database::open(dir.path().join("store.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(super::keys::SECRETS).unwrap();
        let mut all = Vec::new();
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            all.push((k.value().to_owned(), v.value().to_vec()));
        }
        for (k, v) in all {
            let new = f(&k, &v);
            t.insert(k.as_str(), new.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_secret_record_changed_outside_the_store_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = open(&dir);
    let t = Arc::new(MemoryChanger::default());
    t.set("app", SecretValue::from_str_value("pw0"));
    s.create_secret(P, db_secret("db", "SingleUser", "app", "pw0"))
        .await
        .unwrap();
    s.rotate(P, "db", with_target(&t)).await.unwrap();
    assert_eq!(current(&s, "db").await.version_metadata.id, "v2");
    drop(s);
    // Roll SYSCURRENT back to v1 in the JSON, keeping the stored MAC.
    rewrite_records(&dir, |_, stored| {
        let (json, mac) = stored.split_at(stored.len() - 32);
        let mut rec: serde_json::Value = serde_json::from_slice(json).unwrap();
        rec["stages"]["SYSCURRENT"]["version_id"] = serde_json::json!("v1");
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

#[tokio::test]
async fn a_store_of_the_first_format_gets_its_records_authenticated_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (s, key) = open(&dir);
    s.create_secret(
        P,
        CreateSecret {
            name: "api".into(),
            secret_string: Some(SecretValue::from_str_value("first")),
            ..CreateSecret::default()
        },
    )
    .await
    .unwrap();
    drop(s);
    // As the first format wrote it: plain JSON records, format 1.
    rewrite_records(&dir, |_, stored| stored[..stored.len() - 32].to_vec());
    {
        let db = redb::Database::open(dir.path().join("store.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(super::keys::META)
            .unwrap()
            .insert(super::keys::FORMAT_KEY, super::keys::FORMAT_V1)
            .unwrap();
        txn.commit().unwrap();
    }
    let s = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        key.clone(),
        EmbeddedOptions::default(),
    )
    .unwrap();
    assert_eq!(current(&s, "api").await.value.expose_str(), Some("first"));
    drop(s);
    // Migrated: the records now carry MACs, so a changed one is refused.
    rewrite_records(&dir, |_, stored| {
        let mut v = stored.to_vec();
        v[2] ^= 1;
        v
    });
    assert!(
        EmbeddedStore::open(
            &dir.path().join("store.redb"),
            key,
            EmbeddedOptions::default()
        )
        .is_err()
    );
}
