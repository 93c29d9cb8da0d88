//! Tauri's build step: embeds tauri.conf.json, the page and the icons, and turns the app's
//! commands into permissions so `capabilities/main.json` can grant exactly these to the page.

/// Every command the page may call; `lib.rs` registers the same list.
const COMMANDS: &[&str] = &[
    "conference_new",
    "conference_start_call",
    "conference_end_call",
    "conference_close",
    "conference_get_permission_state",
    "conference_set_output_device",
    "conference_start_screenshare",
    "conference_stop_screenshare",
    "conference_screenshare_targets",
    "conference_send_data",
    "local_mute_audio",
    "local_unmute_audio",
    "local_mute_video",
    "local_unmute_video",
    "local_set_audio_input",
    "local_set_video_input",
    "peer_set_volume",
    "peer_set_video_size",
    "video_open",
    "preview_open",
    "video_next",
    "video_resize",
    "video_close",
    "app_devices",
    "app_server",
    "app_graphics",
    "app_settings_get",
    "app_settings_set",
    "app_mic_test_start",
    "app_mic_test_stop",
    "app_play_test_sound",
];

fn main() {
    // The AppImage carries Opus in usr/lib beside usr/bin (scripts/appimage.sh). A run path,
    // unlike LD_LIBRARY_PATH, is not inherited by what the app starts (WebKit's processes, a
    // browser for a link); in the .deb it names /usr/lib, where the loader looks anyway.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=between-app=-Wl,-rpath,$ORIGIN/../lib");
    }
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    if let Err(e) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)) {
        println!("cargo::error=tauri build step failed: {e:#}");
    }
}
