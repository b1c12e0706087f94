//! A damaged store file: bytes flipped at many offsets, or the file truncated. Opening it must give an
//! error (or, where the damage misses everything redb reads, a store whose values still decrypt or
//! refuse cleanly): never a panic, and a refused file is left byte-for-byte as it was.

use std::panic::AssertUnwindSafe;

use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

fn build(path: &std::path::Path, key: &MasterKey, rt: &tokio::runtime::Runtime) {
    let s = EmbeddedStore::open(path, key.clone(), EmbeddedOptions::default()).unwrap();
    rt.block_on(async {
        for i in 0..20 {
            s.create_secret(
                "p",
                CreateSecret {
                    name: format!("s{i}"),
                    secret_string: Some(SecretValue::from_str_value(&format!("value-{i}"))),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            s.create_version(
                "p",
                &format!("s{i}"),
                CreateVersion {
                    secret_string: Some(SecretValue::from_str_value(&format!("value2-{i}"))),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
    });
}

/// Opens a damaged copy and reads every secret; returns how the open went.
fn probe(
    path: &std::path::Path,
    key: &MasterKey,
    rt: &tokio::runtime::Runtime,
) -> Result<&'static str, String> {
    let before = std::fs::read(path).unwrap();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        match EmbeddedStore::open(path, key.clone(), EmbeddedOptions::default()) {
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.is_empty());
                "refused"
            }
            Ok(s) => {
                rt.block_on(async {
                    for i in 0..20 {
                        match s
                            .show_version_by_stage("p", &format!("s{i}"), SYSCURRENT)
                            .await
                        {
                            Ok(v) => assert_eq!(
                                v.value.expose_str(),
                                Some(format!("value2-{i}").as_str()),
                                "a damaged store returned a wrong value"
                            ),
                            Err(e) => assert!(!e.to_string().is_empty()),
                        }
                    }
                });
                "opened"
            }
        }
    }));
    match outcome {
        Err(p) => Err(format!(
            "panicked: {:?}",
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or(p.downcast_ref::<&str>().copied())
        )),
        Ok("refused") => {
            if std::fs::read(path).unwrap() != before {
                return Err("a refused file was modified".into());
            }
            Ok("refused")
        }
        Ok(o) => Ok(o),
    }
}

#[test]
fn flipped_bytes_and_truncation_never_panic() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    let key = MasterKey::generate().unwrap();
    build(&good, &key, &rt);
    let original = std::fs::read(&good).unwrap();
    let len = original.len();
    let mut failures = Vec::new();
    let (mut refused, mut opened) = (0, 0);
    let damaged = dir.path().join("damaged.redb");
    // Flip a byte at offsets spread across the whole file, including the header.
    let mut offsets: Vec<usize> = (0..64).collect();
    offsets.extend((0..200).map(|i| i * len / 200));
    for off in offsets {
        let mut bytes = original.clone();
        bytes[off] ^= 0xA5;
        std::fs::write(&damaged, &bytes).unwrap();
        match probe(&damaged, &key, &rt) {
            Ok("refused") => refused += 1,
            Ok(_) => opened += 1,
            Err(e) => failures.push(format!("flip at {off}: {e}")),
        }
    }
    // Truncate to a range of lengths.
    for cut in [0, 1, 16, 512, 4096, len / 4, len / 2, len - 1] {
        std::fs::write(&damaged, &original[..cut]).unwrap();
        match probe(&damaged, &key, &rt) {
            Ok("refused") => refused += 1,
            Ok(_) => opened += 1,
            Err(e) => failures.push(format!("truncated to {cut}: {e}")),
        }
    }
    println!(
        "store corruption: {refused} refused, {opened} opened (damage missed what was read), {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(refused > 0, "no damage was detected at all");
}
