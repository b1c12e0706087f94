//! Load run: N SecretRotations (default 300) with a period of 10 seconds, for 5 minutes, on a
//! real local control plane. Run it through `scripts/bench --load`.
//!
//! Checked and printed:
//! - every rotation came within one period of its due time: from the store's own version history, each
//!   version's creation is compared with the previous one's creation plus the period;
//! - no SecretRotation is left overdue by more than a period at the end;
//! - no reconcile errors;
//! - the operator's resident memory, sampled every 5 s: the mean of the first and of the last minute.
//!
//! Variables as for the scale benchmark (see benches/scale.rs), plus LOAD_N (300), LOAD_PERIOD_SECS (10),
//! LOAD_MINUTES (5), LOAD_HISTORY (the operator's --history-limit, 1000: every version of the run kept).

use std::time::{Duration, Instant};

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use secret_rotator::api::SecretRotation;
use secret_rotator_store::Store;
use secret_rotator_store::embedded::crypto::MasterKey;
use secret_rotator_store::embedded::{EmbeddedOptions, EmbeddedStore};

mod cluster;
use cluster::*;

async fn all_ready(client: &Client, ns: &str, n: usize) {
    let api: Api<SecretRotation> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    loop {
        let list = api.list(&Default::default()).await.expect("listing");
        let ready = list
            .items
            .iter()
            .filter(|o| {
                o.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if ready >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {ready}/{n} Ready after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("LOAD_N", "300").parse().expect("LOAD_N");
    let period: i64 = env_or("LOAD_PERIOD_SECS", "10")
        .parse()
        .expect("LOAD_PERIOD_SECS");
    let minutes: u64 = env_or("LOAD_MINUTES", "5").parse().expect("LOAD_MINUTES");
    let history: usize = env_or("LOAD_HISTORY", "1000")
        .parse()
        .expect("LOAD_HISTORY");
    let admin = client_for(&env("SCALE_KUBECONFIG")).await;
    let ns = new_namespace(&admin, "load").await;
    let op = Operator::start(
        &env("SCALE_OPERATOR_KUBECONFIG"),
        &ns,
        &env("SCALE_LEASE_NAMESPACE"),
        4,
        // The default keeps every version of the run, so that every rotation is checked; with the
        // operator's own default (10) only the last ones are, and the store stops growing.
        &["--history-limit", &history.to_string()],
    );
    op.wait_ready().await;
    let srs: Api<SecretRotation> = Api::namespaced(admin.clone(), &ns);
    each(n, 8, |i| {
        let srs = srs.clone();
        async move {
            srs.create(
                &PostParams::default(),
                &sr_object(&format!("load-{i:04}"), &format!("{period}s")),
            )
            .await
            .expect("creating a SecretRotation");
        }
    })
    .await;
    all_ready(&admin, &ns, n).await;
    eprintln!("{n} Ready; running for {minutes} minutes");

    let start = Instant::now();
    let run = Duration::from_secs(minutes * 60);
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while start.elapsed() < run {
        samples.push((start.elapsed(), op.memory().1));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let end_ms = jiff::Timestamp::now().as_millisecond();
    let errors = op
        .metric("secret_rotator_reconcile_errors_total")
        .await
        .unwrap_or(0.0);
    let rotations = op.rotations().await;
    let names: Vec<String> = srs
        .list(&Default::default())
        .await
        .expect("listing")
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    let store_path = op.dir.path().join("store.redb");
    let key = MasterKey::from_file(&op.dir.path().join("master.key")).expect("the key");
    let log = std::fs::read_to_string(op.log_path()).unwrap_or_default();
    // Stop the operator (SIGTERM, as the kubelet would), then read the store it leaves behind.
    let mut op = op;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &op.child.id().to_string()])
        .status();
    // (op.stop() below then finds the process gone.)
    let stopping = Instant::now();
    while !matches!(op.child.try_wait(), Ok(Some(_))) {
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the operator did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kept = tempfile::tempdir().expect("tempdir");
    let copy = kept.path().join("store.redb");
    std::fs::copy(&store_path, &copy).expect("copying the store");
    op.stop();
    let store = EmbeddedStore::open(
        &copy,
        key,
        EmbeddedOptions {
            history_limit: history.max(1000),
            ..EmbeddedOptions::default()
        },
    )
    .expect("opening the store");

    let period_ms = period * 1000;
    let mut late: Vec<i64> = Vec::new();
    let mut worst = (0i64, String::new());
    let mut overdue = 0;
    let mut checked = 0;
    for name in &names {
        let store_name = format!("{ns}.{name}");
        let page = store
            .list_versions("default", &store_name, Some(1000), None)
            .await
            .expect("versions");
        let mut times: Vec<i64> = page
            .version_metadatas
            .iter()
            .map(|v| v.create_time)
            .collect();
        times.sort();
        for w in times.windows(2) {
            let lateness = w[1] - (w[0] + period_ms);
            late.push(lateness);
            checked += 1;
            if lateness > worst.0 {
                worst = (lateness, store_name.clone());
            }
        }
        if let Some(last) = times.last()
            && end_ms - (last + period_ms) > period_ms
        {
            overdue += 1;
        }
    }
    late.sort();
    let pct = |p: f64| late[((late.len() as f64 - 1.0) * p) as usize];
    let early = late.iter().filter(|l| **l < 0).count();
    let beyond = late.iter().filter(|l| **l >= period_ms).count();
    let mean = |from: Duration, to: Duration| {
        let v: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, m)| *m)
            .collect();
        v.iter().sum::<u64>() as f64 / v.len().max(1) as f64 / 1024.0
    };
    let first = mean(Duration::ZERO, Duration::from_secs(60));
    let last = mean(run.saturating_sub(Duration::from_secs(60)), run);
    let warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && !l.contains("Server cert bypassed"))
        .count();
    println!(
        "\nload: {n} SecretRotations, period {period}s, {minutes} min, operator --concurrency 4\n"
    );
    println!(
        "| rotations checked | lateness p50 | p99 | max | early | ≥ one period late | overdue at end | reconcile errors | RSS first minute | RSS last minute |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {checked} | {} ms | {} ms | {} ms ({}) | {early} | {beyond} | {overdue} | {errors} | {first:.1} MiB | {last:.1} MiB |",
        pct(0.5),
        pct(0.99),
        worst.0,
        worst.1
    );
    let per_minute: Vec<String> = (0..minutes)
        .map(|m| {
            format!(
                "{:.1}",
                mean(
                    Duration::from_secs(m * 60),
                    Duration::from_secs((m + 1) * 60)
                )
            )
        })
        .collect();
    println!("RSS by minute (MiB): {}", per_minute.join(", "));
    println!(
        "successful rotations counted by the operator: {rotations}; warnings in its log: {warnings}"
    );
    assert_eq!(early, 0, "a rotation came before its due time");
    assert_eq!(
        beyond, 0,
        "a rotation came a period or more after its due time"
    );
    assert_eq!(overdue, 0, "resources were left overdue");
    assert_eq!(errors, 0.0, "reconcile errors");
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(admin)
        .delete(&ns, &Default::default())
        .await;
}
