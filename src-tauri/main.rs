// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // `--build-info`: how this binary was built, for the bench and the tests (no window).
    if std::env::args().nth(1).as_deref() == Some("--build-info") {
        println!("{}", between_app::build_info());
        return;
    }
    between_app::run();
}
