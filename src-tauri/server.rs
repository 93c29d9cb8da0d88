//! Which server calls go to: the embedded `between-server` (started in-process on this
//! machine with the install's own key, so a fresh install can call at once) or a remote one
//! from the settings.

use crate::settings::Settings;
use between_server::{ApiKeys, RunningServer, ServerConfig};
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The port the embedded server prefers, so a teammate's app can be pointed at it.
pub const EMBEDDED_PORT: u16 = 7880;

/// Where calls go now.
pub struct ServerChoice {
    pub url: String,
    pub api_key: String,
    pub embedded: Option<RunningServer>,
    /// Why the embedded server is not running, when it is not.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub url: String,
    pub api_key: String,
    pub embedded: bool,
    /// `running` (embedded), `reachable`/`unreachable` (remote), `failed` (embedded could not
    /// start; `error` says why).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ServerChoice {
    /// The remote server when the settings name one, else the embedded one (started here).
    pub async fn start(settings: &Settings) -> Self {
        if let Some(url) = settings.server_url.clone().filter(|u| !u.is_empty()) {
            return Self {
                url,
                api_key: settings.api_key.clone().unwrap_or_default(),
                embedded: None,
                error: None,
            };
        }
        let key = settings.embedded_api_key.clone().unwrap_or_default();
        let port = settings.embedded_port.unwrap_or(EMBEDDED_PORT);
        match start_embedded(&key, port).await {
            Ok(server) => Self {
                url: server.url(),
                api_key: key,
                embedded: Some(server),
                error: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "the embedded server did not start");
                Self {
                    url: String::new(),
                    api_key: key,
                    embedded: None,
                    error: Some(e),
                }
            }
        }
    }

    /// Whether `settings` ask for a different server than this one.
    pub fn differs_from(&self, settings: &Settings) -> bool {
        match settings.server_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                self.embedded.is_some()
                    || self.url != url
                    || self.api_key != settings.api_key.clone().unwrap_or_default()
            }
            None => self.embedded.is_none(),
        }
    }

    /// Stops the embedded server, if this is one (calls on it end; clients are told).
    pub async fn stop(self) {
        if let Some(server) = self.embedded {
            server.shutdown(Duration::from_secs(1)).await;
        }
    }

    #[cfg(test)]
    pub async fn info(&self) -> ServerInfo {
        let mut info = self.snapshot();
        info.probe().await;
        info
    }

    /// What is known without touching the network (a remote server is probed separately,
    /// so callers need not hold a lock for the probe's 2 s).
    pub fn snapshot(&self) -> ServerInfo {
        let (status, error) = match (&self.embedded, &self.error) {
            (Some(_), _) => ("running", None),
            (None, Some(e)) => ("failed", Some(e.clone())),
            (None, None) => ("unreachable", None),
        };
        ServerInfo {
            url: self.url.clone(),
            api_key: self.api_key.clone(),
            embedded: self.embedded.is_some(),
            status,
            error,
        }
    }
}

impl ServerInfo {
    /// For a remote server: whether it can be reached now.
    pub async fn probe(&mut self) {
        if self.embedded || self.status == "failed" {
            return;
        }
        (self.status, self.error) = match reachable(&self.url).await {
            Ok(()) => ("reachable", None),
            Err(e) => ("unreachable", Some(e)),
        };
    }
}

/// On this machine only, at `port` (or any free port when that one is taken: a second copy
/// of the app, or another server).
async fn start_embedded(key: &str, port: u16) -> Result<RunningServer, String> {
    let config = |port| -> Result<ServerConfig, String> {
        let mut keys = ApiKeys::default();
        keys.add(key, Some("this-app")).map_err(|e| e.to_string())?;
        Ok(ServerConfig::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            keys,
        ))
    };
    match between_server::start(config(port)?).await {
        Ok(server) => Ok(server),
        Err(first) => {
            tracing::info!(error = %first, "preferred port taken; using any free port");
            between_server::start(config(0)?)
                .await
                .map_err(|e| format!("The built-in server could not start: {e}."))
        }
    }
}

/// Can a TCP connection reach the server's host and port within 2 s?
async fn reachable(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .ok_or_else(|| {
            format!("{url} is not a server address (it should start with ws:// or wss://).")
        })?;
    let host_port = rest.split('/').next().unwrap_or_default();
    let target = if host_port.contains(':') {
        host_port.to_string()
    } else if url.starts_with("wss://") {
        format!("{host_port}:443")
    } else {
        format!("{host_port}:80")
    };
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(&target),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("The server at {url} cannot be reached ({e}).")),
        Err(_) => Err(format!(
            "The server at {url} did not answer within 2 seconds."
        )),
    }
}

#[tauri::command]
pub async fn app_server(
    state: tauri::State<'_, crate::AppState>,
) -> Result<ServerInfo, between_engine::BAError> {
    Ok(state.server_info().await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str, key: &str) -> ServerChoice {
        ServerChoice {
            url: url.into(),
            api_key: key.into(),
            embedded: None,
            error: None,
        }
    }

    #[test]
    fn a_changed_url_or_key_or_going_back_to_embedded_is_a_different_server() {
        let current = remote("ws://team.example:7880", "k1");
        let same = Settings {
            server_url: Some("ws://team.example:7880".into()),
            api_key: Some("k1".into()),
            ..Settings::default()
        };
        assert!(!current.differs_from(&same));
        let other_key = Settings {
            api_key: Some("k2".into()),
            ..same.clone()
        };
        assert!(current.differs_from(&other_key));
        // No URL: the embedded server, which this is not.
        assert!(current.differs_from(&Settings::default()));
    }

    #[tokio::test]
    async fn a_remote_server_reports_whether_it_can_be_reached() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = remote(&format!("ws://127.0.0.1:{port}"), "k").info().await;
        assert_eq!((up.status, up.embedded), ("reachable", false));
        drop(listener);
        let down = remote(&format!("ws://127.0.0.1:{port}/"), "k").info().await;
        assert_eq!(down.status, "unreachable");
        assert!(down.error.is_some_and(|e| e.contains("cannot be reached")));
        let bad = remote("http://example.invalid", "k").info().await;
        assert!(
            bad.error.is_some_and(|e| e.contains("ws://")),
            "a URL of the wrong kind says so"
        );
    }

    #[tokio::test]
    async fn the_embedded_server_starts_with_the_install_key_and_takes_another_port_when_busy() {
        let busy = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let settings = Settings {
            embedded_api_key: Some("install-key".into()),
            embedded_port: Some(port),
            ..Settings::default()
        };
        let choice = ServerChoice::start(&settings).await;
        let info = choice.info().await;
        assert_eq!((info.status, info.embedded), ("running", true));
        assert_eq!(info.api_key, "install-key");
        assert!(info.url.starts_with("ws://127.0.0.1:"));
        assert!(!info.url.ends_with(&format!(":{port}")), "{}", info.url);
        choice.stop().await;
    }
}
