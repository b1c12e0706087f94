//! The `secret-rotator` binary: parses the command line and dispatches to [`secret_rotator::startup`].
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secret_rotator::startup::BoxError;
use secret_rotator::startup::operator::{self, RunArgs};
use secret_rotator::startup::serve::{self, ServeArgs};
use secret_rotator::startup::store_args::StoreCommand;
use secret_rotator::telemetry::{self, LogFormat};

/// secret-rotator: rotates secrets the way Huawei Cloud CSMS does and keeps Kubernetes Secrets in sync.
#[derive(Parser, Debug)]
#[command(name = "secret-rotator", version, about, long_about = None)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "SECRET_ROTATOR_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions (SecretRotation, ClusterDatabaseServer, DatabaseServer) as YAML.
    Crd {
        /// Only the CRD with this plural name (secretrotations, clusterdatabaseservers, databaseservers).
        #[arg(long)]
        name: Option<String>,
    },
    /// Maintain an embedded store file.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Serve the CSMS REST API over a store.
    Serve(ServeArgs),
    /// Run the operator.
    Run(RunArgs),
}

fn main() -> ExitCode {
    // Called as `kubectl-srot` (a copy or a link on the PATH): the kubectl plugin.
    if std::env::args()
        .next()
        .is_some_and(|a| secret_rotator::plugin::called_as_plugin(&a))
    {
        return plugin_main();
    }
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), BoxError> = match cli.command {
        Command::Serve(args) => runtime.block_on(serve::serve(args)),
        Command::Run(args) => runtime.block_on(operator::run(args)),
        Command::Crd { name } => secret_rotator::crdgen::crds_yaml(name.as_deref())
            .map_err(BoxError::from)
            .and_then(|yaml| {
                if yaml.is_empty() {
                    Err(format!("no CRD is named {}", name.unwrap_or_default()).into())
                } else {
                    print!("{yaml}");
                    Ok(())
                }
            }),
        Command::Store(cmd) => cmd.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kubectl srot`: exit 1 when the operator reported a failure, 2 when the request was refused.
fn plugin_main() -> ExitCode {
    use secret_rotator::plugin;
    let cli = plugin::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(plugin::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
