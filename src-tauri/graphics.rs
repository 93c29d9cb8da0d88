//! How the window and page draw where GL is Mesa's software rasteriser (a machine or VM
//! without a GPU, a remote desktop): WebKit's compositing mode off, and video in 2D rather than
//! WebGL. With a GPU, WebKit's defaults and WebGL (I420 → RGB in a shader).
//!
//! Measured here under software GL (`between bench app`, 3 tiles of 720p30, see
//! BENCHMARKS.md): with WebKit's default compositing mode the page drew 4-5 frames/s per
//! tile with WebKit's process at 130-140 % of a core; with it off, WebGL drew 23-26/s at
//! 83-88 % and 2D 30/s at 55-60 %, and 2D used 50 MiB less (WebGL under llvmpipe compiles its
//! shaders with LLVM). WebKit hides the renderer's name from the page ("Apple GPU"), so the
//! app decides, from the system.

use serde::Serialize;

/// What the page is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graphics {
    pub webgl: bool,
    /// GL is (most likely) software: WebKit's compositing mode is turned off.
    pub software_gl: bool,
    /// Why, for logs and support.
    pub reason: String,
}

/// What the decision rests on, gathered by `app_graphics`; a pure decision for tests.
#[derive(Debug, Default)]
pub struct Facts {
    /// `BETWEEN_VIDEO_RENDERER`: `webgl` or `2d` overrides everything.
    pub forced: Option<String>,
    /// `LIBGL_ALWAYS_SOFTWARE` (Mesa's switch to its software rasteriser).
    pub libgl_always_software: Option<String>,
    /// `GALLIUM_DRIVER` (`llvmpipe`, `softpipe` are software).
    pub gallium_driver: Option<String>,
    /// GPU render nodes (`/dev/dri/renderD*`) this user can open; Linux only.
    pub render_nodes: usize,
    /// NVIDIA's own driver's devices (`/dev/nvidia0`...), present without a render node when
    /// its DRM module is not loaded.
    pub nvidia_devices: usize,
    pub linux: bool,
}

pub fn choose(f: &Facts) -> Graphics {
    let mut g = by_system(f);
    match f.forced.as_deref().map(str::trim) {
        Some("webgl") => {
            g.webgl = true;
            g.reason = format!("BETWEEN_VIDEO_RENDERER=webgl ({})", g.reason);
        }
        Some("2d") => {
            g.webgl = false;
            g.reason = format!("BETWEEN_VIDEO_RENDERER=2d ({})", g.reason);
        }
        _ => {}
    }
    g
}

fn by_system(f: &Facts) -> Graphics {
    let says = |gpu: bool, reason: &str| Graphics {
        webgl: gpu,
        software_gl: !gpu,
        reason: reason.to_string(),
    };
    if !f.linux {
        // macOS and Windows webviews always composite on the GPU.
        return says(true, "the system's webview draws on the GPU");
    }
    // Mesa's reading of a boolean variable: set and not one of its words for false.
    let on = |v: &Option<String>| {
        v.as_deref().is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            !matches!(v.as_str(), "0" | "n" | "no" | "f" | "false")
        })
    };
    if on(&f.libgl_always_software) {
        return says(false, "LIBGL_ALWAYS_SOFTWARE is set: GL is software");
    }
    if matches!(
        f.gallium_driver.as_deref().map(str::trim),
        Some("llvmpipe" | "softpipe")
    ) {
        return says(false, "GALLIUM_DRIVER picks a software rasteriser");
    }
    if f.nvidia_devices > 0 {
        return says(true, "NVIDIA's driver is present");
    }
    if f.render_nodes == 0 {
        return says(
            false,
            "no GPU render node this user can open (/dev/dri/renderD*): GL is software",
        );
    }
    // A virtual GPU without 3D (virtio-gpu without virgl) also has a render node and then
    // falls back to software GL: BETWEEN_VIDEO_RENDERER=2d is the way out there.
    says(true, "a GPU render node is present")
}

