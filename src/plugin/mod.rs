//! `kubectl srot`: the command line for people on call. It runs as the user, with the user's kubeconfig
//! and RBAC (never the operator's), and works only through the SecretRotation resource: it reads the
//! status and sets annotations or `spec.suspend`; the operator does the work.
//!
//! Installed as `kubectl-srot` on the PATH: the `secret-rotator` binary run under that name (a copy or a
//! symbolic link) is the plugin.

pub mod table;

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::api::{ANNOTATION_ROLLBACK_TO, ANNOTATION_ROTATE_NOW, RollbackResult, SecretRotation};
use table::{history_table, ready, status_row, status_table};

/// The name the plugin is called by.
pub const PLUGIN_NAME: &str = "kubectl-srot";

/// kubectl srot: look at and act on SecretRotations with your own kubeconfig and RBAC.
#[derive(Parser, Debug)]
#[command(name = "kubectl srot", version, about, long_about = None)]
pub struct Cli {
    /// Namespace (default: the kubeconfig context's, else "default").
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Kubeconfig context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    /// Kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true)]
    kubeconfig: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A table of SecretRotations: store secret, version, user, rotations, Ready, failed attempts.
    Status {
        /// Only this one.
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Ask for a rotation now (the rotate-now annotation).
    Rotate {
        /// The SecretRotation.
        name: String,
        /// Follow the status until the new version is Ready; exit 1 when the rotation fails.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (s, m or h).
        #[arg(long, default_value = "5m", value_parser = duration)]
        timeout: Duration,
    },
    /// Stop scheduled and requested rotations (spec.suspend: true).
    Suspend {
        /// The SecretRotation.
        name: String,
    },
    /// Resume rotations (spec.suspend: false).
    Resume {
        /// The SecretRotation.
        name: String,
    },
    /// The versions the store holds, with their stages and times, the current task and the last rollback.
    History {
        /// The SecretRotation.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
    },
    /// Move SYSCURRENT back to an earlier version the store holds (the operator sets that version's
    /// password on the database through the rotation's steps).
    Rollback {
        /// The SecretRotation.
        name: String,
        /// The version, for example v3 (`kubectl srot history` lists them).
        #[arg(long = "to")]
        to: String,
        /// Follow the status until the operator has handled it; exit 1 when refused or failed.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits (s, m or h).
        #[arg(long, default_value = "5m", value_parser = duration)]
        timeout: Duration,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Table,
    Json,
    Yaml,
}

/// Why a command failed, and its exit code: 1 when the operator reported a failure or the wait timed out,
/// 2 when the request was refused before anything was asked.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The operator reported a failure, or the wait ended.
    #[error("{0}")]
    Failed(String),
    /// Refused before asking.
    #[error("{0}")]
    Refused(String),
    /// The apiserver or the kubeconfig.
    #[error("{action}: {source}")]
    Kube {
        /// What was being done.
        action: String,
        /// The error.
        source: kube::Error,
    },
    /// Reading the kubeconfig.
    #[error("reading the kubeconfig: {0}")]
    Config(String),
}

impl PluginError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            PluginError::Refused(_) => 2,
            _ => 1,
        }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    secret_rotator_core::planner::duration::parse_duration(s).map_err(|e| e.to_string())
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> PluginError {
    let action = action.into();
    move |source| PluginError::Kube { action, source }
}

/// Whether the process was started under the plugin's name.
pub fn called_as_plugin(argv0: &str) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == PLUGIN_NAME || n.starts_with("kubectl-srot."))
}

async fn client(cli: &Cli) -> Result<(Client, String), PluginError> {
    let options = KubeConfigOptions {
        context: cli.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &cli.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| PluginError::Config(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| PluginError::Config(e.to_string()))?
        }
        None => match Config::from_kubeconfig(&options).await {
            Ok(c) => c,
            Err(_) if cli.context.is_none() => Config::infer()
                .await
                .map_err(|e| PluginError::Config(e.to_string()))?,
            Err(e) => return Err(PluginError::Config(e.to_string())),
        },
    };
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(kube_err("building the client"))?;
    Ok((client, namespace))
}

