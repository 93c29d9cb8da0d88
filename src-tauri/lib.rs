//! The Between desktop app: Tauri commands over the engine (`between-engine`), the page's
//! video frames, the embedded server, settings. The page (`ui/`) reaches the engine only
//! through the commands listed in `build.rs` (IPC contract: `src-tauri/IPC.md`).
//!
//! Only this crate knows about the webview; the engine and server never depend on Tauri.

mod calls;
mod cameras;
mod frame;
mod graphics;
mod mic_test;
mod server;
mod settings;
mod state;
mod video;

use state::AppState;
use tauri::Manager;

/// How this binary was built, as JSON. `production` is false for a Tauri dev build (without
/// the `custom-protocol` feature), which is not what users get: `between bench app` refuses
/// one, and the tests check the binary `cargo build -p between-app` makes is not one.
pub fn build_info() -> String {
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "production": !tauri::is_dev(),
        "features": {
            "custom-protocol": cfg!(feature = "custom-protocol"),
        },
    })
    .to_string()
}

/// Starts the app: settings, the embedded server (unless a remote one is configured), the
/// window.
pub fn run() {
    init_logging();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_store::Builder::default().build())
        .setup(|app| {
            let settings = settings::Settings::load(app.handle());
            let server = tauri::async_runtime::block_on(server::ServerChoice::start(&settings));
            app.manage(AppState::new(settings, server));
            if let Some(window) = app.get_webview_window("main") {
                graphics::fit_window(&window);
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            calls::conference_new,
            calls::conference_start_call,
            calls::conference_end_call,
            calls::conference_close,
            calls::conference_get_permission_state,
            calls::conference_set_output_device,
            calls::conference_start_screenshare,
            calls::conference_stop_screenshare,
            calls::conference_screenshare_targets,
            calls::conference_send_data,
            calls::local_mute_audio,
            calls::local_unmute_audio,
            calls::local_mute_video,
            calls::local_unmute_video,
            calls::local_set_audio_input,
            calls::local_set_video_input,
            calls::peer_set_volume,
            calls::peer_set_video_size,
            video::video_open,
            video::preview_open,
            video::video_next,
            video::video_resize,
            video::video_close,
            cameras::app_devices,
            server::app_server,
            graphics::app_graphics,
            settings::app_settings_get,
            settings::app_settings_set,
            mic_test::app_mic_test_start,
            mic_test::app_mic_test_stop,
            mic_test::app_play_test_sound,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "the app stopped");
        eprintln!("Between could not start: {e}");
        std::process::exit(1);
    }
}

/// Logs to stderr; `BETWEEN_LOG` picks what (e.g. `warn,between_engine=debug`).
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    // The WebRTC crates warn about normal set-up steps, and the PulseAudio client logs an
    // error each time a device poll closes its connection: keep those out by default. Tauri
    // takes an AppImage to be FUSE-mounted under $TMPDIR/.mount_*; ours unpacks into the
    // user's cache (crates/appimage), and Tauri would warn at every start that APPIMAGE being
    // set "might be a security issue".
    const DEFAULT: &str = "warn,between_app=info,between_engine=info,rtc=error,rtc_dtls=error,rtc_ice=error,webrtc=error,pulseaudio=off,tauri_utils=error";
    let wanted = std::env::var("BETWEEN_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let targets: Targets = wanted
        .as_deref()
        .unwrap_or(DEFAULT)
        .parse()
        .or_else(|_| DEFAULT.parse())
        .unwrap_or_default();
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(targets),
        )
        .try_init();
}
