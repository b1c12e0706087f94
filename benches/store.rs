//! Embedded store benchmark, measured in one run so the ratios mean something on a noisy machine:
//! - durable COMMON version creations per second, against the engine's raw durable commit rate (one
//!   small insert per committed redb transaction, same file system);
//! - SYSCURRENT reads per second, against raw AES-256-GCM decryption of a value of the same size.
//!
//! - per call of what a reconcile asks the store, at 100, 10,000 and 100,000 secrets (half COMMON with
//!   three versions, half database secrets rotated twice, so with versions and tasks): the time should
//!   not grow with the store; and the time to open the store at each size.
//!
//! `cargo bench --bench store` (BENCH_SECONDS: time per rate measurement, default 3; STORE_SIZES: the
//! sizes, default "100 10000 100000"; STORE_CALLS: calls per per-call figure, default 2000;
//! STORE_CACHE_MIB: the engine's page cache, default the operator's default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{Database, TableDefinition};
use secret_rotator_core::secret_value::SecretValue;
use secret_rotator_store::changer::{MemoryChanger, PasswordChanger};
use secret_rotator_store::embedded::crypto::{self, MasterKey};
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};
use secret_rotator_store::*;

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

fn db_secret(name: &str) -> CreateSecret {
    CreateSecret {
        name: name.to_owned(),
        secret_type: Some("RDS-FG".to_owned()),
        secret_string: Some(
            DatabaseCredential {
                username: format!("u_{name}"),
                password: "initial-password-0123456789".to_owned(),
            }
            .to_value(),
        ),
        rotation_config: Some(r#"{"InstanceId":"i1","SecretSubType":"SingleUser"}"#.to_owned()),
        ..CreateSecret::default()
    }
}

fn common_secret(name: &str) -> CreateSecret {
    CreateSecret {
        name: name.to_owned(),
        secret_string: Some(SecretValue::from_str_value(&"c".repeat(VALUE_LEN))),
        ..CreateSecret::default()
    }
}

fn new_value() -> CreateVersion {
    CreateVersion {
        secret_string: Some(SecretValue::from_str_value(&"v".repeat(VALUE_LEN))),
        ..CreateVersion::default()
    }
}

/// Secret `i` of a store of `n`: even ones COMMON, odd ones database secrets.
fn secret_name(i: usize) -> String {
    format!("s{i:07}")
}

/// Fills a store with `n` secrets (commits not synced: a bulk load), then closes it.
async fn fill(path: &std::path::Path, key: &MasterKey, n: usize, target: &Arc<MemoryChanger>) {
    let store = EmbeddedStore::open(
        path,
        MasterKey::from_base64(&key.to_base64(), "bench").unwrap(),
        EmbeddedOptions {
            bulk_load: true,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    for i in 0..n {
        let name = secret_name(i);
        if i % 2 == 0 {
            store
                .create_secret("p", common_secret(&name))
                .await
                .unwrap();
            for _ in 0..2 {
                store.create_version("p", &name, new_value()).await.unwrap();
            }
        } else {
            store.create_secret("p", db_secret(&name)).await.unwrap();
            target.set(
                &format!("u_{name}"),
                SecretValue::from_str_value("initial-password-0123456789"),
            );
            for _ in 0..2 {
                store.rotate("p", &name, with_target(target)).await.unwrap();
            }
        }
    }
}

fn with_target(t: &Arc<MemoryChanger>) -> RotateOptions {
    RotateOptions {
        changer: Some(t.clone() as Arc<dyn PasswordChanger>),
        policy: None,
    }
}

/// Mean microseconds per call of `f` over `calls` calls, on secrets spread over the store.
async fn per_call<F, Fut>(calls: usize, n: usize, mut f: F) -> f64
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // A fixed stride through the names: every part of the key space, no two calls on one secret in a row.
    let stride = (n / 7).max(1) | 1;
    let start = Instant::now();
    for k in 0..calls {
        f(secret_name((k * stride + 1) % n)).await;
    }
    start.elapsed().as_secs_f64() * 1e6 / calls as f64
}

struct SizeRow {
    n: usize,
    file_mib: f64,
    fill: Duration,
    open: Duration,
    calls: Vec<(&'static str, f64)>,
}

async fn at_size(n: usize, calls: usize) -> SizeRow {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let key = MasterKey::generate().unwrap();
    let target = Arc::new(MemoryChanger::default());
    let t = Instant::now();
    fill(&path, &key, n, &target).await;
    let fill_time = t.elapsed();
    // The bulk load's pages to the disk now, not while the calls are measured.
    let _ = std::process::Command::new("sync").status();
    let file_mib = std::fs::metadata(&path).unwrap().len() as f64 / 1048576.0;
    // The open the operator makes: the whole file is checked (every record decoded, MACs verified).
    let t = Instant::now();
    let cache_bytes = std::env::var("STORE_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map(|m| m << 20)
        .unwrap_or(EmbeddedOptions::default().cache_bytes);
    let store = EmbeddedStore::open(
        &path,
        MasterKey::from_base64(&key.to_base64(), "bench").unwrap(),
        EmbeddedOptions {
            cache_bytes,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let open = t.elapsed();
    let mut out = Vec::new();
    let s = &store;
    out.push((
        "show_secret",
        per_call(calls, n, |name| async move {
            s.show_secret("p", &name).await.unwrap();
        })
        .await,
    ));
    out.push((
        "show_version_by_stage SYSCURRENT",
        per_call(calls, n, |name| async move {
            s.show_version_by_stage("p", &name, SYSCURRENT)
                .await
                .unwrap();
        })
        .await,
    ));
    out.push((
        "list_versions (20)",
        per_call(calls, n, |name| async move {
            s.list_versions("p", &name, Some(20), None).await.unwrap();
        })
        .await,
    ));
    out.push((
        "list_tasks (one secret, SUCCESS, 1)",
        per_call(calls, n, |name| async move {
            s.list_tasks(
                "p",
                TaskFilter {
                    secret_name: Some(name),
                    status: Some(TaskStatus::Success),
                    limit: Some(1),
                    ..TaskFilter::default()
                },
            )
            .await
            .unwrap();
        })
        .await,
    ));
    // Durable writes: fewer calls (each waits for the disk).
    let writes = (calls / 10).max(20);
    out.push((
        "create_version (durable)",
        per_call(writes, n, |name| async move {
            // Even names are the COMMON secrets.
            let i: usize = name[1..].parse().unwrap();
            let name = secret_name(i - i % 2);
            s.create_version("p", &name, new_value()).await.unwrap();
        })
        .await,
    ));
    let tg = &target;
    out.push((
        "rotate, database secret (durable)",
        per_call(writes, n, |name| async move {
            // Odd names are the database secrets.
            let i: usize = name[1..].parse().unwrap();
            let name = secret_name(if i % 2 == 1 { i } else { (i + 1) % n });
            s.rotate("p", &name, with_target(tg)).await.unwrap();
        })
        .await,
    ));
    let mut k = 0usize;
    let t = Instant::now();
    for _ in 0..writes {
        k += 1;
        s.create_secret("p", common_secret(&format!("new{k:07}")))
            .await
            .unwrap();
    }
    out.push((
        "create_secret (durable)",
        t.elapsed().as_secs_f64() * 1e6 / writes as f64,
    ));
    SizeRow {
        n,
        file_mib,
        fill: fill_time,
        open,
        calls: out,
    }
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

    let sizes: Vec<usize> = std::env::var("STORE_SIZES")
        .unwrap_or_else(|_| "100 10000 100000".into())
        .split_whitespace()
        .map(|s| s.parse().expect("STORE_SIZES: numbers"))
        .collect();
    let calls: usize = std::env::var("STORE_CALLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let rows: Vec<SizeRow> = sizes
        .iter()
        .map(|&n| {
            eprintln!("filling a store of {n} secrets");
            rt.block_on(at_size(n, calls))
        })
        .collect();
    println!(
        "\nper call, microseconds (reads: {calls} calls; durable writes: {} calls)\n",
        (calls / 10).max(20)
    );
    let head: Vec<String> = rows.iter().map(|r| format!("{} secrets", r.n)).collect();
    println!("| call | {} | ratio largest / smallest |", head.join(" | "));
    println!("|---|{}---|", "---|".repeat(rows.len()));
    for (i, (name, _)) in rows[0].calls.iter().enumerate() {
        let v: Vec<f64> = rows.iter().map(|r| r.calls[i].1).collect();
        let cells: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
        println!(
            "| {name} | {} | {:.2} |",
            cells.join(" | "),
            v[v.len() - 1] / v[0]
        );
    }
    println!("\n| secrets | file | bulk fill | open (every record checked) | open per secret |");
    println!("|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} MiB | {:.1} s | {:.3} s | {:.1} µs |",
            r.n,
            r.file_mib,
            r.fill.as_secs_f64(),
            r.open.as_secs_f64(),
            r.open.as_secs_f64() * 1e6 / r.n as f64
        );
    }
}
