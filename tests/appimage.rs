//! The AppImage, made the way `scripts/package.sh` makes it (scripts/appimage.sh, here around
//! the debug build), started the way a desktop starts it: it unpacks itself into the user's
//! cache and the real app comes up to its join screen under Xvfb, with the AppImage
//! environment and its own copy of Opus; a system without a library the app needs gets a
//! sentence naming it and the package to install.
//!
//! Needs xvfb, webkit2gtk-driver, tauri-driver and a C compiler (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::bot::between_appimage;
use support::desktop::Desktop;

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("between-appimage-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Packs the debug app into `dir/Between.AppImage` with the project's script.
fn make_appimage(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = dir.join("Between.AppImage");
    let made = Command::new(root.join("scripts/appimage.sh"))
        .arg(env!("CARGO_BIN_EXE_between-app"))
        .arg(&out)
        .env("BETWEEN_APPIMAGE_PACKER", between_appimage())
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "scripts/appimage.sh failed: {}{}",
        String::from_utf8_lossy(&made.stdout),
        String::from_utf8_lossy(&made.stderr)
    );
    out
}

/// The running `between-app` processes whose program lies under `dir`.
fn apps_under(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|exe| exe.starts_with(dir) && exe.ends_with("usr/bin/between-app"))
        })
        .collect()
}

#[test]
fn the_appimage_unpacks_itself_and_starts_the_app() {
    let scratch = Scratch::new("app");
    let appimage = make_appimage(&scratch.0);

    // The page draws with WebGL here as on a desktop with a GPU (the app would pick 2D under
    // this machine's software GL): this start also covers the WebGL path.
    let desktop = Desktop::start(&appimage, &[("BETWEEN_VIDEO_RENDERER", "webgl")]).unwrap();
    let driver = desktop.open_app().unwrap();
    driver
        .wait_until("the join screen", 60, |d| {
            d.exec(
                "return document.body.dataset.state || ''",
                serde_json::json!([]),
            )
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .as_deref()
                == Some("join")
        })
        .unwrap();

    // The app runs from its unpacked copy in the user's cache, with the AppImage environment.
    let cache = desktop.home.join("cache/between/appimage");
    let apps = apps_under(&cache);
    assert_eq!(apps.len(), 1, "one app from {}: {apps:?}", cache.display());
    let environ = std::fs::read(format!("/proc/{}/environ", apps[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    let vars: Vec<&str> = environ.split('\0').collect();
    assert!(
        vars.contains(&format!("APPIMAGE={}", appimage.display()).as_str()),
        "{vars:?}"
    );
    let appdir = vars.iter().find_map(|v| v.strip_prefix("APPDIR=")).unwrap();
    assert!(Path::new(appdir).starts_with(&cache), "{appdir}");
    // Opus comes from the AppImage (through the app's run path), not from the system; and the
    // app does not hand the AppImage's library folder to what it starts.
    assert!(
        !vars
            .iter()
            .any(|v| v.starts_with("LD_LIBRARY_PATH=") && v.contains(appdir)),
        "{vars:?}"
    );
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", apps[0])).unwrap();
    assert!(
        maps.contains(&format!("{appdir}/usr/lib/libopus.so.0")),
        "libopus not from {appdir}"
    );

    // The camera preview of the synthetic camera is drawn, with WebGL.
    driver
        .wait_for("#camera-select option[value=\"between:test-pattern\"]", 10)
        .unwrap();
    driver
        .exec(
            "const s = document.querySelector('#camera-select');
             s.value = 'between:test-pattern';
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            serde_json::json!([]),
        )
        .unwrap();
    support::canvas::wait_for_pattern(
        &driver,
        "#preview-video canvas",
        "the preview drawing the test pattern",
    );
    let renderer = driver
        .exec(
            "return document.querySelector('#preview-video canvas').dataset.renderer",
            serde_json::json!([]),
        )
        .unwrap();
    assert_eq!(renderer, serde_json::json!("webgl"));
    driver.quit();
}

#[test]
fn a_system_without_a_library_the_app_needs_is_told_which() {
    let scratch = Scratch::new("lib");
    let appimage = make_appimage(&scratch.0);
    let unpacked = Command::new(&appimage)
        .arg("--appimage-extract")
        .current_dir(&scratch.0)
        .output()
        .unwrap();
    assert!(unpacked.status.success());
    let appdir = scratch.0.join("squashfs-root");

    // Stand in for the app a program that needs a library this system does not have (and
    // then one that is too old): link it against a library made for the purpose, with symbol
    // version GONE_2.0, found through the app's run path as Opus is.
    let dir = scratch.0.join("lib");
    std::fs::create_dir_all(&dir).unwrap();
    let cc = |args: &[&str], input: &str| {
        let mut child = Command::new("cc")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "cc {args:?}");
    };
    let library = |version: &str| {
        let map = dir.join(format!("{version}.map"));
        std::fs::write(&map, format!("{version} {{ global: gone; local: *; }};")).unwrap();
        let lib = dir.join("libbetween-gone.so");
        cc(
            &[
                "-shared",
                "-fPIC",
                &format!("-Wl,--version-script={}", map.display()),
                "-x",
                "c",
                "-",
                "-o",
                lib.to_str().unwrap(),
            ],
            "int gone(void) { return 1; }",
        );
        lib
    };
    let lib = library("GONE_2.0");
    let app = appdir.join("usr/bin/between-app");
    std::fs::remove_file(&app).unwrap();
    cc(
        &[
            "-x",
            "c",
            "-",
            "-o",
            app.to_str().unwrap(),
            "-L",
            dir.to_str().unwrap(),
            "-lbetween-gone",
            "-Wl,-rpath,$ORIGIN/../lib",
        ],
        "int gone(void); int main(void) { return gone(); }",
    );
    std::fs::remove_file(&lib).unwrap();
    let start = || {
        let out = Command::new(appdir.join("AppRun"))
            .env("APPDIR", &appdir)
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    let (code, said) = start();
    assert_eq!(code, Some(127), "{said}");
    assert!(
        said.contains("Between cannot start: this system lacks libbetween-gone.so.")
            && said.contains("sudo apt install libwebkit2gtk-4.1-0"),
        "{said}"
    );

    // The library is there, but older than the one the program was built against.
    std::fs::copy(
        library("GONE_1.0"),
        appdir.join("usr/lib/libbetween-gone.so"),
    )
    .unwrap();
    let (code, said) = start();
    assert_eq!(code, Some(127), "{said}");
    assert!(
        said.contains(
            "this system has a libbetween-gone.so older than the app needs (no GONE_2.0)"
        ),
        "{said}"
    );
}
