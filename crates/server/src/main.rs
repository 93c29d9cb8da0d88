//! The `between-server` binary: configuration from flags and the environment, logs, signals.

use anyhow::Context;
use between_server::{ApiKeys, DEV_API_KEY, ServerConfig, Timing};
use clap::{Parser, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Between's signaling server: admits clients by API key and connects the participants of
/// each call.
#[derive(Parser, Debug)]
#[command(name = "between-server", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on start).
    #[arg(long, default_value = "127.0.0.1:7880")]
    listen: SocketAddr,
    /// TOML file of API keys: `[[keys]]` tables with `key = "..."` and optional `tenant = "..."`.
    #[arg(long, value_name = "FILE")]
    api_keys_file: Option<PathBuf>,
    /// Comma-separated API keys, each its own tenant.
    #[arg(
        long,
        env = "BETWEEN_API_KEYS",
        hide_env_values = true,
        value_name = "KEYS"
    )]
    api_keys: Option<String>,
    /// Development mode: also accept the documented key `between-dev-key`. Never on a server
    /// others can reach.
    #[arg(long)]
    dev: bool,
    /// Address the media (WebRTC UDP) sockets bind to; default: the --listen address.
    #[arg(long, value_name = "IP")]
    media_ip: Option<std::net::IpAddr>,
    /// This machine's public address when it sits behind 1:1 NAT (a cloud VM): advertised to
    /// clients next to the --media-ip address.
    #[arg(long, value_name = "IP")]
    public_ip: Option<std::net::IpAddr>,
    /// Carry all media on this one port, UDP and ICE-TCP (for networks that block UDP), on
    /// --media-ip; 0 picks a free port. Without it each connection uses an ephemeral UDP port.
    #[arg(long, value_name = "PORT")]
    udp_port: Option<u16>,
    /// Open connections one client address may hold; 0 for no limit.
    #[arg(long, default_value_t = between_server::DEFAULT_MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `between_server=debug,warn`.
    #[arg(long, env = "BETWEEN_LOG", default_value = "info")]
    log: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logs(args: &Args) -> anyhow::Result<()> {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = args
        .log
        .parse()
        .with_context(|| format!("invalid log filter {:?}", args.log))?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(fmt.with_filter(filter))
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(fmt.json().with_filter(filter))
            .init(),
    }
    Ok(())
}

fn load_keys(args: &Args) -> anyhow::Result<ApiKeys> {
    let mut keys = ApiKeys::default();
    if let Some(path) = &args.api_keys_file {
        keys.add_file(path)?;
    }
    if let Some(list) = &args.api_keys {
        keys.add_comma_separated(list)?;
    }
    if args.dev {
        tracing::warn!(
            "development mode: the public key {DEV_API_KEY:?} is accepted; do not expose this server"
        );
        keys.add(DEV_API_KEY, Some("dev"))?;
    }
    if keys.is_empty() {
        anyhow::bail!(between_server::KeysError::None);
    }
    Ok(keys)
}

async fn terminate_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("between-server: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(&args)?;
    let keys = load_keys(&args)?;
    let server = between_server::start(ServerConfig {
        listen: args.listen,
        keys,
        timing: Timing::default(),
        media_ip: args.media_ip.unwrap_or(args.listen.ip()),
        public_ip: args.public_ip,
        max_connections_per_ip: args.max_connections_per_ip,
        udp_port: args.udp_port,
    })
    .await?;
    // The first stdout line is the contract for scripts and `between bench`.
    let mut out = std::io::stdout().lock();
    writeln!(out, "between-server listening on {}", server.url())?;
    out.flush()?;
    drop(out);
    terminate_signal().await;
    tracing::info!("shutting down");
    server.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
