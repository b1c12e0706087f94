#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secret_rotator::store::embedded::EmbeddedStore;
use secret_rotator::store::embedded::crypto::MasterKey;
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
    /// Print the SecretRotation CustomResourceDefinition as YAML.
    Crd,
    /// Maintain an embedded store file.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand, Debug)]
enum StoreCommand {
    /// Re-wrap every data key under a new master key, in one transaction, without re-encrypting values.
    Rekey {
        /// The store file.
        #[arg(long)]
        store_path: PathBuf,
        /// The current master key file (base64 of 32 bytes).
        #[arg(long)]
        master_key_file: PathBuf,
        /// The new master key file (make one with `openssl rand -base64 32`).
        #[arg(long)]
        new_master_key_file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Crd => secret_rotator::crdgen::crd_yaml()
            .map(|yaml| print!("{yaml}"))
            .map_err(Into::into),
        Command::Store(StoreCommand::Rekey {
            store_path,
            master_key_file,
            new_master_key_file,
        }) => (|| {
            let old = MasterKey::from_file(&master_key_file)?;
            let new = MasterKey::from_file(&new_master_key_file)?;
            let n = EmbeddedStore::rekey(&store_path, old, &new)?;
            println!(
                "re-wrapped {n} data keys in {} under master key {}",
                store_path.display(),
                new.key_id()
            );
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
