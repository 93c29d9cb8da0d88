//! `between join`: a bot participant. Every event is one JSON line on stdout; the first line
//! is `{"event":"joined",...}` once in the call. Exit status: 0 after `--duration` or
//! Ctrl-C/SIGTERM (with a clean `endCall`), 1 with a one-line error on stderr otherwise.

use crate::duration;
use anyhow::{Context, bail};
use between_engine::{Conference, ConferenceEvent, EngineConfig};
use clap::Args;
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The call to join (1-128 of A-Z a-z 0-9 - _ . ~).
    call_id: String,
    /// The server's WebSocket URL.
    #[arg(long, env = "BETWEEN_SERVER", default_value = "ws://127.0.0.1:7880")]
    server: String,
    /// The API key (`between-dev-key` for a server started with --dev).
    #[arg(long, env = "BETWEEN_API_KEY", hide_env_values = true)]
    api_key: String,
    /// extraData as JSON (e.g. '{"name":"bot"}'); text that is not JSON is sent as a string.
    #[arg(long, default_value = "{}")]
    data: String,
    /// Leave after this long (e.g. 10s, 500ms, 2m); without it, stay until Ctrl-C.
    #[arg(long, value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Send {"text": TEXT} through the dataHandler once someone else is in the call.
    #[arg(long)]
    say: Option<String>,
}

fn print(line: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub async fn run(args: JoinArgs) -> anyhow::Result<()> {
    let extra: Value = serde_json::from_str(&args.data).unwrap_or(Value::String(args.data));
    let conference = Conference::new(
        EngineConfig::new(args.server),
        args.api_key,
        args.call_id,
        extra,
    )
    .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    let mut events = conference.events();
    conference
        .start_call()
        .await
        .map_err(|e| anyhow::anyhow!("could not join: {} ({})", e.message, e.code))?;
    print(&json!({
        "event": "joined",
        "peerId": conference.peer_id(),
        "callId": conference.call_id(),
    }));

    let mut say = args.say.map(|text| json!({ "text": text }));
    if !conference.peers().is_empty() {
        if let Some(data) = say.take() {
            conference
                .data_handler()
                .send(data, None)
                .context("--say")?;
        }
    }

    let stop = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => shutdown_signal().await,
        }
    };
    tokio::pin!(stop);
    let mut lost = false;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                print(&event.to_json());
                match event {
                    ConferenceEvent::PeerJoined(_) => {
                        if let Some(data) = say.take() {
                            conference.data_handler().send(data, None).context("--say")?;
                        }
                    }
                    ConferenceEvent::SocketDisconnected => {
                        lost = true;
                        break;
                    }
                    _ => {}
                }
            }
            _ = &mut stop => break,
            _ = shutdown_signal(), if args.duration.is_some() => break,
        }
    }
    if lost {
        bail!("lost the connection to the server and could not reconnect");
    }
    conference
        .end_call()
        .await
        .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
    while let Some(event) = events.try_recv() {
        print(&event.to_json());
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
