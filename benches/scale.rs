//! Scale benchmark: the operator on the embedded store against a real local control plane, for
//! N COMMON SecretRotations at once, measured in one run against a baseline client that makes only the
//! writes a rotation needs. Run it through `scripts/bench`, which starts the control plane with an audit
//! log, grants the operator the Helm chart's RBAC through impersonation and sets the variables below.
//!
//! Per N it prints:
//! - the time until all N are Ready, and the baseline: the same N × (apply the synced Secret, merge-patch
//!   the status) with the same concurrency, on SecretRotations that already exist;
//! - the operator's API requests by verb and resource, counted in the apiserver's audit log, and its writes
//!   per rotation (events and the leader Lease excluded, reported apart);
//! - the operator's requests during a steady-state window (target: no writes);
//! - the time to rotate all N after a rotate-now annotation on each, and the writes that took;
//! - the time for all N to rotate after falling due together on one cron tick, and the highest number of
//!   reconciles seen in flight (sampled from the operator's gauge every 20 ms);
//! - the operator's peak resident memory (VmHWM).
//!
//! Variables: SCALE_KUBECONFIG (admin), SCALE_OPERATOR_KUBECONFIG, SCALE_OPERATOR_USER (the identity the
//! operator's requests carry in the audit log), SCALE_AUDIT_LOG, SCALE_LEASE_NAMESPACE; optional SCALE_N
//! (default "100 1000"), SCALE_CONCURRENCY (default 4, the operator's default), SCALE_STEADY_SECS
//! (default 120), SCALE_SCHEDULED (default 1; 0 skips the cron phase, which waits for a minute boundary),
//! SCALE_BASELINES, SCALE_ROTATE_NOW, SCALE_RESTART, SCALE_FAILOVER (default 1 each; 0 skips that phase),
//! SCALE_OPERATOR_WRAPPER (a command the operator runs under, such as `heaptrack -o FILE`; the operator is
//! then that command's child, so the bench's memory and CPU figures are the wrapper's, and a killed wrapper
//! may leave the operator running).
//!
//! Then the restart: the operator stopped (SIGTERM) and started again on the same store with N Ready;
//! the time until it has reconciled each once, against a plain watch's list of the N; its requests (no
//! writes but the Lease) and rotations (none). And the leader failover: two replicas on the csms backend
//! against a `serve`, the leader killed (SIGKILL); the same counts for the standby.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use secret_rotator::api::{ANNOTATION_ROTATE_NOW, SecretRotation, SecretRotationStatus};
use secret_rotator::controller::status::{Verdict, set_conditions};
use secret_rotator::controller::synced::{data_hmac, desired_secret};
use secret_rotator::reasons::Reason;

mod cluster;
use cluster::*;

fn name(i: usize) -> String {
    format!("sr-{i:05}")
}

