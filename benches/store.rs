//! Embedded store benchmark, measured in one run so the ratios mean something on a noisy machine:
//! - durable COMMON version creations per second, against the engine's raw durable commit rate (one
//!   small insert per committed redb transaction, same file system);
//! - SYSCURRENT reads per second, against raw AES-256-GCM decryption of a value of the same size.
//!
//! `cargo bench --bench store` (set BENCH_SECONDS to change the time per measurement, default 3).

use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use secret_rotator::secret_value::SecretValue;
use secret_rotator::store::embedded::crypto::{self, MasterKey};
use secret_rotator::store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator::store::*;

const VALUE_LEN: usize = 32;

fn per_second(dur: Duration, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        f(n);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dur = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Raw engine: one durable commit per small insert.
    const RAW: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");
    let raw = Database::create(dir.path().join("raw.redb")).unwrap();
    let payload = vec![7u8; 256];
    let raw_commits = per_second(dur, |n| {
        let txn = raw.begin_write().unwrap();
        txn.open_table(RAW)
            .unwrap()
            .insert(n, payload.as_slice())
            .unwrap();
        txn.commit().unwrap();
    });

    // The store: one COMMON version per call (generate nothing; the value is given).
    let store = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        MasterKey::generate().unwrap(),
        EmbeddedOptions::default(),
    )
    .unwrap();
    let value = "x".repeat(VALUE_LEN);
    rt.block_on(store.create_secret(
        "p",
        CreateSecret {
            name: "bench".into(),
            secret_string: Some(SecretValue::from_str_value(&value)),
            ..Default::default()
        },
    ))
    .unwrap();
    let creations = per_second(dur, |_| {
        rt.block_on(store.create_version(
            "p",
            "bench",
            CreateVersion {
                secret_string: Some(SecretValue::from_str_value(&value)),
                ..Default::default()
            },
        ))
        .unwrap();
    });

    // Reads of SYSCURRENT (stage lookup, unwrap the data key, decrypt) against raw AES-256-GCM.
    let reads = per_second(dur, |_| {
        let v = rt
            .block_on(store.show_version_by_stage("p", "bench", SYSCURRENT))
            .unwrap();
        assert_eq!(v.value.len(), VALUE_LEN);
    });
    let key = [3u8; 32];
    let sealed = crypto::raw_encrypt_for_bench(&key, value.as_bytes()).unwrap();
    let raw_decrypts = per_second(dur, |_| {
        assert_eq!(
            crypto::raw_decrypt_for_bench(&key, &sealed),
            Some(VALUE_LEN)
        );
    });

    println!("embedded store benchmark ({secs}s per measurement, {VALUE_LEN}-byte values)");
    println!("  raw redb durable commits/s        {raw_commits:>12.0}");
    println!(
        "  COMMON version creations/s        {creations:>12.0}   ratio to raw commits: {:.3}",
        creations / raw_commits
    );
    println!("  raw AES-256-GCM decryptions/s     {raw_decrypts:>12.0}");
    println!(
        "  SYSCURRENT reads/s                {reads:>12.0}   ratio to raw decryption: {:.4}",
        reads / raw_decrypts
    );
}
