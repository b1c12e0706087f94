//! The operator on the `csms` backend while CSMS misbehaves: the operator process talks to an
//! in-process `serve` through a fault-injecting TCP proxy. Faults, one after another, each for longer than
//! a period: answers 500, 502 and 504; connections dropped before the request is forwarded; requests
//! forwarded and then the connection dropped before the answer (writes only: the write happened, the
//! caller cannot know, and must not write twice); and no answer at all (timeouts).
//!
//! Checked: while failing, each resource says so in its Ready condition; afterwards every resource rotates
//! again by itself; and in the store no two versions of a secret are closer than the period — an ambiguous
//! failure never produced a second new version for one due time.

use crate::support::csms as csms_support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use kube::api::Api;
use secret_rotator::api::SecretRotation;
use secret_rotator_store::{CreateSecret, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::operator::*;
use crate::support::*;

const PASS: u8 = 0;
const ANSWER_500: u8 = 1;
const ANSWER_502: u8 = 2;
const ANSWER_504: u8 = 3;
const DROP_BEFORE: u8 = 4;
const DROP_AFTER: u8 = 5;
const SILENT: u8 = 6;
const PERIOD_SECS: i64 = 6;
const NAMES: [&str; 3] = ["csms-a", "csms-b", "csms-c"];

/// Writes the upstream carried out whose answers the proxy then dropped.
static DROPPED_WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Reads one HTTP request (headers and a Content-Length body) from `c`.
async fn read_request(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = c.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = c.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

/// Serves one client connection, one request at a time, as the current mode says.
async fn proxy_connection(mut client: TcpStream, upstream: String, mode: Arc<AtomicU8>) {
    while let Some(req) = read_request(&mut client).await {
        let m = mode.load(Ordering::SeqCst);
        let status = match m {
            ANSWER_500 => Some("500 Internal Server Error"),
            ANSWER_502 => Some("502 Bad Gateway"),
            ANSWER_504 => Some("504 Gateway Timeout"),
            _ => None,
        };
        if let Some(status) = status {
            let body = r#"{"error":{"error_code":"CSMS.0500","error_msg":"injected fault"}}"#;
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if client.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let write = !req.starts_with(b"GET ");
        match m {
            DROP_BEFORE => return,
            SILENT => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
            _ => {}
        }
        // Forward on a fresh upstream connection (Connection: close), read the whole answer.
        let Ok(mut up) = TcpStream::connect(&upstream).await else {
            return;
        };
        let text = String::from_utf8_lossy(&req).into_owned();
        let req = text.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        if up.write_all(req.as_bytes()).await.is_err() {
            return;
        }
        let mut answer = Vec::new();
        if up.read_to_end(&mut answer).await.is_err() {
            return;
        }
        if m == DROP_AFTER && write {
            // The upstream did the write; the caller never hears of it. (Reads pass, so the caller can
            // find out what happened, as the client does before it retries.)
            DROPPED_WRITES.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if client.write_all(&answer).await.is_err() {
            return;
        }
        // The upstream closed; close the client side too (the answer said nothing about keep-alive).
        return;
    }
}

async fn start_proxy(upstream: String, mode: Arc<AtomicU8>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((c, _)) = l.accept().await {
            tokio::spawn(proxy_connection(c, upstream.clone(), mode.clone()));
        }
    });
    addr
}

async fn versions(c: &kube::Client, ns: &str) -> Vec<(String, Option<String>, String)> {
    let api: Api<SecretRotation> = Api::namespaced(c.clone(), ns);
    let mut out = Vec::new();
    for n in NAMES {
        let sr = api.get(n).await.unwrap();
        let st = sr.status.unwrap_or_default();
        let ready = st
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| format!("{} {} {}", c.status, c.reason, c.message))
            .unwrap_or_default();
        out.push((n.to_owned(), st.version_id, ready));
    }
    out
}

fn number(v: &Option<String>) -> u32 {
    v.as_deref()
        .and_then(|v| v.trim_start_matches('v').parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_operator_rides_out_csms_faults_without_a_second_version() {
    let srv = csms_support::start(None).await;
    let upstream = srv.url.trim_start_matches("http://").to_owned();
    let mode = Arc::new(AtomicU8::new(PASS));
    let proxy = start_proxy(upstream, mode.clone()).await;

    let c = client().await;
    install_crd(&c).await;
    let ns = TestNamespace::new(&c, "csms-faults").await;
    // The csms backend never creates secrets: they exist in CSMS first.
    let direct = csms_support::token_client(&srv.url, csms_support::fast_opts());
    for n in NAMES {
        direct
            .create_secret(
                csms_support::PROJECT,
                CreateSecret {
                    name: format!("{}.{n}", ns.name),
                    secret_string: Some(format!("initial-{n}-0123456789").into()),
                    ..CreateSecret::default()
                },
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("csms-auth.yaml");
    let hmac = dir.path().join("hmac.key");
    std::fs::write(&auth, format!("token: {}\n", csms_support::TOKEN)).unwrap();
    std::fs::write(&hmac, [7u8; 32]).unwrap();
    for f in [&auth, &hmac] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let metrics_addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let log = dir.path().join("operator.log");
    let child = Command::new(env!("CARGO_BIN_EXE_secret-rotator"))
        .args(["run", "--store", "csms", "--leader-election=false"])
        .args(["--csms-endpoint", &format!("http://{proxy}")])
        .arg("--csms-auth-file")
        .arg(&auth)
        .arg("--hmac-key-file")
        .arg(&hmac)
        .args(["--csms-project-id", csms_support::PROJECT])
        .args(["--csms-timeout-secs", "2", "--csms-max-attempts", "3"])
        .args(["--namespace", &ns.name, "--metrics-addr", &metrics_addr])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .env("RUST_LOG", "info,secret_rotator=debug")
        .env("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut op = Operator {
        child: Some(child),
        log,
        metrics_addr,
    };
    for n in NAMES {
        apply_sr(
            &c,
            &ns.name,
            &format!(
                "apiVersion: secretrotator.dev/v1alpha1\nkind: SecretRotation\nmetadata:\n  name: {n}\nspec:\n  rotation: {{period: {PERIOD_SECS}s, rotateOnCreate: false}}\n"
            ),
        )
        .await;
    }
    for n in NAMES {
        wait_ready(&c, &ns.name, n, "True", "Synced", 60).await;
    }

    for (fault, name) in [
        (ANSWER_500, "500"),
        (ANSWER_502, "502"),
        (ANSWER_504, "504"),
        (DROP_BEFORE, "dropped before forwarding"),
        (DROP_AFTER, "dropped after forwarding"),
        (SILENT, "no answer"),
    ] {
        mode.store(fault, Ordering::SeqCst);
        // Longer than a period: every resource falls due during the fault.
        let start = Instant::now();
        let mut said_so = false;
        while start.elapsed() < Duration::from_secs(PERIOD_SECS as u64 * 2 + 2) {
            let now = versions(&c, &ns.name).await;
            said_so |= now.iter().all(|(_, _, ready)| ready.starts_with("False"));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            said_so || fault == DROP_AFTER,
            "{name}: the Ready conditions never all said the store was failing: {:?}",
            versions(&c, &ns.name).await
        );
        mode.store(PASS, Ordering::SeqCst);
        let before: Vec<u32> = versions(&c, &ns.name)
            .await
            .iter()
            .map(|v| number(&v.1))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let now = versions(&c, &ns.name).await;
            let recovered = now
                .iter()
                .zip(&before)
                .all(|((_, v, ready), b)| number(v) > *b && ready.starts_with("True"));
            if recovered {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no recovery within 60 s: {now:?}\n{}",
                op.log_text()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!("{name}: failed visibly, then recovered");
    }
    assert!(op.alive(), "the operator exited:\n{}", op.log_text());
    op.stop();
    let dropped = DROPPED_WRITES.load(Ordering::SeqCst);
    assert!(
        dropped > 0,
        "no write was carried out and its answer dropped"
    );
    eprintln!("{dropped} writes carried out upstream with their answers dropped");

    // No due time produced two versions: consecutive versions are a whole period apart.
    for n in NAMES {
        let name = format!("{}.{n}", ns.name);
        let page = direct
            .list_versions(csms_support::PROJECT, &name, Some(100), None)
            .await
            .unwrap();
        let mut times: Vec<(String, i64)> = page
            .version_metadatas
            .iter()
            .map(|v| (v.id.clone(), v.create_time))
            .collect();
        times.sort_by_key(|t| t.1);
        assert!(times.len() >= 6, "{n}: only {} versions", times.len());
        for w in times.windows(2) {
            assert!(
                w[1].1 - w[0].1 >= PERIOD_SECS * 1000,
                "{n}: {} came {} ms after {}: a second version for one due time",
                w[1].0,
                w[1].1 - w[0].1,
                w[0].0
            );
        }
    }
}
