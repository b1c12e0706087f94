//! What the cluster benchmarks share: the operator as a process on a fresh embedded store, clients, a
//! namespace, SecretRotations, bounded concurrency. Set up by scripts/bench and scripts/load.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use secret_rotator::api::SecretRotation;

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this benchmark through scripts/bench, which sets up the control plane")
    })
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub async fn client_for(kubeconfig: &str) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("reading the kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

pub fn sr_object(name: &str, period: &str) -> SecretRotation {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "secretrotator.dev/v1alpha1",
        "kind": "SecretRotation",
        "metadata": {"name": name},
        "spec": {
            "secretType": "COMMON",
            "rotation": {"period": period},
            "password": {"length": 32, "excludePunctuation": true},
            "target": {"name": name, "template": {"api-key": "{{ value }}"}}
        }
    }))
    .expect("a valid SecretRotation")
}

/// Runs `f` on 0..n with at most `c` at once.
pub async fn each<F, Fut>(n: usize, c: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    futures::stream::iter(0..n)
        .map(f)
        .buffer_unordered(c)
        .collect::<Vec<()>>()
        .await;
}

/// Writes a file only its owner may read (the operator and serve refuse others).
pub fn write_private(path: &std::path::Path, contents: &str) {
    std::fs::write(path, contents).expect("writing a private file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Kills the process when dropped (a bench that panics must not leave an operator running).
pub struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// The operator process on a fresh embedded store.
pub struct Operator {
    /// Kills it if the bench ends early.
    pub guard: KillOnDrop,
    /// The process.
    pub child: Child,
    /// Address of /metrics.
    pub metrics: String,
    /// Its store, key and log.
    pub dir: tempfile::TempDir,
}

impl Operator {
    pub fn start(
        kubeconfig: &str,
        namespace: &str,
        lease_ns: &str,
        concurrency: usize,
        extra: &[&str],
    ) -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        write_private(
            &dir.path().join("master.key"),
            &secret_rotator_store::embedded::crypto::MasterKey::generate()
                .expect("key")
                .to_base64(),
        );
        Operator::start_in(dir, kubeconfig, namespace, lease_ns, concurrency, extra)
    }

    /// Starts the operator on the store (and key) in `dir`. SCALE_OPERATOR_WRAPPER, when set, is a command
    /// line the operator runs under (for example `heaptrack -o /tmp/op`).
    pub fn start_in(
        dir: tempfile::TempDir,
        kubeconfig: &str,
        namespace: &str,
        lease_ns: &str,
        concurrency: usize,
        extra: &[&str],
    ) -> Operator {
        let key = dir.path().join("master.key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let metrics = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("operator.log"))
            .expect("log");
        let wrapper = env_or("SCALE_OPERATOR_WRAPPER", "");
        let mut words = wrapper.split_whitespace();
        let mut cmd = match words.next() {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(words).arg(env!("CARGO_BIN_EXE_secret-rotator"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_secret-rotator")),
        };
        let child = cmd
            .arg("run")
            .arg("--store-path")
            .arg(dir.path().join("store.redb"))
            .arg("--master-key-file")
            .arg(&key)
            .args(["--namespace", namespace])
            .args(["--leader-election-namespace", lease_ns])
            .args(["--lease-name", &format!("bench-{namespace}")])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--metrics-addr", &metrics])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", env_or("SCALE_RUST_LOG", "info"))
            .env("SECRET_ROTATOR_MIN_ROTATION_PERIOD", "1s")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting the operator");
        Operator {
            guard: KillOnDrop(child.id()),
            child,
            metrics,
            dir,
        }
    }

    /// Stops the operator (SIGTERM: it gives up its Lease) and starts it again on the same store.
    pub fn restart(
        mut self,
        kubeconfig: &str,
        namespace: &str,
        lease_ns: &str,
        concurrency: usize,
        extra: &[&str],
    ) -> Operator {
        self.terminate();
        let dir = self.dir;
        Operator::start_in(dir, kubeconfig, namespace, lease_ns, concurrency, extra)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("operator.log")
    }

    pub async fn get(&self, path: &str) -> Option<String> {
        let r = reqwest::get(format!("http://{}{path}", self.metrics))
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }

    pub async fn wait_ready(&self) {
        let start = Instant::now();
        while self.get("/readyz").await.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the operator did not become ready; log: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.get("/metrics").await?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    /// Successful rotations so far (every reason).
    pub async fn rotations(&self) -> u64 {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with("secret_rotator_rotations_total{") && l.contains("result=\"success\"")
            })
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// CPU seconds the process has used (user + system).
    pub fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command's closing parenthesis: state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // Clock ticks of 1/100 s (USER_HZ on Linux).
        (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
    }

    /// (VmHWM, VmRSS) in KiB.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGTERM, then waits (30 s at most) for the process to end.
    pub fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..300 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn new_namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("creating a namespace");
    name
}
