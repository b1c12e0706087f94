//! The `secret-rotator store rekey` command, run as a user would.

use std::process::Command;

use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

#[tokio::test]
async fn rekey_command_rewraps_and_the_old_key_stops_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.redb");
    let (old, new) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );
    std::fs::write(dir.path().join("old.key"), old.to_base64().as_bytes()).unwrap();
    std::fs::write(
        dir.path().join("new.key"),
        format!("{}\n", new.to_base64().as_str()),
    )
    .unwrap();
    {
        let s = EmbeddedStore::open(&store, old.clone(), EmbeddedOptions::default()).unwrap();
        s.create_secret(
            "p",
            CreateSecret {
                name: "a".into(),
                secret_string: Some(SecretValue::from_str_value("v-a")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["store", "rekey", "--store-path"])
        .arg(&store)
        .arg("--master-key-file")
        .arg(dir.path().join("old.key"))
        .arg("--new-master-key-file")
        .arg(dir.path().join("new.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-wrapped 1 data keys"));
    let s = EmbeddedStore::open(&store, new.clone(), EmbeddedOptions::default()).unwrap();
    assert_eq!(
        s.show_version("p", "a", LATEST)
            .await
            .unwrap()
            .value
            .expose_str(),
        Some("v-a")
    );
    drop(s);

    // Re-running with the old key now fails clearly, and changes nothing.
    let before = std::fs::read(&store).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["store", "rekey", "--store-path"])
        .arg(&store)
        .arg("--master-key-file")
        .arg(dir.path().join("old.key"))
        .arg("--new-master-key-file")
        .arg(dir.path().join("new.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key does not match"), "{err}");
    assert_eq!(std::fs::read(&store).unwrap(), before);
    assert!(!err.contains(old.to_base64().as_str()) && !err.contains(new.to_base64().as_str()));
}

#[test]
fn a_bad_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.key"), "c2hvcnQ=").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["store", "rekey", "--store-path"])
        .arg(dir.path().join("s.redb"))
        .arg("--master-key-file")
        .arg(dir.path().join("bad.key"))
        .arg("--new-master-key-file")
        .arg(dir.path().join("bad.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exactly 32 bytes") && err.contains("openssl rand -base64 32"),
        "{err}"
    );
}
