//! `between`: a headless Between participant. `between join` joins a call as a bot and prints
//! every event as one JSON line on stdout; `between bench` measures the system. Logs go to
//! stderr, so stdout stays machine-readable.

mod bench;
mod duration;
mod join;
mod record;
mod stats;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "between",
    version,
    about = "A headless Between participant and benchmarks"
)]
struct Cli {
    /// Log filter for stderr, e.g. `warn` or `between_engine=debug`.
    #[arg(long, global = true, env = "BETWEEN_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Join a call and print every event as a JSON line.
    Join(Box<join::JoinArgs>),
    /// List microphones and speakers (and which audio host lists them) as JSON.
    Devices,
    /// Try a microphone (default: the system's) and print getPermissionState's answer.
    Permissions {
        /// A microphone ID from `between devices`.
        #[arg(long)]
        mic: Option<String>,
        /// A camera ID from `between devices` (default: the first camera, if any).
        #[arg(long, conflicts_with = "no_camera")]
        camera: Option<String>,
        /// Do not try a camera.
        #[arg(long)]
        no_camera: bool,
    },
    /// List what can be shared (screen, monitors, windows) as JSON, for `join --share-target`.
    Screens,
    /// Measure the system (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_logs(filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let targets: Targets = filter
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid log filter {filter:?}: {e}"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(targets),
        )
        .init();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logs(&cli.log) {
        eprintln!("between: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("between: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Join(args) => join::run(*args).await,
            Command::Bench(cmd) => bench::run(cmd).await,
            Command::Permissions {
                mic,
                camera,
                no_camera,
            } => {
                use between_engine::devices::CameraCheck;
                let camera = match (camera, no_camera) {
                    (_, true) => CameraCheck::Skip,
                    (Some(id), false) => CameraCheck::Chosen(id),
                    (None, false) => CameraCheck::Default,
                };
                let state = tokio::task::spawn_blocking(move || {
                    between_engine::devices::permission_state(mic.as_deref(), camera)
                })
                .await?;
                println!("{}", serde_json::to_string(&state)?);
                Ok(())
            }
            Command::Screens => {
                let targets = tokio::task::spawn_blocking(between_engine::screen::targets)
                    .await?
                    .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
                println!("{}", serde_json::to_string_pretty(&targets)?);
                Ok(())
            }
            Command::Devices => {
                // cpal's PulseAudio host blocks while it asks the server: off the runtime.
                let snapshot =
                    tokio::task::spawn_blocking(between_engine::devices::snapshot).await?;
                println!("{}", serde_json::to_string_pretty(&snapshot)?);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("between: {e:#}");
            ExitCode::FAILURE
        }
    }
}
