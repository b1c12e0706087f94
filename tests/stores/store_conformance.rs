//! One Store conformance suite, run against the embedded store in process and against the `csms` client
//! talking to `serve` over HTTP (with a token, and with AK/SK signatures). Both must behave alike.

use crate::support::csms as csms_support;

use std::sync::Arc;

use csms_support::*;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::{MemoryChanger, PasswordChanger};
use secret_rotator_store::error::codes;
use secret_rotator_store::*;

fn text(s: &str) -> Option<SecretValue> {
    Some(SecretValue::from_str_value(s))
}

async fn conformance(s: &dyn Store, rotate_opts: &(dyn Fn() -> RotateOptions + Sync)) {
    let p = PROJECT;
    // Secrets.
    let created = s
        .create_secret(
            p,
            CreateSecret {
                name: "c.api".into(),
                secret_string: text("first"),
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.name, "c.api");
    assert_eq!(created.secret_type, "COMMON");
    assert_eq!(created.state, SecretState::Enabled);
    assert_eq!(s.show_secret(p, "c.api").await.unwrap().id, created.id);
    let e = s
        .create_secret(
            p,
            CreateSecret {
                name: "c.api".into(),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::ALREADY_EXISTS));
    let e = s.show_secret(p, "missing").await.unwrap_err();
    assert_eq!((e.status(), e.code()), (404, codes::NOT_FOUND));
    let updated = s
        .update_secret(
            p,
            "c.api",
            UpdateSecret {
                description: Some("new".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "new");
    // Binary values round-trip.
    s.create_secret(
        p,
        CreateSecret {
            name: "c.bin".into(),
            secret_binary: Some(SecretValue::new(vec![0, 1, 2, 255])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let b = s.show_version(p, "c.bin", LATEST).await.unwrap();
    assert_eq!(b.kind, ValueKind::Binary);
    assert_eq!(b.value.expose(), &[0, 1, 2, 255]);

    // Versions and stages.
    let v2 = s
        .create_version(
            p,
            "c.api",
            CreateVersion {
                secret_string: text("second"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(v2.id, "v2");
    assert_eq!(v2.version_stages, ["SYSCURRENT"]);
    assert_eq!(
        s.show_version_by_stage(p, "c.api", SYSCURRENT)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some("second")
    );
    assert_eq!(
        s.show_version_by_stage(p, "c.api", SYSPREVIOUS)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some("first")
    );
    assert_eq!(
        s.show_version(p, "c.api", "v1")
            .await
            .unwrap()
            .version_metadata
            .version_stages,
        ["SYSPREVIOUS"]
    );
    let stage = s.update_stage(p, "c.api", "blue", "v1").await.unwrap();
    assert_eq!(
        (stage.name.as_str(), stage.version_id.as_str()),
        ("blue", "v1")
    );
    assert_eq!(
        s.show_stage(p, "c.api", "blue").await.unwrap().version_id,
        "v1"
    );
    s.delete_stage(p, "c.api", "blue").await.unwrap();
    assert_eq!(
        s.show_stage(p, "c.api", "blue").await.unwrap_err().status(),
        404
    );
    assert_eq!(
        s.delete_stage(p, "c.api", SYSCURRENT)
            .await
            .unwrap_err()
            .code(),
        codes::SYSTEM_STAGE
    );
    let page = s.list_versions(p, "c.api", Some(1), None).await.unwrap();
    assert_eq!(page.version_metadatas.len(), 1);
    assert_eq!(page.version_metadatas[0].id, "v2");
    let page2 = s
        .list_versions(p, "c.api", Some(1), page.page_info.next_marker.as_deref())
        .await
        .unwrap();
    assert_eq!(page2.version_metadatas[0].id, "v1");
    assert_eq!(
        s.show_version(p, "c.api", "v99")
            .await
            .unwrap_err()
            .status(),
        404
    );

    // Listing.
    for i in 0..4 {
        s.create_secret(
            p,
            CreateSecret {
                name: format!("l.{i}"),
                secret_string: text("x"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let page = s.list_secrets(p, Some(2), marker.as_deref()).await.unwrap();
        names.extend(page.secrets.into_iter().map(|s| s.name));
        match page.page_info.next_marker {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(names, ["c.api", "c.bin", "l.0", "l.1", "l.2", "l.3"]);

    // Rotation: COMMON refused; a database secret rotates and records a task.
    let e = s.rotate(p, "c.api", rotate_opts()).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (400, codes::ROTATE_UNSUPPORTED));
    s.create_secret(
        p,
        CreateSecret {
            name: "d.db".into(),
            secret_type: Some("RDS-FG".into()),
            secret_string: Some(
                DatabaseCredential {
                    username: "app".into(),
                    password: "pw0".into(),
                }
                .to_value(),
            ),
            rotation_config: Some(r#"{"InstanceId":"i-1","SecretSubType":"SingleUser"}"#.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = s.rotate(p, "d.db", rotate_opts()).await.unwrap();
    assert_eq!(
        (r.version_id.as_str(), r.secret_name.as_str()),
        ("v2", "d.db")
    );
    let cur = s
        .show_version_by_stage(p, "d.db", SYSCURRENT)
        .await
        .unwrap();
    let cred = DatabaseCredential::from_value(&cur.value).unwrap();
    assert_eq!(cred.username, "app");
    assert_ne!(cred.password, "pw0");
    let task = s.show_task(p, &r.rotation_task_id).await.unwrap();
    assert_eq!(task.task_status, TaskStatus::Success);
    assert_eq!(task.secret_name, "d.db");
    let tasks = s
        .list_tasks(
            p,
            TaskFilter {
                secret_name: Some("d.db".into()),
                status: Some(TaskStatus::Success),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tasks.total, 1);
    assert_eq!(
        s.show_task(p, "00000000-0000-0000-0000-000000000000")
            .await
            .unwrap_err()
            .status(),
        404
    );

    // Disabled secrets.
    s.update_secret(
        p,
        "d.db",
        UpdateSecret {
            state: Some(SecretState::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        s.show_version(p, "d.db", LATEST).await.unwrap_err().code(),
        codes::SECRET_DISABLED
    );
    assert_eq!(
        s.rotate(p, "d.db", rotate_opts()).await.unwrap_err().code(),
        codes::SECRET_DISABLED
    );

    // Scheduled deletion (DeleteSecretForSchedule): nothing of the secret can be used (CSMS.0103; the
    // client reads it as pending deletion), a second schedule is CSMS.0107; RestoreSecret makes it usable,
    // and a second restore is CSMS.0108.
    let before = secret_rotator_store::now_ms();
    let pending = s.schedule_deletion(p, "c.api", Some(7)).await.unwrap();
    assert_eq!(pending.state, SecretState::PendingDelete);
    assert!(pending.scheduled_delete_time >= before + 7 * 86_400_000);
    assert_eq!(
        s.show_secret(p, "c.api")
            .await
            .unwrap()
            .scheduled_delete_time,
        pending.scheduled_delete_time
    );
    for e in [
        s.show_version(p, "c.api", LATEST).await.unwrap_err(),
        s.list_versions(p, "c.api", None, None).await.unwrap_err(),
    ] {
        assert_eq!(e.status(), 400, "{e}");
        assert!(
            [codes::SCHEDULED_DELETION, codes::PENDING_DELETION].contains(&e.code()),
            "{e}"
        );
    }
    assert_eq!(
        s.schedule_deletion(p, "c.api", None)
            .await
            .unwrap_err()
            .code(),
        codes::PENDING_DELETION
    );
    let restored = s.restore_secret(p, "c.api").await.unwrap();
    assert_eq!(
        (restored.state, restored.scheduled_delete_time),
        (SecretState::Enabled, 0)
    );
    assert!(s.show_version(p, "c.api", LATEST).await.is_ok());
    assert_eq!(
        s.restore_secret(p, "c.api").await.unwrap_err().code(),
        codes::NOT_PENDING_DELETION
    );

    // Deletion.
    s.delete_secret(p, "l.3").await.unwrap();
    assert_eq!(s.show_secret(p, "l.3").await.unwrap_err().status(), 404);
    assert_eq!(s.delete_secret(p, "l.3").await.unwrap_err().status(), 404);
}

#[tokio::test]
async fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let s = embedded(&dir);
    let target = Arc::new(MemoryChanger::default());
    // The database holds what the store holds for the account (the store logs in before a change).
    target.set(
        "app",
        secret_rotator_core::secret_value::SecretValue::from_str_value("pw0"),
    );
    let opts = move || RotateOptions {
        changer: Some(target.clone() as Arc<dyn PasswordChanger>),
        policy: None,
    };
    conformance(s.as_ref(), &opts).await;
}

#[tokio::test]
async fn csms_client_with_a_token_against_serve_conforms() {
    let server = start(None).await;
    let client = token_client(&server.url, fast_opts());
    conformance(&client, &RotateOptions::default).await;
}

#[tokio::test]
async fn csms_client_with_aksk_against_serve_conforms() {
    let server = start(None).await;
    let client = aksk_client(&server.url, fast_opts());
    conformance(&client, &RotateOptions::default).await;
}