/// Runs the plugin; what it prints goes to stdout, progress to stderr.
pub async fn run(cli: Cli) -> Result<(), PluginError> {
    let (client, ns) = client(&cli).await?;
    let api: Api<SecretRotation> = Api::namespaced(client.clone(), &ns);
    match cli.command {
        Command::Status {
            name,
            all_namespaces,
            output,
        } => {
            let items = match (&name, all_namespaces) {
                (Some(n), _) => vec![
                    api.get(n)
                        .await
                        .map_err(kube_err(format!("reading {ns}/{n}")))?,
                ],
                (None, true) => {
                    Api::<SecretRotation>::all(client)
                        .list(&ListParams::default())
                        .await
                        .map_err(kube_err("listing SecretRotations"))?
                        .items
                }
                (None, false) => {
                    api.list(&ListParams::default())
                        .await
                        .map_err(kube_err(format!("listing SecretRotations in {ns}")))?
                        .items
                }
            };
            let rows: Vec<_> = items.iter().map(status_row).collect();
            print_rows(&rows, output, |r| status_table(r, all_namespaces))
        }
        Command::Rotate {
            name,
            wait,
            timeout,
        } => rotate(&api, &ns, &name, wait, timeout).await,
        Command::Suspend { name } => set_suspend(&api, &ns, &name, true).await,
        Command::Resume { name } => set_suspend(&api, &ns, &name, false).await,
        Command::History { name, output } => {
            let sr = api
                .get(&name)
                .await
                .map_err(kube_err(format!("reading {ns}/{name}")))?;
            match output {
                Output::Table => {
                    print!("{}", history_table(&sr));
                    Ok(())
                }
                other => {
                    let st = sr.status.unwrap_or_default();
                    let h = serde_json::json!({
                        "versions": st.versions,
                        "currentVersion": st.version_id,
                        "rotationTaskId": st.rotation_task_id,
                        "lastRollback": st.last_rollback,
                    });
                    print_value(&h, other)
                }
            }
        }
        Command::Rollback {
            name,
            to,
            wait,
            timeout,
        } => rollback(&api, &ns, &name, &to, wait, timeout).await,
    }
}

fn print_value(v: &serde_json::Value, output: Output) -> Result<(), PluginError> {
    let text = match output {
        Output::Yaml => {
            serde_saphyr::to_string(v).map_err(|e| PluginError::Failed(e.to_string()))?
        }
        _ => {
            serde_json::to_string_pretty(v).map_err(|e| PluginError::Failed(e.to_string()))? + "\n"
        }
    };
    print!("{text}");
    Ok(())
}

fn print_rows<T: serde::Serialize>(
    rows: &[T],
    output: Output,
    table: impl Fn(&[T]) -> String,
) -> Result<(), PluginError> {
    match output {
        Output::Table => {
            print!("{}", table(rows));
            Ok(())
        }
        other => {
            let v = serde_json::to_value(rows).map_err(|e| PluginError::Failed(e.to_string()))?;
            print_value(&v, other)
        }
    }
}

async fn annotate(
    api: &Api<SecretRotation>,
    ns: &str,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), PluginError> {
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("annotating {ns}/{name}")))?;
    Ok(())
}

async fn set_suspend(
    api: &Api<SecretRotation>,
    ns: &str,
    name: &str,
    suspend: bool,
) -> Result<(), PluginError> {
    let patch = serde_json::json!({"spec": {"suspend": suspend}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("updating {ns}/{name}")))?;
    println!(
        "secretrotation {ns}/{name} {}",
        if suspend { "suspended" } else { "resumed" }
    );
    Ok(())
}

/// A fresh request value: the time in nanoseconds, unique enough for one person's requests.
fn fresh() -> String {
    jiff::Timestamp::now().as_nanosecond().to_string()
}