fn facts() -> Facts {
    let var = |k: &str| std::env::var(k).ok();
    let count = |dir: &str, wanted: &dyn Fn(&str) -> bool, openable: bool| {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| wanted(&e.file_name().to_string_lossy()))
                    // Without access (no `render` group, a session off the seat) GL cannot
                    // use the node either.
                    .filter(|e| {
                        !openable
                            || std::fs::OpenOptions::new()
                                .read(true)
                                .write(true)
                                .open(e.path())
                                .is_ok()
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let render_nodes = count("/dev/dri", &|n| n.starts_with("renderD"), true);
    let nvidia_devices = count(
        "/dev",
        &|n| {
            n.strip_prefix("nvidia")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        },
        false,
    );
    Facts {
        forced: var("BETWEEN_VIDEO_RENDERER"),
        libgl_always_software: var("LIBGL_ALWAYS_SOFTWARE"),
        gallium_driver: var("GALLIUM_DRIVER"),
        render_nodes,
        nvidia_devices,
        linux: cfg!(target_os = "linux"),
    }
}

/// How to draw, decided once per start.
pub fn decided() -> Graphics {
    static CHOSEN: std::sync::OnceLock<Graphics> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let g = choose(&facts());
            tracing::info!(webgl = g.webgl, software_gl = g.software_gl, reason = %g.reason, "drawing");
            g
        })
        .clone()
}

/// `app_graphics`: how the page should draw video.
#[tauri::command]
pub fn app_graphics() -> Graphics {
    decided()
}

/// Turns WebKit's compositing mode off for `window` under software GL (what
/// `WEBKIT_DISABLE_COMPOSITING_MODE=1` does for a whole process). Windows are made before the
/// app's setup runs, and the setting also applies to a page already loading.
pub fn fit_window<R: tauri::Runtime>(window: &tauri::WebviewWindow<R>) {
    if !decided().software_gl {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let applied = window.with_webview(|webview| {
            use webkit2gtk::{SettingsExt, WebViewExt};
            if let Some(settings) = WebViewExt::settings(&webview.inner()) {
                settings.set_hardware_acceleration_policy(
                    webkit2gtk::HardwareAccelerationPolicy::Never,
                );
            }
        });
        if let Err(e) = applied {
            tracing::warn!(error = %e, "could not turn WebKit's compositing off");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = window;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(render_nodes: usize) -> Facts {
        Facts {
            render_nodes,
            linux: true,
            ..Facts::default()
        }
    }

    #[test]
    fn a_gpu_draws_with_webgl_and_software_gl_with_2d() {
        assert!(choose(&linux(1)).webgl);
        assert!(!choose(&linux(0)).webgl);
        let soft = Facts {
            libgl_always_software: Some("1".into()),
            ..linux(1)
        };
        assert!(!choose(&soft).webgl);
        for word in ["0", "no", "FALSE", "f"] {
            let off = Facts {
                libgl_always_software: Some(word.into()),
                ..linux(1)
            };
            assert!(choose(&off).webgl, "{word}");
        }
        let nvidia = Facts {
            nvidia_devices: 1,
            ..linux(0)
        };
        assert!(choose(&nvidia).webgl);
        let llvmpipe = Facts {
            gallium_driver: Some("llvmpipe".into()),
            ..linux(1)
        };
        assert!(!choose(&llvmpipe).webgl);
        assert!(
            choose(&Facts {
                linux: false,
                ..Facts::default()
            })
            .webgl
        );
    }

    #[test]
    fn the_override_wins() {
        let forced = |v: &str, nodes| Facts {
            forced: Some(v.into()),
            ..linux(nodes)
        };
        let webgl = choose(&forced("webgl", 0));
        assert!(webgl.webgl);
        // Only the video path: the window still draws the software-GL way.
        assert!(webgl.software_gl);
        assert!(!choose(&forced("2d", 1)).webgl);
        assert!(!choose(&forced("2d", 1)).software_gl);
        // Anything else is no override.
        assert!(choose(&forced("fast", 1)).webgl);
    }
}
