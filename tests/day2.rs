//! Day-2 operations (issue 16) on the local control plane with a real `secret-rotator run`: time zones,
//! maintenance windows and what the status and `kubectl get` say about them.

mod support;

use support::operator::*;
use support::{TestNamespace, client, install_crd, kubectl_ok};

fn common(name: &str, rotation: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {rotation}\n"
    )
}

fn rotating(sr: &secret_rotator::api::SecretRotation) -> (String, String) {
    sr.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Rotating"))
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

/// A cron schedule in a time zone: 03:00 in Shanghai is 19:00 UTC; an unknown zone is InvalidSpec naming
/// the field.
#[tokio::test]
async fn schedules_are_read_in_their_time_zone() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-tz").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common(
            "shanghai",
            "{schedule: '0 3 * * *', timeZone: Asia/Shanghai, rotateOnCreate: false}",
        ),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "shanghai", "True", "Synced", 30).await;
    let next = sr.status.unwrap().next_rotation_time.unwrap().0;
    assert!(next.to_string().ends_with("T19:00:00Z"), "{next}");

    apply_sr(
        &c,
        &ns.name,
        &common(
            "mars",
            "{schedule: '0 3 * * *', timeZone: Mars/Olympus_Mons}",
        ),
    )
    .await;
    let sr = wait_ready(&c, &ns.name, "mars", "False", "InvalidSpec", 30).await;
    let message = sr
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(message.contains("spec.rotation.timeZone"), "{message}");
    assert!(message.contains("Mars/Olympus_Mons"), "{message}");
}

/// A 5-second period with a window open for the first 10 seconds of each minute: a rotation that falls
/// due outside it waits (Rotating=False WaitingForWindow, in `kubectl get` too, next rotation at the
/// opening), then happens inside the window.
#[tokio::test]
async fn a_due_rotation_waits_for_its_maintenance_window() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "day2-window").await;
    let files = OperatorFiles::new();
    let _op = start_in(&files, &ns.name, &[]);
    apply_sr(
        &c,
        &ns.name,
        &common(
            "nightly",
            "{period: 5s, rotateOnCreate: false, timeZone: Asia/Kolkata, maintenanceWindow: {schedule: '* * * * *', duration: 10s}}",
        ),
    )
    .await;
    wait_ready(&c, &ns.name, "nightly", "True", "Synced", 30).await;
    // Within about a minute the period has elapsed outside the window at least once.
    let waiting = eventually(90, "Rotating=False WaitingForWindow", || async {
        let sr = get_sr(&c, &ns.name, "nightly").await;
        (rotating(&sr).0 == "WaitingForWindow").then_some(sr)
    })
    .await;
    let (_, message) = rotating(&waiting);
    let st = waiting.status.clone().unwrap();
    let opens = st.next_rotation_time.unwrap().0;
    assert_eq!(opens.as_second() % 60, 0, "the window opens on a minute");
    assert!(message.contains(&opens.to_string()), "{message} / {opens}");
    let table = kubectl_ok(&["get", "srot", "nightly", "-n", &ns.name]);
    assert!(table.contains("ROTATING"), "{table}");
    assert!(table.contains("WaitingForWindow"), "{table}");
    let before = st.version_id.unwrap();

    // It rotates once the window opens, and only inside it.
    let rotated = eventually(90, "a rotation after the window opened", || async {
        let sr = get_sr(&c, &ns.name, "nightly").await;
        let st = sr.status.clone()?;
        (st.version_id.as_deref() != Some(before.as_str())).then_some(st)
    })
    .await;
    let at = rotated.last_rotation_time.unwrap().0;
    assert!(
        at >= opens,
        "rotated at {at}, before the window opened at {opens}"
    );
    assert!(
        at.as_second() % 60 < 10,
        "rotated at {at}, outside the 10-second window"
    );
}
