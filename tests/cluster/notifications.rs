//! Outbound notifications end to end: a real `secret-rotator run` on the local control plane
//! posts CloudEvents to sinks that this test process serves (axum). The sinks record every request; the
//! test checks each one's signature with an HMAC of its own, each event's attributes and data, that no
//! synced value appears in any body, the retries of a sink that fails at first, and the delivered, failed
//! and dropped counters of the operator's /metrics.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::operator::*;
use crate::support::{TestNamespace, client, control_plane, install_crd};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use sha2::Sha256;

/// The signing key; its file ends with a newline, which the operator drops.
const KEY: &str = "notification-test-key-0123456789abcdef";

/// How a sink answers.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// 202 to everything.
    Accept,
    /// 503 to the first n requests, then 200.
    FailFirst(usize),
    /// Holds every request until released, then answers 500.
    HoldThenFail,
}

/// One request as the sink saw it.
#[derive(Clone, Debug)]
struct Seen {
    content_type: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    at: Instant,
    /// The status answered; none while held.
    answered: Option<u16>,
}

impl Seen {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "a body that is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn delivered(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

struct SinkState {
    mode: Mode,
    seen: Mutex<Vec<Seen>>,
    released: tokio::sync::watch::Receiver<bool>,
}

/// A sink served by this process.
struct Sink {
    url: String,
    state: Arc<SinkState>,
    release: tokio::sync::watch::Sender<bool>,
}

async fn receive(State(s): State<Arc<SinkState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
            .unwrap_or_default()
    };
    let index = {
        let mut seen = s.seen.lock().unwrap();
        seen.push(Seen {
            content_type: header("content-type"),
            timestamp: header("x-secret-rotator-timestamp"),
            signature: header("x-secret-rotator-signature"),
            body: body.to_vec(),
            at: Instant::now(),
            answered: None,
        });
        seen.len() - 1
    };
    let status = match s.mode {
        Mode::Accept => StatusCode::ACCEPTED,
        Mode::FailFirst(n) if index < n => StatusCode::SERVICE_UNAVAILABLE,
        Mode::FailFirst(_) => StatusCode::OK,
        Mode::HoldThenFail => {
            let mut released = s.released.clone();
            let _ = released.wait_for(|r| *r).await;
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    s.seen.lock().unwrap()[index].answered = Some(status.as_u16());
    status
}

impl Sink {
    async fn start(mode: Mode) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (release, released) = tokio::sync::watch::channel(false);
        let state = Arc::new(SinkState {
            mode,
            seen: Mutex::new(Vec::new()),
            released,
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sink {
            url: format!("http://{addr}/hook"),
            state,
            release,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// The events the sink accepted (2xx), in order.
    fn delivered(&self) -> Vec<Value> {
        self.seen()
            .iter()
            .filter(|s| s.delivered())
            .map(Seen::event)
            .collect()
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

/// Checks a request's signature with an HMAC computed here, and its timestamp against the time it came.
fn verify(s: &Seen) {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(s.timestamp.as_bytes());
    mac.update(b".");
    mac.update(&s.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        s.signature,
        expected,
        "the signature does not verify for {}",
        String::from_utf8_lossy(&s.body)
    );
    let ts: i64 = s.timestamp.parse().expect("the timestamp is Unix seconds");
    let now = jiff::Timestamp::now().as_second();
    let age = now - ts - s.at.elapsed().as_secs() as i64;
    assert!(
        age.abs() <= 5,
        "the timestamp {ts} is {age} s off the time the request came"
    );
    assert_eq!(s.content_type, "application/cloudevents+json");
}

fn key_file(dir: &std::path::Path, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(format!("notify-{:08x}.key", rand::random::<u32>()));
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A counter's value in a scrape.
fn counter(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in the scrape:\n{scrape}"))
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

/// (delivered, failed, dropped), once /metrics answers.
async fn counters(op: &Operator) -> (u64, u64, u64) {
    let url = format!("http://{}/metrics", op.metrics_addr);
    let m = eventually(30, "/metrics", || async {
        reqwest::get(&url).await.ok()?.text().await.ok()
    })
    .await;
    (
        counter(&m, "secret_rotator_notifications_delivered_total"),
        counter(&m, "secret_rotator_notifications_failed_total"),
        counter(&m, "secret_rotator_notifications_dropped_total"),
    )
}

fn sr(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {name}\nspec:\n  rotation: {{period: 30d}}\n{extra}"
    )
}

/// The events of one SecretRotation and one type, in order.
fn of<'a>(events: &'a [Value], ns: &str, name: &str, type_: &str) -> Vec<&'a Value> {
    let source = format!("/secret-rotator/{ns}/{name}");
    events
        .iter()
        .filter(|e| e["source"] == source.as_str() && e["type"] == type_)
        .collect()
}

/// The attributes every event has.
fn check_attributes(e: &Value, ns: &str) {
    assert_eq!(e["specversion"], "1.0", "{e}");
    assert_eq!(e["datacontenttype"], "application/json", "{e}");
    let id = e["id"].as_str().expect("an id");
    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("the id {id} is not a UUID"));
    let time: jiff::Timestamp = e["time"]
        .as_str()
        .expect("a time")
        .parse()
        .expect("the time is RFC 3339");
    let age = jiff::Timestamp::now().duration_since(time);
    assert!(
        age >= jiff::SignedDuration::from_secs(-5) && age < jiff::SignedDuration::from_mins(10),
        "{e}"
    );
    assert!(
        e["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("dev.secretrotator.")),
        "{e}"
    );
    assert!(e["subject"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    let data = &e["data"];
    assert_eq!(data["namespace"], ns, "{e}");
    let name = data["name"].as_str().expect("data.name");
    assert_eq!(e["source"], format!("/secret-rotator/{ns}/{name}"), "{e}");
    assert_eq!(data["storeSecret"], format!("{ns}.{name}"), "{e}");
    for key in ["reason", "message"] {
        assert!(data[key].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    }
}

/// The values of a synced Secret long enough to search for.
fn values(s: &Secret) -> Vec<String> {
    s.data
        .as_ref()
        .map(|d| {
            d.values()
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .filter(|v| v.len() >= 16)
                .collect()
        })
        .unwrap_or_default()
}

/// Rotated (the first value, then a rotate-now), RestartTriggered, SecretRejected and RotationFailed from
/// the threshold on, to two sinks, one of which fails its first two requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_restarts_rejections_and_failures_are_notified_signed_and_value_free() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "notify").await;
    let n = ns.name.as_str();
    let flaky = Sink::start(Mode::FailFirst(2)).await;
    let steady = Sink::start(Mode::Accept).await;

    // A workload to restart, an immutable Secret of another type in the way of one target (its owner opted
    // in, so the apiserver's refusal is what stops the operator), and a database nobody listens for.
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "example.invalid/app:1"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(c.clone(), n)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.clone(), n);
    for s in [
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "immutable-taken", "annotations": {"secretrotator.dev/adopt": "true"}},
               "type": "kubernetes.io/basic-auth", "immutable": true,
               "stringData": {"username": "u", "password": "p"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-admin"},
               "stringData": {"username": "dba", "password": "admin-pw-not-used"}}),
    ] {
        let s: Secret = serde_json::from_value(s).unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }

    let files = OperatorFiles::new();
    let key = key_file(files.dir.path(), &format!("{KEY}\n"), 0o600);
    let args = [
        "--leader-election=false".to_owned(),
        format!("--notify-url={}", flaky.url),
        format!("--notify-url={}", steady.url),
        format!("--notify-hmac-key-file={}", key.display()),
        "--notify-failure-threshold=2".to_owned(),
        "--notify-max-attempts=4".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(&control_plane().kubeconfig, &files, n, &args, &[]);

    // The first value, then a rotation that restarts the workload.
    apply_sr(
        &c,
        n,
        &sr(
            "api",
            "  restartTargets:\n  - {kind: Deployment, name: web}\n",
        ),
    )
    .await;
    wait_version(&c, n, "api", "v1", 30).await;
    let v1 = eventually(20, "the Secret at v1", || async {
        let s = get_secret(&c, n, "api").await?;
        Some(values(&s)).filter(|v| !v.is_empty())
    })
    .await;
    annotate(&c, n, "api", "secretrotator.dev/rotate-now", "notify").await;
    wait_version(&c, n, "api", "v2", 30).await;
    let v2 = eventually(20, "the Secret at v2", || async {
        let s = get_secret(&c, n, "api").await?;
        Some(values(&s)).filter(|v| !v.is_empty() && *v != v1)
    })
    .await;

    // A synced Secret the apiserver refuses, and a database rotation that keeps failing.
    apply_sr(
        &c,
        n,
        &sr("rejected", "  target: {name: immutable-taken}\n"),
    )
    .await;
    wait_ready(&c, n, "rejected", "False", "SecretRejected", 30).await;
    crate::support::db::local_server(&c, n, "pg-1", "postgresql", 1, Some("db-admin")).await;
    apply_sr(
        &c,
        n,
        "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: db\nspec:\n  secretType: RDS-FG\n  rotation: {period: 30d}\n  database:\n    serverRef: {name: pg-1, kind: DatabaseServer}\n    username: app_a\n",
    )
    .await;
    // Failed attempts come 10 s, then 20 s apart (±20 %): the third within a minute.
    let events = eventually(
        90,
        "rotation_failed for the 2nd and 3rd failures",
        || async {
            let events = steady.delivered();
            let attempts: Vec<u64> = of(&events, n, "db", "dev.secretrotator.rotation_failed")
                .iter()
                .filter_map(|e| e["data"]["failedAttempts"].as_u64())
                .collect();
            (attempts.contains(&2) && attempts.contains(&3)).then_some(events)
        },
    )
    .await;

    // Every event: the attributes, and its data.
    for e in &events {
        check_attributes(e, n);
    }
    let rotated = of(&events, n, "api", "dev.secretrotator.rotated");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    for (e, v) in rotated.iter().zip(["v1", "v2"]) {
        assert_eq!(e["subject"], v, "{e}");
        let data = &e["data"];
        assert_eq!(data["versionId"], v, "{e}");
        assert_eq!(data["secret"], "api", "{e}");
        assert_eq!(data["reason"], "Rotated", "{e}");
        assert!(
            data.get("taskId").is_none(),
            "a COMMON secret has no task: {e}"
        );
        assert!(
            data["message"].as_str().unwrap().contains(v),
            "the message names the version: {e}"
        );
    }
    let restarts = of(&events, n, "api", "dev.secretrotator.restart_triggered");
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    let r = restarts[0];
    assert_eq!(r["subject"], "Deployment/web", "{r}");
    assert_eq!(
        r["data"]["workload"],
        json!({"kind": "Deployment", "name": "web"})
    );
    assert_eq!(r["data"]["versionId"], "v2", "{r}");
    assert_eq!(r["data"]["reason"], "RestartTriggered", "{r}");
    let rejected = of(&events, n, "rejected", "dev.secretrotator.secret_rejected");
    assert_eq!(
        rejected.len(),
        1,
        "announced once, not at every retry: {rejected:?}"
    );
    let r = rejected[0];
    assert_eq!(r["subject"], "immutable-taken", "{r}");
    assert_eq!(r["data"]["secret"], "immutable-taken", "{r}");
    assert_eq!(r["data"]["reason"], "SecretRejected", "{r}");
    assert!(
        r["data"]["message"]
            .as_str()
            .unwrap()
            .contains("immutable-taken"),
        "{r}"
    );
    assert!(
        of(&events, n, "rejected", "dev.secretrotator.rotated").is_empty(),
        "no Rotated for a value that never reached its Secret"
    );
    let failed = of(&events, n, "db", "dev.secretrotator.rotation_failed");
    for e in &failed {
        let data = &e["data"];
        assert!(
            data["failedAttempts"].as_u64().unwrap() >= 2,
            "the first failure is under the threshold: {e}"
        );
        assert_eq!(e["subject"], format!("{n}.db"), "{e}");
        assert_eq!(data["reason"], "RotationFailed", "{e}");
        assert!(
            data["errorCode"].as_str().is_some_and(|c| !c.is_empty()),
            "{e}"
        );
        assert!(
            data["message"]
                .as_str()
                .unwrap()
                .starts_with(data["errorCode"].as_str().unwrap()),
            "{e}"
        );
    }
    let mut counts: Vec<u64> = failed
        .iter()
        .map(|e| e["data"]["failedAttempts"].as_u64().unwrap())
        .collect();
    counts.sort();
    counts.dedup();
    assert_eq!(
        counts.len(),
        failed.len(),
        "one event per failed attempt: {failed:?}"
    );

    // The same events reached the sink that failed at first: its first two answers were 503, and the
    // event they refused came again (the same id, signed afresh) after a backoff.
    let ids = |events: &[Value]| {
        let mut ids: Vec<String> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let (flaky_seen, steady_seen) = eventually(30, "both sinks have the same events", || async {
        let (f, s) = (flaky.seen(), steady.seen());
        let delivered = |seen: &[Seen]| {
            seen.iter()
                .filter(|x| x.delivered())
                .map(Seen::event)
                .collect::<Vec<_>>()
        };
        (ids(&delivered(&f)) == ids(&delivered(&s))).then_some((f, s))
    })
    .await;
    let all_ids = ids(&steady.delivered());
    let mut unique = all_ids.clone();
    unique.dedup();
    assert_eq!(unique, all_ids, "every event has its own id");
    let answers: Vec<Option<u16>> = flaky_seen.iter().take(3).map(|s| s.answered).collect();
    assert_eq!(answers, [Some(503), Some(503), Some(200)]);
    let first = flaky_seen[0].event();
    for retry in &flaky_seen[1..3] {
        assert_eq!(retry.event(), first, "a retry carries the same event");
    }
    assert_eq!(first["type"], "dev.secretrotator.rotated");
    assert_eq!(first["subject"], "v1");
    let gap = flaky_seen[1].at.duration_since(flaky_seen[0].at);
    assert!(
        gap >= Duration::from_millis(700),
        "the retry came {gap:?} after the failure"
    );
    let gap2 = flaky_seen[2].at.duration_since(flaky_seen[1].at);
    assert!(gap2 > gap, "the backoff grows: {gap:?}, then {gap2:?}");

    // Every request of either sink: signed with the key, fresh, and without any value of the Secret.
    let bodies: Vec<String> = flaky_seen
        .iter()
        .chain(&steady_seen)
        .map(|s| {
            verify(s);
            String::from_utf8_lossy(&s.body).into_owned()
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    for v in v1.iter().chain(&v2) {
        for body in &bodies {
            assert!(!body.contains(v.as_str()), "a value in {body}");
            assert!(!body.contains(&b64.encode(v)), "a value (base64) in {body}");
        }
    }

    // The README's verifier accepts a request the operator sent, once, and refuses it with another body.
    readme_verifier_checks(&steady_seen[0], files.dir.path());

    // The counters: every accepted request delivered once, nothing failed or dropped.
    let accepted = |s: &Sink| s.seen().iter().filter(|x| x.delivered()).count() as u64;
    eventually(20, "delivered counts every accepted request", || async {
        let (delivered, failed, dropped) = counters(&op).await;
        assert_eq!((failed, dropped), (0, 0));
        (delivered == accepted(&flaky) + accepted(&steady)).then_some(())
    })
    .await;
}

/// Runs the README's Python `verify` on a recorded request: accepted, then a repeat, then refused with a body
/// that is not the one signed.
fn readme_verifier_checks(seen: &Seen, dir: &std::path::Path) {
    let readme = std::fs::read_to_string(crate::support::repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- notify-verify:start -->")
        .expect("the README marks its verifier");
    let end = readme
        .find("<!-- notify-verify:end -->")
        .expect("the README's verifier ends");
    let code: String = readme[start..end]
        .lines()
        .skip_while(|l| !l.starts_with("```python"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(code.contains("def verify"), "{code}");
    let driver = r#"
import sys
key = sys.argv[1].encode()
headers = {"x-secret-rotator-timestamp": sys.argv[2], "x-secret-rotator-signature": sys.argv[3]}
body = open(sys.argv[4], "rb").read()
print("ACCEPTED", verify(key, headers, body)["id"])
print("REPEAT", verify(key, headers, body))
try:
    verify(key, headers, body + b" ")
    print("TAMPERED ACCEPTED")
except ValueError as e:
    print("TAMPERED REFUSED", e)
"#;
    let body = dir.join("body.json");
    std::fs::write(&body, &seen.body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("{code}{driver}"))
        .args([KEY, &seen.timestamp, &seen.signature])
        .arg(&body)
        .output()
        .expect("python3 is needed to run the README's verifier (Debian package python3)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = seen.event()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            format!("ACCEPTED {id}").as_str(),
            "REPEAT None",
            "TAMPERED REFUSED bad signature"
        ],
        "{text}"
    );
}

/// A sink that holds its first request: the next event waits in the queue of one, the one after is
/// dropped; once the sink answers 500, both are retried and given up after two attempts each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_a_failing_sink_is_given_up_after_the_attempts() {
    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "notify-full").await;
    let n = ns.name.as_str();
    let sink = Sink::start(Mode::HoldThenFail).await;
    let files = OperatorFiles::new();
    let key = key_file(files.dir.path(), KEY, 0o600);
    // The sink from a URLs file, as the chart mounts it from a Secret.
    let urls = files.dir.path().join("urls");
    std::fs::write(&urls, format!("# the one sink\n{}\n", sink.url)).unwrap();
    std::fs::set_permissions(&urls, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let args = [
        "--leader-election=false".to_owned(),
        format!("--notify-urls-file={}", urls.display()),
        format!("--notify-hmac-key-file={}", key.display()),
        "--notify-queue-size=1".to_owned(),
        "--notify-max-attempts=2".to_owned(),
        "--notify-timeout-secs=120".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let op = Operator::start(&control_plane().kubeconfig, &files, n, &args, &[]);
    assert_eq!(counters(&op).await, (0, 0, 0));

    apply_sr(&c, n, &sr("a", "")).await;
    eventually(30, "the first event held by the sink", || async {
        (sink.seen().len() == 1).then_some(())
    })
    .await;
    // Two more events while the first is in flight: one waits in the queue, one is dropped.
    apply_sr(&c, n, &sr("b", "")).await;
    apply_sr(&c, n, &sr("c", "")).await;
    for name in ["b", "c"] {
        wait_version(&c, n, name, "v1", 30).await;
    }
    eventually(20, "one event dropped", || async {
        (counters(&op).await == (0, 0, 1)).then_some(())
    })
    .await;
    // The rotations were not slowed down by the sink: both happened while it held the first request.
    assert_eq!(sink.seen().len(), 1, "nothing else was sent meanwhile");
    assert_eq!(sink.seen()[0].answered, None, "still held");

    sink.release();
    eventually(30, "both events given up", || async {
        (counters(&op).await == (0, 2, 1)).then_some(())
    })
    .await;
    let seen = sink.seen();
    assert_eq!(seen.len(), 4, "two attempts for each of two events");
    for s in &seen {
        verify(s);
        assert_eq!(s.answered, Some(500));
        check_attributes(&s.event(), n);
    }
    let (first, second) = (seen[0].event(), seen[2].event());
    assert_eq!(seen[1].event(), first, "the held event was attempted again");
    assert_eq!(seen[3].event(), second);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(first["data"]["name"], "a");
    assert!(
        ["b", "c"].contains(&second["data"]["name"].as_str().unwrap()),
        "{second}"
    );
    assert!(seen[3].at.duration_since(seen[2].at) >= Duration::from_millis(700));
}

/// Without a usable key the operator does not start: no key, a key others can read, a short key.
#[tokio::test]
async fn notifications_without_a_usable_key_stop_the_start() {
    let files = OperatorFiles::new();
    let open = key_file(files.dir.path(), KEY, 0o644);
    let short = key_file(files.dir.path(), "short\n", 0o600);
    let cases = [
        (None, "--notify-hmac-key-file is required"),
        (Some(open), "readable by group or others"),
        (Some(short), "at least 16"),
    ];
    for (key, expect) in cases {
        let mut args = vec![
            "--leader-election=false".to_owned(),
            "--notify-url=http://127.0.0.1:9/hook".to_owned(),
        ];
        if let Some(k) = &key {
            args.push(format!("--notify-hmac-key-file={}", k.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut op = Operator::start(
            std::path::Path::new("/nonexistent/kubeconfig"),
            &files,
            "default",
            &args,
            &[],
        );
        wait_exit(&mut op, 20).await;
        let log = op.log_text();
        assert!(log.contains(expect), "expected {expect:?} in:\n{log}");
    }
}

/// The chart mounts the sinks' URLs and the key from a Secret (never arguments: a webhook URL often carries
/// a token), in a Deployment the apiserver takes; the removed per-URL values are refused.
#[tokio::test]
async fn the_chart_passes_sinks_and_mounts_the_key() {
    use crate::support::helm::{chart, helm, helm_ok, kubectl_stdin};
    let c = client().await;
    let ns = TestNamespace::new(&c, "notify-chart").await;
    let kc = PathBuf::from("/nonexistent/kubeconfig");
    let render = helm_ok(
        &kc,
        &[
            "template",
            "rel",
            &chart(),
            "--namespace",
            &ns.name,
            "--show-only",
            "templates/deployment.yaml",
            "--set",
            "notifications.secret=notify,notifications.failureThreshold=5,notifications.caConfigMap=hooks-ca",
        ],
    );
    let applied = kubectl_stdin(
        &control_plane().kubeconfig,
        &["apply", "--dry-run=server", "-f", "-"],
        &render,
    );
    assert!(
        applied.contains("deployment.apps/rel-secret-rotator"),
        "{applied}"
    );
    let d: Value = serde_saphyr::from_str(&render).unwrap();
    let pod = &d["spec"]["template"]["spec"];
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "--notify-urls-file=/etc/secret-rotator/notify/urls",
        "--notify-hmac-key-file=/etc/secret-rotator/notify/hmac.key",
        "--notify-failure-threshold=5",
        "--notify-max-attempts=6",
        "--notify-queue-size=1024",
        "--notify-ca-file=/etc/secret-rotator/notify-ca/ca.crt",
    ] {
        assert!(args.contains(&want), "{want} missing from {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--notify-url=")),
        "a URL on the command line: {args:?}"
    );
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "notify-key")
        .expect("the key volume");
    assert_eq!(volume["secret"]["secretName"], "notify");
    assert_eq!(
        volume["secret"]["items"],
        json!([{"key": "urls", "path": "urls"}, {"key": "hmac.key", "path": "hmac.key"}])
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "notify-key" && m["mountPath"] == "/etc/secret-rotator/notify"),
        "{mounts:?}"
    );
    // Off by default.
    let plain = helm_ok(&kc, &["template", "rel", &chart()]);
    assert!(!plain.contains("notify"), "{plain}");
    for bad in [
        "notifications.sinks={https://hooks.example.com/in}",
        "notifications.secret=Not_A_Name",
    ] {
        let out = helm(&kc, &["template", "rel", &chart(), "--set", bad]);
        assert!(!out.status.success(), "{bad} was accepted");
    }
}
