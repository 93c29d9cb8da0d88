//! The app the README's run command builds is the app that is packaged and measured: a
//! production Tauri build (a dev build, without `custom-protocol`, is a different app), made
//! by one command that `scripts/run.sh` and `scripts/package.sh` share.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::process::{Command, Stdio};

fn build_info() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_between-app"))
        .arg("--build-info")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "--build-info failed: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn script(name: &str) -> String {
    std::fs::read_to_string(format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Lines that are commands, not comments.
fn commands(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// `cargo build -p between-app` (what `build_app` runs, here in the test profile) makes a
/// production build: the binary says so, from Tauri itself.
#[test]
fn the_app_cargo_builds_is_a_production_build() {
    let info = build_info();
    assert_eq!(
        info["production"],
        Value::Bool(true),
        "a Tauri dev build: {info}"
    );
    assert_eq!(info["features"]["custom-protocol"], Value::Bool(true));
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
}

/// The README runs `scripts/run.sh`; it and `scripts/package.sh` build the app with the one
/// `build_app` of `scripts/common.sh`, and the package only bundles that binary.
#[test]
fn the_run_script_and_the_packages_build_one_app() {
    let readme =
        std::fs::read_to_string(format!("{}/README.md", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        commands(&readme)
            .iter()
            .any(|l| l.starts_with("./scripts/run.sh")),
        "the README's run command is scripts/run.sh"
    );
    let common = script("common.sh");
    let build_app: Vec<&str> = common
        .split("build_app() {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .map(commands)
        .unwrap_or_default();
    assert_eq!(
        build_app,
        vec!["cargo build --release --locked -p between-app"],
        "build_app builds the app with its default (production) features only"
    );
    for name in ["run.sh", "package.sh"] {
        let text = script(name);
        let lines = commands(&text);
        assert!(lines.contains(&"build_app"), "{name} builds with build_app");
        for line in &lines {
            let names_app = line.split_whitespace().any(|w| w == "between-app");
            let builds_app = line.contains("cargo build") && names_app
                || line.contains("cargo tauri build")
                || line.contains("--features")
                || line.contains("--no-default-features");
            assert!(!builds_app, "{name} builds the app its own way: {line}");
        }
    }
    let package = script("package.sh");
    assert!(
        commands(&package)
            .iter()
            .any(|l| l.starts_with("cargo tauri bundle")),
        "the .deb bundles the binary build_app made"
    );
}
