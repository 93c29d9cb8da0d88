//! The `between-server` binary: configuration errors, the printed address, and a graceful
//! shutdown on SIGTERM that tells connected clients to come back later.
#![allow(clippy::unwrap_used)]

use between_protocol::{ErrorCode, ServerMessage, decode_server};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const BIN: &str = env!("CARGO_BIN_EXE_between-server");

fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("BETWEEN_API_KEYS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts the server and reads its address from the first stdout line.
fn spawn(args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("between-server listening on ")
        .unwrap()
        .to_string();
    assert!(url.starts_with("ws://127.0.0.1:"), "{line}");
    (child, url)
}

#[test]
fn refuses_to_start_without_keys() {
    let (code, stderr) = run_to_end(&["--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no API keys configured"), "{stderr}");
    assert!(stderr.contains("--dev"), "says how to fix it: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn reports_a_bad_keys_file_by_name() {
    let path = std::env::temp_dir().join(format!("between-badkeys-{}.toml", std::process::id()));
    std::fs::write(&path, "[[keys]]\nkee = 'typo'\n").unwrap();
    let (code, stderr) = run_to_end(&["--api-keys-file", path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    let (code, stderr) = run_to_end(&["--api-keys-file", "/nonexistent/keys.toml"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read"), "{stderr}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn refuses_a_busy_port_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_end(&["--listen", &addr, "--dev"], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}

async fn join(
    url: &str,
    key: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    ErrorCode,
> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = json!({"type":"join","v":1,"apiKey":key,"callId":"bin"}).to_string();
    ws.send(Message::Text(join.into())).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match decode_server(&t).unwrap() {
                ServerMessage::Joined { .. } => return Ok(ws),
                ServerMessage::Error { code, .. } => return Err(code),
                _ => {}
            },
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn keys_from_the_environment_and_graceful_shutdown_on_sigterm() {
    let (mut child, url) = spawn(
        &["--listen", "127.0.0.1:0", "--log-format", "json"],
        &[("BETWEEN_API_KEYS", "env-key-1, env-key-2")],
    );
    assert_eq!(
        join(&url, "between-dev-key").await.err(),
        Some(ErrorCode::InvalidApiKey)
    );
    let mut ws = join(&url, "env-key-2").await.expect("env key accepted");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut said_shutting_down = false;
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(t) => {
                    if let Ok(ServerMessage::Error {
                        code: ErrorCode::ServerShuttingDown,
                        ..
                    }) = decode_server(&t)
                    {
                        said_shutting_down = true;
                    }
                }
                Message::Close(frame) => return frame,
                _ => {}
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert!(said_shutting_down);
    assert_eq!(
        close.map(|f| f.code),
        Some(CloseCode::Away),
        "1001: come back later"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn dev_mode_accepts_the_documented_key() {
    let (mut child, url) = spawn(&["--listen", "127.0.0.1:0", "--dev"], &[]);
    assert!(join(&url, "between-dev-key").await.is_ok());
    child.kill().unwrap();
    let _ = child.wait();
}