async fn rotate(
    api: &Api<SecretRotation>,
    ns: &str,
    name: &str,
    wait: bool,
    timeout: Duration,
) -> Result<(), PluginError> {
    let before = api
        .get(name)
        .await
        .map_err(kube_err(format!("reading {ns}/{name}")))?;
    if before.spec.suspend {
        return Err(PluginError::Refused(format!(
            "{ns}/{name} is suspended: `kubectl srot resume {name}` first"
        )));
    }
    let started = jiff::Timestamp::now();
    let value = fresh();
    annotate(api, ns, name, ANNOTATION_ROTATE_NOW, &value).await?;
    eprintln!("asked {ns}/{name} to rotate ({ANNOTATION_ROTATE_NOW}={value})");
    if !wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_line = String::new();
    loop {
        let sr = api
            .get(name)
            .await
            .map_err(kube_err(format!("reading {ns}/{name}")))?;
        let st = sr.status.clone().unwrap_or_default();
        let (ready_status, reason, message) = ready(&sr).unwrap_or_default();
        if st.last_rotate_now.as_deref() == Some(value.as_str()) && ready_status == "True" {
            println!(
                "{ns}/{name} rotated: {} is Ready{}",
                st.version_id.unwrap_or_default(),
                st.rotation_task_id
                    .map(|t| format!(" (task {t})"))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        let failed_now = st.last_failure.as_ref().is_some_and(|f| {
            f.time.0 >= started.round(jiff::Unit::Second).unwrap_or(started)
                && st.failed_attempts > 0
        });
        if failed_now && ready_status == "False" {
            return Err(PluginError::Failed(format!(
                "{ns}/{name}: rotation failed: {reason}: {message}"
            )));
        }
        let line = format!(
            "waiting: version {}, Ready={} {}",
            st.version_id.as_deref().unwrap_or("<none>"),
            if ready_status.is_empty() {
                "Unknown"
            } else {
                &ready_status
            },
            reason
        );
        if line != last_line {
            eprintln!("{line}");
            last_line = line;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PluginError::Failed(format!(
                "{ns}/{name}: no new Ready version within {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn rollback(
    api: &Api<SecretRotation>,
    ns: &str,
    name: &str,
    to: &str,
    wait: bool,
    timeout: Duration,
) -> Result<(), PluginError> {
    let sr = api
        .get(name)
        .await
        .map_err(kube_err(format!("reading {ns}/{name}")))?;
    if sr.spec.suspend {
        return Err(PluginError::Refused(format!(
            "{ns}/{name} is suspended: `kubectl srot resume {name}` first"
        )));
    }
    let st = sr.status.clone().unwrap_or_default();
    if !st.versions.iter().any(|v| v.version_id == to) {
        let held: Vec<&str> = st.versions.iter().map(|v| v.version_id.as_str()).collect();
        return Err(PluginError::Refused(format!(
            "the store does not hold version {to} of {ns}/{name}; it holds: {}",
            if held.is_empty() {
                "(none listed yet)".to_owned()
            } else {
                held.join(", ")
            }
        )));
    }
    if st.version_id.as_deref() == Some(to) {
        return Err(PluginError::Refused(format!(
            "{to} is already the current version of {ns}/{name}"
        )));
    }
    let value = format!("{to}/{}", fresh());
    annotate(api, ns, name, ANNOTATION_ROLLBACK_TO, &value).await?;
    eprintln!("asked {ns}/{name} to roll back to {to} ({ANNOTATION_ROLLBACK_TO}={value})");
    if !wait {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let sr = api
            .get(name)
            .await
            .map_err(kube_err(format!("reading {ns}/{name}")))?;
        let st = sr.status.unwrap_or_default();
        if let Some(r) = st.last_rollback.filter(|r| r.request == value) {
            return match r.result {
                RollbackResult::Done => {
                    println!("{ns}/{name} rolled back: {}", r.message);
                    Ok(())
                }
                other => Err(PluginError::Failed(format!(
                    "{ns}/{name}: rollback {other:?}: {}",
                    r.message
                ))),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PluginError::Failed(format!(
                "{ns}/{name}: the operator did not handle the rollback within {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
