//! Property tests of the embedded store: random operation sequences keep the CSMS invariants, and
//! values round-trip through envelope encryption and the password generator.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use secret_rotator_core::password::PasswordPolicy;
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::{MemoryChanger, PasswordChanger};
use secret_rotator_store::embedded::crypto::{Binding, MasterKey};
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

#[derive(Debug, Clone)]
enum Op {
    NewVersion {
        stages: Vec<&'static str>,
        value: String,
    },
    MoveStage {
        stage: &'static str,
        back: usize,
    },
    DeleteStage {
        stage: &'static str,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let stage = prop_oneof![Just("SYSCURRENT"), Just("blue"), Just("green")];
    prop_oneof![
        (
            proptest::sample::subsequence(vec!["SYSCURRENT", "blue", "green"], 0..=3),
            "[a-z0-9]{1,24}"
        )
            .prop_map(|(stages, value)| Op::NewVersion { stages, value }),
        (stage.clone(), 0usize..6).prop_map(|(stage, back)| Op::MoveStage { stage, back }),
        stage.prop_map(|stage| Op::DeleteStage { stage }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn stage_invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..40)) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = EmbeddedStore::open(&dir.path().join("s.redb"), MasterKey::generate().unwrap(), EmbeddedOptions { history_limit: 50, ..EmbeddedOptions::default() }).unwrap();
            s.create_secret("p", CreateSecret { name: "x".into(), secret_string: Some(SecretValue::from_str_value("init")), ..Default::default() }).await.unwrap();
            // Model: value of each version, and where each stage points.
            let mut values: Vec<String> = vec!["init".into()];
            let mut stages: HashMap<&str, usize> = HashMap::from([("SYSCURRENT", 1)]);
            for op in ops {
                match op {
                    Op::NewVersion { stages: st, value } => {
                        let md = s.create_version("p", "x", CreateVersion {
                            secret_string: Some(SecretValue::from_str_value(&value)),
                            version_stages: st.iter().map(|s| s.to_string()).collect(),
                            ..Default::default()
                        }).await.unwrap();
                        values.push(value);
                        let n = values.len();
                        prop_assert_eq!(md.id, format!("v{n}"));
                        let st = if st.is_empty() { vec!["SYSCURRENT"] } else { st };
                        for stg in st {
                            if stg == "SYSCURRENT" && let Some(old) = stages.get("SYSCURRENT").copied() && old != n {
                                stages.insert("SYSPREVIOUS", old);
                            }
                            stages.insert(stg, n);
                        }
                    }
                    Op::MoveStage { stage, back } => {
                        let n = values.len().saturating_sub(back).max(1);
                        s.update_stage("p", "x", stage, &format!("v{n}")).await.unwrap();
                        if stage == "SYSCURRENT" && let Some(old) = stages.get("SYSCURRENT").copied() && old != n {
                            stages.insert("SYSPREVIOUS", old);
                        }
                        stages.insert(stage, n);
                    }
                    Op::DeleteStage { stage } => {
                        let r = s.delete_stage("p", "x", stage).await;
                        if stage == "SYSCURRENT" {
                            prop_assert_eq!(r.unwrap_err().status(), 400);
                        } else if stages.remove(stage).is_some() {
                            prop_assert!(r.is_ok());
                        } else {
                            prop_assert_eq!(r.unwrap_err().status(), 404);
                        }
                    }
                }
                // Invariants: exactly one SYSCURRENT; every stage where the model says; values decrypt.
                let page = s.list_versions("p", "x", Some(200), None).await.unwrap();
                let currents = page.version_metadatas.iter().filter(|v| v.version_stages.iter().any(|s| s == "SYSCURRENT")).count();
                prop_assert_eq!(currents, 1);
                for (stage, n) in &stages {
                    let got = s.show_stage("p", "x", stage).await.unwrap();
                    prop_assert_eq!(got.version_id, format!("v{n}"));
                    let v = s.show_version_by_stage("p", "x", stage).await.unwrap();
                    prop_assert_eq!(v.value.expose_str(), Some(values[n - 1].as_str()));
                }
                if let (Some(c), Some(p)) = (stages.get("SYSCURRENT"), stages.get("SYSPREVIOUS")) {
                    prop_assert_ne!(c, p);
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn rotations_with_random_failures_never_lose_a_credential(fails in proptest::collection::vec(any::<bool>(), 1..12), multi in any::<bool>()) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let s = EmbeddedStore::open(&dir.path().join("s.redb"), MasterKey::generate().unwrap(), EmbeddedOptions::default()).unwrap();
            let t = Arc::new(MemoryChanger::default());
            t.set("a", SecretValue::from_str_value("pw0"));
            let sub = if multi { "MultiUser" } else { "SingleUser" };
            s.create_secret("p", CreateSecret {
                name: "db".into(),
                secret_type: Some("RDS-FG".into()),
                secret_string: Some(DatabaseCredential { username: "a".into(), password: "pw0".into() }.to_value()),
                rotation_config: Some(format!(r#"{{"SecretSubType":"{sub}","Usernames":["a","b"]}}"#)),
                ..Default::default()
            }).await.unwrap();
            for fail in fails {
                *t.fail_set.lock().unwrap() = fail.then(|| "CONNECT".to_owned());
                let before = s.show_version_by_stage("p", "db", "SYSCURRENT").await.unwrap();
                let r = s.rotate("p", "db", RotateOptions { changer: Some(t.clone() as Arc<dyn PasswordChanger>), policy: None }).await;
                prop_assert_eq!(r.is_err(), fail);
                let cur = s.show_version_by_stage("p", "db", "SYSCURRENT").await.unwrap();
                if fail {
                    prop_assert_eq!(&cur.version_metadata.id, &before.version_metadata.id);
                }
                // The current credential always logs in.
                let cred = DatabaseCredential::from_value(&cur.value).unwrap();
                prop_assert!(t.test_login(&cred.username, &SecretValue::from_str_value(&cred.password)).await.is_ok());
            }
            Ok(())
        })?;
    }

    #[test]
    fn envelope_round_trips_any_value(value in proptest::collection::vec(any::<u8>(), 0..4096), project in "[a-z0-9]{1,12}", secret in "[a-z0-9._-]{1,20}", version in 1u32..1000) {
        let k = MasterKey::generate().unwrap();
        let version = format!("v{version}");
        let b = Binding { project: &project, secret: &secret, version: &version };
        let v = SecretValue::new(value);
        let sealed = k.seal(b, &v).unwrap();
        prop_assert_eq!(k.open(b, &sealed).unwrap(), v);
    }

    #[test]
    fn generated_passwords_meet_any_satisfiable_policy(
        length in 12u32..=256,
        el in any::<bool>(), eu in any::<bool>(), en in any::<bool>(), ep in any::<bool>(), sp in any::<bool>(),
        excl in "[a-zA-Z0-9!@#]{0,10}",
        each in any::<bool>(),
    ) {
        let policy = PasswordPolicy {
            length, exclude_lowercase: el, exclude_uppercase: eu, exclude_numbers: en, exclude_punctuation: ep,
            include_space: sp, exclude_characters: excl.clone(), require_each_included_type: each,
        };
        match secret_rotator_core::password::classes(&policy) {
            Err(_) => prop_assert!(secret_rotator_core::password::generate(&policy).is_err()),
            Ok(classes) => {
                let v = secret_rotator_core::password::generate(&policy).unwrap();
                let s = v.expose_str().unwrap();
                prop_assert_eq!(s.chars().count(), length as usize);
                prop_assert!(!s.chars().any(|c| excl.contains(c)));
                for c in s.chars() {
                    prop_assert!(classes.iter().any(|(_, cs)| cs.contains(&c)));
                }
                if each {
                    for (_, cs) in &classes {
                        prop_assert!(s.chars().any(|c| cs.contains(&c)));
                    }
                }
            }
        }
    }
}
