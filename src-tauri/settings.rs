//! The user's settings, kept with tauri-plugin-store in the app's data folder: display name,
//! last call ID, chosen devices, server, theme, and the embedded server's key (made once per
//! install). The page reads and writes them only through `app_settings_get`/`app_settings_set`.

use between_engine::{BAError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tauri::{AppHandle, Runtime};
use tauri_plugin_store::StoreExt;

const STORE_FILE: &str = "settings.json";
const KEY: &str = "settings";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_input: Option<String>,
    /// A remote server's WebSocket URL; none or empty = the embedded server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    /// The embedded server's key, made at first start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_api_key: Option<String>,
    /// The embedded server's port (7880 unless taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_port: Option<u16>,
}

impl Settings {
    /// The saved settings, with an embedded-server key made (and saved) on first start. A
    /// store that cannot be read gives defaults, logged: the app still starts.
    pub fn load<R: Runtime>(app: &AppHandle<R>) -> Self {
        let mut readable = true;
        let mut settings = match app.store(STORE_FILE) {
            Ok(store) => match store.get(KEY).map(serde_json::from_value::<Self>) {
                None => Self::default(),
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    // Keep the file as it is (a newer version may have written it).
                    tracing::warn!(error = %e, "saved settings not understood; using defaults");
                    readable = false;
                    Self::default()
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "settings could not be read; using defaults");
                readable = false;
                Self::default()
            }
        };
        if settings.embedded_api_key.is_none() {
            settings.embedded_api_key = Some(random_key());
            // Unreadable settings stay untouched on disk; this run uses a key of its own.
            if readable && let Err(e) = settings.save(app) {
                tracing::warn!(error = %e, "settings could not be saved");
            }
        }
        settings
    }

    pub fn save<R: Runtime>(&self, app: &AppHandle<R>) -> Result<(), BAError> {
        let store = app.store(STORE_FILE).map_err(storage_error)?;
        let value = serde_json::to_value(self).map_err(|e| storage_error(e.to_string()))?;
        store.set(KEY, value);
        store.save().map_err(storage_error)
    }

    /// Applies what the page sent: keys present overwrite (an empty string or null clears),
    /// unknown keys and the embedded server's own entries are ignored.
    pub fn merge(&mut self, patch: &Value) -> Result<(), BAError> {
        let Value::Object(patch) = patch else {
            return Err(BAError::new(
                ErrorCode::InvalidArgument,
                "Settings must be an object of names and values.",
            ));
        };
        // All or nothing: a bad value leaves every setting as it was.
        let mut next = self.clone();
        for (key, value) in patch {
            let slot = match key.as_str() {
                "displayName" => &mut next.display_name,
                "callId" => &mut next.call_id,
                "audioInput" => &mut next.audio_input,
                "audioOutput" => &mut next.audio_output,
                "videoInput" => &mut next.video_input,
                "serverUrl" => &mut next.server_url,
                "apiKey" => &mut next.api_key,
                "theme" => &mut next.theme,
                _ => continue,
            };
            *slot = match value {
                Value::Null => None,
                // "No camera" is a choice to remember, unlike an empty name.
                Value::String(s) if s.is_empty() && key == "videoInput" => Some(String::new()),
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) if s.len() > 2048 => {
                    return Err(BAError::new(
                        ErrorCode::InvalidArgument,
                        format!("The setting {key} is too long."),
                    ));
                }
                Value::String(s) => Some(s.trim().to_string()),
                _ => {
                    return Err(BAError::new(
                        ErrorCode::InvalidArgument,
                        format!("The setting {key} must be text."),
                    ));
                }
            };
        }
        *self = next;
        Ok(())
    }

    /// What the page sees: everything but the embedded server's internals.
    pub fn for_page(&self) -> Value {
        let mut page = self.clone();
        page.embedded_api_key = None;
        page.embedded_port = None;
        serde_json::to_value(page).unwrap_or(Value::Null)
    }
}

fn storage_error(e: impl std::fmt::Display) -> BAError {
    BAError::new(
        ErrorCode::Internal,
        format!(
            "Your settings could not be saved ({e}). Check that the app's data folder is writable."
        ),
    )
}

/// 128 random bits as hex: the embedded server's key.
fn random_key() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is unheard of on desktops; a time-based key still keeps other
        // local users' typos out, and the server only listens on this machine.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tauri::command]
pub fn app_settings_get(state: tauri::State<'_, crate::AppState>) -> Value {
    state.settings().for_page()
}

/// Merges and saves; a changed server takes effect for the next call.
#[tauri::command]
pub async fn app_settings_set<R: Runtime>(
    app: AppHandle<R>,
    state: tauri::State<'_, crate::AppState>,
    settings: Value,
) -> Result<Value, BAError> {
    let _writer = state.settings_writer.lock().await;
    let mut current = state.settings();
    current.merge(&settings)?;
    current.save(&app)?;
    let page = current.for_page();
    state.set_settings(current.clone());
    state.apply_server_settings(&current).await;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_sets_clears_and_ignores() {
        let mut s = Settings {
            display_name: Some("Ada".into()),
            embedded_api_key: Some("secret".into()),
            ..Settings::default()
        };
        s.merge(
            &json!({"callId": " standup ", "displayName": "", "embeddedApiKey": "x", "other": 1}),
        )
        .expect("merge");
        assert_eq!(s.call_id.as_deref(), Some("standup"));
        assert_eq!(s.display_name, None);
        assert_eq!(s.embedded_api_key.as_deref(), Some("secret"));
        assert!(s.for_page().get("embeddedApiKey").is_none());
    }

    #[test]
    fn merge_refuses_what_is_not_text() {
        let mut s = Settings::default();
        let e = s
            .merge(&json!({"displayName": "Ada", "callId": 5}))
            .expect_err("number");
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(s.merge(&json!(["a"])).is_err());
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn keys_are_random_hex() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
