//! What the app holds between commands: the settings, the server calls go to, the open
//! conferences (by the handle the page got from `conference_new`), the open video feeds.

use crate::calls::Call;
use crate::mic_test::MicTest;
use crate::server::{ServerChoice, ServerInfo};
use crate::settings::Settings;
use crate::video::VideoFeed;
use between_engine::{BAError, ErrorCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub struct AppState {
    settings: Mutex<Settings>,
    server: tokio::sync::Mutex<ServerChoice>,
    calls: Mutex<HashMap<u32, Arc<Call>>>,
    pub videos: Mutex<HashMap<u32, Arc<VideoFeed>>>,
    pub mic_test: Mutex<Option<MicTest>>,
    /// Held across read-merge-save (and the server switch it may cause), so two quick
    /// changes from the page cannot overwrite each other or apply out of order.
    pub settings_writer: tokio::sync::Mutex<()>,
    next_id: AtomicU32,
}

/// A poisoned lock means a command panicked half-way; the data is still the best we have.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AppState {
    pub fn new(settings: Settings, server: ServerChoice) -> Self {
        Self {
            settings: Mutex::new(settings),
            server: tokio::sync::Mutex::new(server),
            calls: Mutex::new(HashMap::new()),
            videos: Mutex::new(HashMap::new()),
            mic_test: Mutex::new(None),
            settings_writer: tokio::sync::Mutex::new(()),
            next_id: AtomicU32::new(1),
        }
    }

    pub fn next_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    pub fn set_settings(&self, settings: Settings) {
        *lock(&self.settings) = settings;
    }

    pub async fn server_info(&self) -> ServerInfo {
        let mut info = self.server.lock().await.snapshot();
        info.probe().await;
        info
    }

    /// The URL and key a new call uses; an error when there is no server to call through.
    pub async fn server_for_call(&self) -> Result<(String, String), BAError> {
        let server = self.server.lock().await;
        if let Some(e) = &server.error {
            return Err(BAError::new(ErrorCode::ServerUnreachable, e.clone()));
        }
        Ok((server.url.clone(), server.api_key.clone()))
    }

    /// Switches to the server the settings name (remote, or back to the embedded one).
    pub async fn apply_server_settings(&self, settings: &Settings) {
        let mut server = self.server.lock().await;
        if !server.differs_from(settings) {
            return;
        }
        let next = ServerChoice::start(settings).await;
        let old = std::mem::replace(&mut *server, next);
        old.stop().await;
    }

    pub fn add_call(&self, id: u32, call: Arc<Call>) {
        lock(&self.calls).insert(id, call);
    }

    pub fn call(&self, id: u32) -> Result<Arc<Call>, BAError> {
        lock(&self.calls).get(&id).cloned().ok_or_else(|| {
            BAError::new(
                ErrorCode::InvalidArgument,
                "This conference was closed. Create a new one to join again.",
            )
        })
    }

    pub fn remove_call(&self, id: u32) -> Option<Arc<Call>> {
        lock(&self.calls).remove(&id)
    }
}
