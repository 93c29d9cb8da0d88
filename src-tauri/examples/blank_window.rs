//! The floor under `between bench app`'s memory figures: a Tauri 2 window made from the app's
//! own configuration (same WebKitGTK, same settings) showing a blank page, with no engine,
//! server or page code. `between bench app --baseline` measures it the way it measures the app.
//!
//! cargo build --release --example blank_window --features baseline

fn main() {
    let mut context = tauri::generate_context!();
    let blank: tauri::Url = match "about:blank".parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("about:blank: {e}");
            std::process::exit(1);
        }
    };
    for window in &mut context.config_mut().app.windows {
        window.url = tauri::WebviewUrl::External(blank.clone());
    }
    if let Err(e) = tauri::Builder::default().run(context) {
        eprintln!("the blank window could not start: {e}");
        std::process::exit(1);
    }
}