fn ready(sr: &SecretRotation) -> bool {
    sr.status.as_ref().is_some_and(|s| {
        s.version_id.is_some()
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until `pred` holds for `n` objects of the reflector store; polls the local cache only.
async fn wait_all(
    store: &Store<SecretRotation>,
    n: usize,
    what: &str,
    limit: Duration,
    pred: impl Fn(&SecretRotation) -> bool,
) {
    let start = Instant::now();
    loop {
        let done = store.state().iter().filter(|o| pred(o)).count();
        if done >= n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}: {done}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each SecretRotation's status version, by name.
fn versions(store: &Store<SecretRotation>) -> HashMap<String, String> {
    store
        .state()
        .iter()
        .map(|o| {
            let v = o.status.as_ref().and_then(|s| s.version_id.clone());
            (o.name_any(), v.unwrap_or_default())
        })
        .collect()
}

/// One audited request.
struct Request {
    verb: String,
    resource: String,
}

/// The audit log from an offset: the requests `user` made (each audit id once).
fn audit_since(path: &Path, from: u64, user: &str) -> (Vec<Request>, u64) {
    let mut f = std::fs::File::open(path).expect("opening the audit log");
    f.seek(SeekFrom::Start(from)).expect("seek");
    let mut text = String::new();
    f.read_to_string(&mut text).expect("reading the audit log");
    // Only whole lines; a partial last line is read next time.
    let end = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text[..end].lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let who = v
            .pointer("/impersonatedUser/username")
            .or_else(|| v.pointer("/user/username"))
            .and_then(|u| u.as_str())
            .unwrap_or_default();
        if who != user {
            continue;
        }
        let id = v["auditID"].as_str().unwrap_or_default().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let mut resource = v
            .pointer("/objectRef/resource")
            .and_then(|r| r.as_str())
            .unwrap_or("-")
            .to_owned();
        if let Some(sub) = v.pointer("/objectRef/subresource").and_then(|r| r.as_str()) {
            resource = format!("{resource}/{sub}");
        }
        out.push(Request {
            verb: v["verb"].as_str().unwrap_or_default().to_owned(),
            resource,
        });
    }
    (out, from + end as u64)
}

fn audit_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Writes excluding events and the Lease; events; Lease writes; everything by "verb resource".
struct Counts {
    writes: usize,
    events: usize,
    lease_writes: usize,
    by_kind: BTreeMap<String, usize>,
}

fn count(reqs: &[Request]) -> Counts {
    let mut c = Counts {
        writes: 0,
        events: 0,
        lease_writes: 0,
        by_kind: BTreeMap::new(),
    };
    for r in reqs {
        *c.by_kind
            .entry(format!("{} {}", r.verb, r.resource))
            .or_default() += 1;
        if !is_write(&r.verb) {
            continue;
        }
        if r.resource.starts_with("events") {
            c.events += 1;
        } else if r.resource.starts_with("leases") {
            c.lease_writes += 1;
        } else {
            c.writes += 1;
        }
    }
    c
}

fn show(c: &Counts) -> String {
    c.by_kind
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until the operator has made no request other than Lease renewals for `quiet`.
async fn settle(audit: &Path, from: u64, user: &str, quiet: Duration) {
    let mut last = usize::MAX;
    let mut since = Instant::now();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let (reqs, _) = audit_since(audit, from, user);
        let n = reqs
            .iter()
            .filter(|r| !r.resource.starts_with("leases"))
            .count();
        if n != last {
            last = n;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Samples the in-flight gauge until told to stop; returns the highest value seen.
fn sample_in_flight(
    metrics: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut max: f64 = 0.0;
        let client = reqwest::Client::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(r) = client.get(format!("http://{metrics}/metrics")).send().await
                && let Ok(text) = r.text().await
                && let Some(v) = text
                    .lines()
                    .find(|l| l.starts_with("secret_rotator_reconciles_in_flight "))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            {
                max = max.max(v);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        max
    })
}

/// The two writes a rotation needs, as the operator makes them: server-side apply of the synced Secret,
/// merge patch of the status.
async fn two_writes(srs: &Api<SecretRotation>, secrets: &Api<Secret>, sr: &SecretRotation) {
    let key = [7u8; 32];
    let value: String = (0..32)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    let mut data = BTreeMap::new();
    data.insert("api-key".to_owned(), ByteString(value.into_bytes()));
    let hmac = data_hmac(&key, &data);
    let spec = secret_rotator::validation::validate(sr).expect("baseline: a valid SecretRotation");
    let secret = desired_secret(sr, &spec.synced, data, "v2", "");
    secrets
        .patch(
            &sr.synced_secret_name(),
            &PatchParams::apply("bench-baseline").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("baseline: applying the Secret");
    let now = Time(jiff::Timestamp::now());
    let mut st = SecretRotationStatus {
        observed_generation: sr.metadata.generation,
        secret_name: Some(sr.store_secret_name()),
        version_id: Some("v2".into()),
        last_rotation_time: Some(now.clone()),
        next_rotation_time: Some(now.clone()),
        data_hmac: Some(hmac),
        ..SecretRotationStatus::default()
    };
    set_conditions(
        &mut st,
        &[],
        sr.metadata.generation,
        &now,
        Verdict::yes(
            Reason::Synced,
            format!("Secret {} holds v2", sr.synced_secret_name()),
        ),
        Verdict::idle(),
    );
    srs.patch_status(
        &sr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": st })),
    )
    .await
    .expect("baseline: writing the status");
}

/// The baseline client, `c` objects at a time. Without `with_create`: only the two writes, on
/// SecretRotations created beforehand (untimed). With it: each object is created, then given its two
/// writes — the creations the operator's run also contains.
/// Deletes a namespace and waits until it is gone: the namespace controller deletes its objects one
/// by one through the same apiserver, and a measurement running meanwhile would share it with that.
async fn delete_namespace(admin: &Client, ns: &str) {
    let api = Api::<Namespace>::all(admin.clone());
    let _ = api.delete(ns, &DeleteParams::default()).await;
    let start = Instant::now();
    while api.get_opt(ns).await.ok().flatten().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(1200),
            "namespace {ns} was not gone after 20 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The event the operator publishes for a new resource.
async fn event(admin: &Client, sr: &SecretRotation) {
    let ns = sr.namespace().unwrap_or_default();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    let now = jiff::Timestamp::now();
    let ev = k8s_openapi::api::events::v1::Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{}.{:x}", sr.name_any(), now.as_nanosecond())),
            namespace: Some(ns),
            ..Default::default()
        },
        event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            now,
        )),
        action: Some("Sync".into()),
        reason: Some("Synced".into()),
        note: Some("baseline".into()),
        type_: Some("Normal".into()),
        reporting_controller: Some("bench-baseline".into()),
        reporting_instance: Some("bench-baseline".into()),
        regarding: Some(kube::Resource::object_ref(sr, &())),
        ..Default::default()
    };
    events
        .create(&PostParams::default(), &ev)
        .await
        .expect("baseline: creating an event");
}

/// What a baseline client makes per object.
#[derive(Clone, Copy, PartialEq)]
enum Requests {
    /// Only the two writes, on SecretRotations created beforehand (untimed).
    Writes,
    /// The creation, then the two writes.
    CreateAndWrites,
    /// The operator's own set: the creation, the Secret GET, the two writes and an event.
    Same,
}

async fn baseline(admin: &Client, n: usize, c: usize, requests: Requests) -> Duration {
    let with_create = requests != Requests::Writes;
    let ns = new_namespace(admin, "bench-base").await;
    let srs: Api<SecretRotation> = Api::namespaced(admin.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let create = |i: usize| {
        let srs = srs.clone();
        async move {
            srs.create(&PostParams::default(), &sr_object(&name(i), "30d"))
                .await
                .expect("creating a baseline SecretRotation")
        }
    };
    let created: Arc<std::sync::Mutex<HashMap<usize, SecretRotation>>> = Arc::default();
    if !with_create {
        each(n, c, |i| {
            let created = created.clone();
            let made = create(i);
            async move {
                let sr = made.await;
                created.lock().expect("lock").insert(i, sr);
            }
        })
        .await;
    }
    let created = Arc::new(std::mem::take(&mut *created.lock().expect("lock")));
    let start = Instant::now();
    each(n, c, |i| {
        let srs = srs.clone();
        let secrets = secrets.clone();
        let created = created.clone();
        let made = with_create.then(|| create(i));
        async move {
            let sr = match made {
                Some(m) => m.await,
                None => created[&i].clone(),
            };
            if requests == Requests::Same {
                let _ = secrets
                    .get_opt(&sr.synced_secret_name())
                    .await
                    .expect("baseline: reading the Secret");
            }
            two_writes(&srs, &secrets, &sr).await;
            if requests == Requests::Same {
                event(admin, &sr).await;
            }
        }
    })
    .await;
    let took = start.elapsed();
    delete_namespace(admin, &ns).await;
    took
}

struct Row {
    n: usize,
    baseline: Duration,
    baseline_with_create: Duration,
    /// A client making the operator's own requests (creation, Secret GET, two writes, event).
    baseline_same: Duration,
    create: Duration,
    to_ready: Duration,
    initial: Counts,
    steady: Counts,
    steady_secs: u64,
    rotate_now: Duration,
    rotate_now_counts: Counts,
    scheduled: Option<(Duration, Counts, f64)>,
    hwm_kib: u64,
    rss_kib: u64,
    /// Successful rotations in each phase (creation, rotate-now, scheduled): N each when none repeats.
    rotation_counts: Vec<u64>,
    errors: f64,
    restart: Option<Restart>,
    /// The operator's CPU seconds until all were Ready, and over all phases before the restart.
    cpu_ready: f64,
    cpu_total: f64,
}

/// The bench's own watch of the SecretRotations (read locally to tell when all are Ready).
async fn bench_watch(
    srs: &Api<SecretRotation>,
) -> (Store<SecretRotation>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(srs.clone(), watcher::Config::default()))
        .applied_objects()
        .try_for_each(|_| futures::future::ready(Ok(())));
    let watch = tokio::spawn(async move {
        let _ = stream.await;
    });
    reader.wait_until_ready().await.expect("the bench's watch");
    (reader, watch)
}

/// Creates the N SecretRotations, `c` at a time.
async fn create_all(srs: &Api<SecretRotation>, n: usize, c: usize) {
    each(n, c, |i| {
        let srs = srs.clone();
        async move {
            srs.create(&PostParams::default(), &sr_object(&name(i), "30d"))
                .await
                .expect("creating a SecretRotation");
        }
    })
    .await;
}

/// Polls `op` until it has reconciled `n` times; returns when it held the Lease and when it was done,
/// both since `since`.
async fn until_reconciled(
    op: &Operator,
    n: usize,
    since: Instant,
    who: &str,
) -> (Option<Duration>, Duration) {
    let mut leader_after = None;
    loop {
        if leader_after.is_none() && op.metric("secret_rotator_leader").await == Some(1.0) {
            leader_after = Some(since.elapsed());
        }
        let done = op
            .metric("secret_rotator_reconciles_total")
            .await
            .unwrap_or(0.0);
        if done >= n as f64 {
            return (leader_after, since.elapsed());
        }
        assert!(
            since.elapsed() < Duration::from_secs(1800),
            "{who} reconciled {done} of {n} in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The leader failover: two replicas on the csms backend against a `serve`, the leader killed.
struct Failover {
    /// A plain watch's list of the N SecretRotations (the baseline).
    list: Duration,
    /// From the kill until the standby held the Lease (the Lease must expire first: it was not given up).
    lease_after: Duration,
    /// From the standby's leadership until it had reconciled N times.
    reverify: Duration,
    counts: Counts,
    rotations: u64,
    reconciles: f64,
    /// Until all were Ready on the first leader (csms through serve), for reference.
    to_ready: Duration,
}

/// A `secret-rotator serve` on an embedded store, for the csms backend.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SERVE_TOKEN: &str = "bench-serve-token-0123456789abcdef";

fn start_serve(dir: &Path) -> Serve {
    let key = dir.join("serve.key");
    write_private(
        &key,
        &secret_rotator_store::embedded::crypto::MasterKey::generate()
            .expect("key")
            .to_base64(),
    );
    let auth = dir.join("serve-auth.yaml");
    write_private(
        &auth,
        &format!("tokens:\n- token: {SERVE_TOKEN}\n  projects: [p]\n"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .arg("serve")
        .arg("--store-path")
        .arg(dir.join("serve.redb"))
        .arg("--master-key-file")
        .arg(&key)
        .arg("--auth-file")
        .arg(&auth)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).expect("serve log"))
        .spawn()
        .expect("starting serve");
    Serve {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn failover(n: usize, c: usize) -> Failover {
    use std::os::unix::fs::PermissionsExt;
    let admin = client_for(&env("SCALE_KUBECONFIG")).await;
    let op_kubeconfig = env("SCALE_OPERATOR_KUBECONFIG");
    let user = env("SCALE_OPERATOR_USER");
    let audit = PathBuf::from(env("SCALE_AUDIT_LOG"));
    let lease_ns = env("SCALE_LEASE_NAMESPACE");
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = start_serve(dir.path());
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if http.get(&serve.base).send().await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ns = new_namespace(&admin, "bench-failover").await;
    eprintln!("N={n} failover: creating {n} secrets in serve");
    let url = format!("{}/v1/p/secrets", serve.base);
    each(n, c, |i| {
        let (http, url, ns) = (http.clone(), url.clone(), ns.clone());
        async move {
            let r = http
                .post(&url)
                .header("X-Auth-Token", SERVE_TOKEN)
                // A SecretRotation's store secret is `<namespace>.<name>` unless it names one.
                .json(&serde_json::json!({"name": format!("{ns}.{}", name(i)), "secret_string": format!("initial-{i}-0123456789abcdef")}))
                .send()
                .await
                .expect("creating a secret in serve");
            assert!(r.status().is_success(), "serve: {}", r.status());
        }
    })
    .await;
    let auth = dir.path().join("csms-auth.yaml");
    let hmac = dir.path().join("hmac.key");
    std::fs::write(&auth, format!("token: {SERVE_TOKEN}\n")).expect("auth");
    std::fs::write(&hmac, rand::random::<[u8; 32]>()).expect("hmac key");
    for f in [&auth, &hmac] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let endpoint = serve.base.clone();
    let auth_s = auth.display().to_string();
    let hmac_s = hmac.display().to_string();
    let extra = [
        "--store",
        "csms",
        "--csms-endpoint",
        endpoint.as_str(),
        "--csms-auth-file",
        auth_s.as_str(),
        "--hmac-key-file",
        hmac_s.as_str(),
        "--csms-project-id",
        "p",
    ];
    let srs: Api<SecretRotation> = Api::namespaced(admin.clone(), &ns);
    let (reader, watch) = bench_watch(&srs).await;
    let first = Operator::start(&op_kubeconfig, &ns, &lease_ns, c, &extra);
    first.wait_ready().await;
    let second = Operator::start(&op_kubeconfig, &ns, &lease_ns, c, &extra);
    second.wait_ready().await;
    // Until one leads.
    let start = Instant::now();
    let (mut leader, standby) = loop {
        if first.metric("secret_rotator_leader").await == Some(1.0) {
            break (first, second);
        }
        if second.metric("secret_rotator_leader").await == Some(1.0) {
            break (second, first);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no replica took the Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("N={n} failover: creating {n} SecretRotations (csms backend)");
    let start = Instant::now();
    create_all(&srs, n, c).await;
    wait_all(
        &reader,
        n,
        "all Ready (csms)",
        Duration::from_secs(1800),
        ready,
    )
    .await;
    let to_ready = start.elapsed();
    settle(&audit, audit_len(&audit), &user, Duration::from_secs(3)).await;
    let list = list_time(srs.clone(), watcher::Config::default()).await;
    assert_eq!(
        standby
            .metric("secret_rotator_reconciles_total")
            .await
            .unwrap_or(0.0),
        0.0,
        "the standby reconciled before it led"
    );
    eprintln!("N={n} failover: all Ready in {to_ready:?}; killing the leader");
    let a0 = audit_len(&audit);
    let _ = leader.child.kill();
    let _ = leader.child.wait();
    let killed = Instant::now();
    let (lease_after, reverify) = until_reconciled(&standby, n, killed, "the standby").await;
    let lease_after = lease_after.unwrap_or(reverify);
    settle(&audit, a0, &user, Duration::from_secs(5)).await;
    let (reqs, _) = audit_since(&audit, a0, &user);
    let counts = count(&reqs);
    let rotations = standby.rotations().await;
    let reconciles = standby
        .metric("secret_rotator_reconciles_total")
        .await
        .unwrap_or(0.0);
    eprintln!(
        "N={n} failover: the standby led {lease_after:?} after the kill, all re-verified {reverify:?} after it; {reconciles} reconciles, {rotations} rotations; {}",
        show(&counts)
    );
    standby.stop();
    watch.abort();
    drop(serve);
    delete_namespace(&admin, &ns).await;
    Failover {
        list,
        lease_after,
        reverify: reverify - lease_after,
        counts,
        rotations,
        reconciles,
        to_ready,
    }
}

/// Which phases run (all by default; SCALE_BASELINES=0, SCALE_ROTATE_NOW=0, SCALE_SCHEDULED=0 and
/// SCALE_RESTART=0 leave one out, for a quick look or a memory profile).
struct Phases {
    baselines: bool,
    rotate_now: bool,
    scheduled: bool,
    restart: bool,
    failover: bool,
}

/// The restart with N Ready resources: the operator stopped (it gives up its Lease) and started again on the
/// same store.
struct Restart {
    /// From the new process's start until it has reconciled N times.
    reverify: Duration,
    /// From the new process's start until it held the Lease (part of `reverify`).
    leader_after: Option<Duration>,
    /// A plain watch's list of the N SecretRotations, from this bench (the baseline).
    list: Duration,
    /// The same list plus the synced Secrets' list, as the operator's two watches make them.
    list_both: Duration,
    /// Its requests from its start until it was quiet.
    counts: Counts,
    rotations: u64,
    reconciles: f64,
    hwm_kib: u64,
}

/// Times a watch's initial list (to its InitDone) of `api`'s objects matching `cfg`.
async fn list_time<K>(api: Api<K>, cfg: watcher::Config) -> Duration
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let start = Instant::now();
    let mut s = std::pin::pin!(watcher(api, cfg));
    while let Some(ev) = s.try_next().await.expect("the baseline watch") {
        if matches!(ev, watcher::Event::InitDone) {
            break;
        }
    }
    start.elapsed()
}

async fn run_n(n: usize, c: usize, steady_secs: u64, phases: &Phases) -> Row {
    let admin = client_for(&env("SCALE_KUBECONFIG")).await;
    let op_kubeconfig = env("SCALE_OPERATOR_KUBECONFIG");
    let user = env("SCALE_OPERATOR_USER");
    let audit = PathBuf::from(env("SCALE_AUDIT_LOG"));
    let lease_ns = env("SCALE_LEASE_NAMESPACE");

    let (baseline_with_create, baseline, baseline_same) = if phases.baselines {
        eprintln!("N={n}: baselines");
        (
            baseline(&admin, n, c, Requests::CreateAndWrites).await,
            baseline(&admin, n, c, Requests::Writes).await,
            baseline(&admin, n, c, Requests::Same).await,
        )
    } else {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    };

    let ns = new_namespace(&admin, "bench").await;
    let srs: Api<SecretRotation> = Api::namespaced(admin.clone(), &ns);
    let (reader, watch) = bench_watch(&srs).await;

    eprintln!("N={n}: starting the operator");
    let mut op = Operator::start(&op_kubeconfig, &ns, &lease_ns, c, &[]);
    op.wait_ready().await;

    // Creation: N at once (c at a time from this client), until all are Ready.
    eprintln!("N={n}: creating {n} SecretRotations");
    let r0 = op.rotations().await;
    let a0 = audit_len(&audit);
    let start = Instant::now();
    create_all(&srs, n, c).await;
    let create = start.elapsed();
    wait_all(&reader, n, "all Ready", Duration::from_secs(1800), ready).await;
    let to_ready = start.elapsed();
    let cpu_ready = op.cpu_secs();
    settle(&audit, a0, &user, Duration::from_secs(3)).await;
    let (reqs, a1) = audit_since(&audit, a0, &user);
    let initial = count(&reqs);
    let r1 = op.rotations().await;
    eprintln!(
        "N={n}: all Ready in {to_ready:?} (baseline {baseline:?}); {}",
        show(&initial)
    );

    // Steady state.
    eprintln!("N={n}: steady state for {steady_secs}s");
    tokio::time::sleep(Duration::from_secs(steady_secs)).await;
    let (reqs, _) = audit_since(&audit, a1, &user);
    let steady = count(&reqs);
    eprintln!("N={n}: steady state: {}", show(&steady));

    // rotate-now on each.
    let (rotate_now, rotate_now_counts, r2) = if phases.rotate_now {
        let before = versions(&reader);
        let tag = format!("bench-{}", rand::random::<u32>());
        let a2 = audit_len(&audit);
        let start = Instant::now();
        each(n, c, |i| {
            let srs = srs.clone();
            let tag = tag.clone();
            async move {
                srs.patch(
                    &name(i),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({
                        "metadata": {"annotations": {ANNOTATION_ROTATE_NOW: tag}}
                    })),
                )
                .await
                .expect("annotating rotate-now");
            }
        })
        .await;
        wait_all(
            &reader,
            n,
            "rotate-now on all",
            Duration::from_secs(1800),
            |o| {
                ready(o)
                    && o.status.as_ref().is_some_and(|s| {
                        s.last_rotate_now.as_deref() == Some(tag.as_str())
                            && s.version_id.as_deref()
                                != before.get(&o.name_any()).map(String::as_str)
                    })
            },
        )
        .await;
        let rotate_now = start.elapsed();
        settle(&audit, a2, &user, Duration::from_secs(3)).await;
        let (reqs, _) = audit_since(&audit, a2, &user);
        let rotate_now_counts = count(&reqs);
        let r2 = op.rotations().await;
        eprintln!(
            "N={n}: rotate-now on all in {rotate_now:?}; {}",
            show(&rotate_now_counts)
        );
        (rotate_now, rotate_now_counts, r2)
    } else {
        (Duration::ZERO, count(&[]), r1)
    };

    let mut rotation_counts = vec![r1 - r0, r2 - r1];
    // All fall due together on one cron tick.
    let scheduled = if phases.scheduled {
        let now = jiff::Timestamp::now();
        // A minute boundary far enough away for the spec changes and the operator's status writes to land
        // first: 60 s plus 25 ms per resource (about 250 s at N = 10,000).
        let margin = 60 + (n as i64) / 40;
        let tick_secs = ((now.as_second() + margin) / 60 + 1) * 60;
        let tick = jiff::Timestamp::from_second(tick_secs).expect("a timestamp");
        let dt = tick.to_zoned(jiff::tz::TimeZone::UTC);
        let schedule = format!("{} {} * * *", dt.minute(), dt.hour());
        eprintln!("N={n}: scheduling all at {tick} ({schedule})");
        let before = versions(&reader);
        each(n, c, |i| {
            let srs = srs.clone();
            let schedule = schedule.clone();
            async move {
                srs.patch(
                    &name(i),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({
                        "spec": {"rotation": {"period": null, "schedule": schedule}}
                    })),
                )
                .await
                .expect("setting the schedule");
            }
        })
        .await;
        wait_all(
            &reader,
            n,
            "the schedule observed",
            Duration::from_secs(600),
            |o| {
                o.status
                    .as_ref()
                    .is_some_and(|s| s.observed_generation == o.metadata.generation)
            },
        )
        .await;
        let wait = tick.duration_since(jiff::Timestamp::now());
        assert!(
            !wait.is_negative(),
            "the spec changes took past the tick; nothing measured"
        );
        tokio::time::sleep(wait.unsigned_abs()).await;
        let a3 = audit_len(&audit);
        let start = Instant::now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = sample_in_flight(op.metrics.clone(), stop.clone());
        wait_all(
            &reader,
            n,
            "the scheduled rotation of all",
            Duration::from_secs(1800),
            |o| {
                ready(o)
                    && o.status.as_ref().and_then(|s| s.version_id.as_deref())
                        != before.get(&o.name_any()).map(String::as_str)
            },
        )
        .await;
        let took = start.elapsed();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let max_in_flight = sampler.await.unwrap_or(0.0);
        settle(&audit, a3, &user, Duration::from_secs(3)).await;
        let (reqs, _) = audit_since(&audit, a3, &user);
        let counts = count(&reqs);
        let r3 = op.rotations().await;
        rotation_counts.push(r3 - r2);
        eprintln!(
            "N={n}: scheduled rotation of all in {took:?}, at most {max_in_flight} in flight; {}",
            show(&counts)
        );
        Some((took, counts, max_in_flight))
    } else {
        None
    };

    let errors = op
        .metric("secret_rotator_reconcile_errors_total")
        .await
        .unwrap_or(0.0);
    let (hwm_kib, rss_kib) = op.memory();
    let cpu_total = op.cpu_secs();

    // Restart with N Ready: the time to re-verify each (N reconciles) against a plain watch's list.
    let restart = if phases.restart {
        settle(&audit, audit_len(&audit), &user, Duration::from_secs(3)).await;
        let list = list_time(srs.clone(), watcher::Config::default()).await;
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
        let list_both_start = Instant::now();
        futures::join!(
            list_time(srs.clone(), watcher::Config::default()),
            list_time(
                secrets,
                watcher::Config::default().labels(&format!(
                    "{}={}",
                    secret_rotator::controller::synced::LABEL_MANAGED_BY,
                    secret_rotator::controller::synced::MANAGED_BY
                ))
            )
        );
        let list_both = list_both_start.elapsed();
        eprintln!("N={n}: restarting the operator (lists take {list:?}, both {list_both:?})");
        let a4 = audit_len(&audit);
        op.terminate();
        let start = Instant::now();
        op = op.restart(&op_kubeconfig, &ns, &lease_ns, c, &[]);
        let (leader_after, reverify) =
            until_reconciled(&op, n, start, "the restarted operator").await;
        settle(&audit, a4, &user, Duration::from_secs(5)).await;
        let (reqs, _) = audit_since(&audit, a4, &user);
        let counts = count(&reqs);
        let rotations = op.rotations().await;
        let reconciles = op
            .metric("secret_rotator_reconciles_total")
            .await
            .unwrap_or(0.0);
        let (hwm, _) = op.memory();
        eprintln!(
            "N={n}: restarted: {reconciles} reconciles, all done {reverify:?} after start (leader after {leader_after:?}); {rotations} rotations; {}",
            show(&counts)
        );
        Some(Restart {
            reverify,
            leader_after,
            list,
            list_both,
            counts,
            rotations,
            reconciles,
            hwm_kib: hwm,
        })
    } else {
        None
    };
    let log = std::fs::read_to_string(op.log_path()).unwrap_or_default();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN")).collect();
    eprintln!(
        "N={n}: reconcile errors {errors}, warnings in the log {}; rotations per phase {rotation_counts:?}",
        warnings.len()
    );
    for w in warnings.iter().take(5) {
        eprintln!("  {w}");
    }
    if let Ok(keep) = std::env::var("SCALE_KEEP_LOG") {
        let _ = std::fs::copy(op.log_path(), format!("{keep}-{n}.log"));
    }
    op.stop();
    watch.abort();
    delete_namespace(&admin, &ns).await;
    Row {
        n,
        baseline,
        baseline_with_create,
        baseline_same,
        create,
        to_ready,
        initial,
        steady,
        steady_secs,
        rotate_now,
        rotate_now_counts,
        scheduled,
        hwm_kib,
        rss_kib,
        rotation_counts,
        errors,
        restart,
        cpu_ready,
        cpu_total,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; any other argument is a filter this benchmark does not take.
    let ns: Vec<usize> = env_or("SCALE_N", "100 1000")
        .split_whitespace()
        .map(|s| s.parse().expect("SCALE_N: numbers"))
        .collect();
    let c: usize = env_or("SCALE_CONCURRENCY", "4")
        .parse()
        .expect("SCALE_CONCURRENCY");
    let steady: u64 = env_or("SCALE_STEADY_SECS", "120")
        .parse()
        .expect("SCALE_STEADY_SECS");
    let on = |v: &str| env_or(v, "1") != "0";
    let phases = Phases {
        baselines: on("SCALE_BASELINES"),
        rotate_now: on("SCALE_ROTATE_NOW"),
        scheduled: on("SCALE_SCHEDULED"),
        restart: on("SCALE_RESTART"),
        failover: on("SCALE_FAILOVER"),
    };
    let mut rows = Vec::new();
    let mut failovers = Vec::new();
    for n in ns {
        rows.push(run_n(n, c, steady, &phases).await);
        if phases.failover {
            failovers.push((n, failover(n, c).await));
        }
    }
    println!("\nconcurrency {c} (operator --concurrency and the clients)\n");
    println!(
        "| N | baseline: 2N writes | create burst | all Ready | ratio | baseline: N creates + 2N writes | ratio | baseline: the operator's requests | ratio | writes/rotation | events | steady writes ({steady}s) | rotate-now all | writes/rotation | scheduled all | max in flight | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (sched, max) = match &r.scheduled {
            Some((d, cnt, m)) => (
                format!("{} ({:.2} w/r)", secs(*d), cnt.writes as f64 / r.n as f64),
                format!("{m}"),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {} | {} | {:.2}× | {} | {:.2}× | {} | {:.2}× | {:.2} | {} | {} (+{} lease) | {} | {:.2} | {} | {} | {:.1} MiB (now {:.1}) |",
            r.n,
            secs(r.baseline),
            secs(r.create),
            secs(r.to_ready),
            r.to_ready.as_secs_f64() / r.baseline.as_secs_f64(),
            secs(r.baseline_with_create),
            r.to_ready.as_secs_f64() / r.baseline_with_create.as_secs_f64(),
            secs(r.baseline_same),
            r.to_ready.as_secs_f64() / r.baseline_same.as_secs_f64(),
            r.initial.writes as f64 / r.n as f64,
            r.initial.events,
            r.steady.writes,
            r.steady.lease_writes,
            secs(r.rotate_now),
            r.rotate_now_counts.writes as f64 / r.n as f64,
            sched,
            max,
            r.hwm_kib as f64 / 1024.0,
            r.rss_kib as f64 / 1024.0,
        );
    }
    println!();
    for r in &rows {
        println!(
            "N={} requests while becoming Ready: {}",
            r.n,
            show(&r.initial)
        );
        println!("N={} requests in steady state: {}", r.n, show(&r.steady));
        println!(
            "N={} requests for rotate-now: {}",
            r.n,
            show(&r.rotate_now_counts)
        );
        if let Some((_, c, _)) = &r.scheduled {
            println!("N={} requests for the scheduled rotation: {}", r.n, show(c));
        }
        println!(
            "N={} operator CPU: {:.1} s until all Ready ({:.2} ms per resource), {:.1} s over all phases",
            r.n,
            r.cpu_ready,
            r.cpu_ready * 1000.0 / r.n as f64,
            r.cpu_total
        );
        println!(
            "N={} successful rotations per phase (creation, rotate-now, scheduled): {:?}; reconcile errors: {}",
            r.n, r.rotation_counts, r.errors
        );
        let _ = r.steady_secs;
    }
    if rows.iter().any(|r| r.restart.is_some()) {
        println!(
            "\nrestart with N Ready (the operator stopped and started again on the same store)\n"
        );
        println!(
            "| N | list of N SecretRotations | both lists (SecretRotations, synced Secrets) | all re-verified (N reconciles) | ratio to the list | ratio to both lists | Lease held after | reconciles | rotations | writes (Lease aside) | peak RSS |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let Some(x) = &r.restart else { continue };
            println!(
                "| {} | {} | {} | {} | {:.2}× | {:.2}× | {} | {} | {} | {} | {:.1} MiB |",
                r.n,
                secs(x.list),
                secs(x.list_both),
                secs(x.reverify),
                x.reverify.as_secs_f64() / x.list.as_secs_f64(),
                x.reverify.as_secs_f64() / x.list_both.as_secs_f64(),
                x.leader_after.map(secs).unwrap_or_else(|| "-".into()),
                x.reconciles,
                x.rotations,
                x.counts.writes,
                x.hwm_kib as f64 / 1024.0,
            );
        }
        for r in &rows {
            if let Some(x) = &r.restart {
                println!("N={} requests after the restart: {}", r.n, show(&x.counts));
            }
        }
    }
    if !failovers.is_empty() {
        println!(
            "\nleader failover (two replicas, csms backend against serve; the leader killed with SIGKILL)\n"
        );
        println!(
            "| N | all Ready on the first leader | list of N SecretRotations | Lease taken after the kill | then all re-verified (N reconciles) | ratio to the list | reconciles | rotations | writes (Lease aside) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for (n, f) in &failovers {
            println!(
                "| {n} | {} | {} | {} | {} | {:.2}× | {} | {} | {} |",
                secs(f.to_ready),
                secs(f.list),
                secs(f.lease_after),
                secs(f.reverify),
                f.reverify.as_secs_f64() / f.list.as_secs_f64(),
                f.reconciles,
                f.rotations,
                f.counts.writes
            );
        }
        for (n, f) in &failovers {
            println!("N={n} requests after the failover: {}", show(&f.counts));
        }
    }
}
