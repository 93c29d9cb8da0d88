//! How the page draws video: WebGL (I420 → RGB in a shader) where the GPU does the work, 2D
//! where "WebGL" would be Mesa's software rasteriser. Measured here under software GL
//! (`between bench app`, 3 tiles of 720p30): WebGL drew 26.4 frames/s per tile with WebKit's
//! process at 88 % of a core and 179 MiB idle; 2D drew 29.7/s at 55 % and 123 MiB (the
//! software rasteriser compiles shaders with LLVM and keeps its buffers). WebKit hides the
//! real renderer name from the page ("Apple GPU"), so the app decides.

use serde::Serialize;

/// What the page is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Graphics {
    pub webgl: bool,
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
    /// GPU render nodes (`/dev/dri/renderD*`); Linux only.
    pub render_nodes: usize,
    pub linux: bool,
}

pub fn choose(f: &Facts) -> Graphics {
    let says = |webgl: bool, reason: &str| Graphics {
        webgl,
        reason: reason.to_string(),
    };
    match f.forced.as_deref().map(str::trim) {
        Some("webgl") => return says(true, "BETWEEN_VIDEO_RENDERER=webgl"),
        Some("2d") => return says(false, "BETWEEN_VIDEO_RENDERER=2d"),
        _ => {}
    }
    if !f.linux {
        // macOS and Windows webviews always composite on the GPU.
        return says(true, "the system's webview draws on the GPU");
    }
    let on = |v: &Option<String>| {
        v.as_deref()
            .is_some_and(|v| !matches!(v.trim(), "" | "0" | "false"))
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
    if f.render_nodes == 0 {
        return says(
            false,
            "no GPU render node (/dev/dri/renderD*): GL is software",
        );
    }
    says(true, "a GPU render node is present")
}

fn facts() -> Facts {
    let var = |k: &str| std::env::var(k).ok();
    let render_nodes = std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("renderD"))
                .count()
        })
        .unwrap_or(0);
    Facts {
        forced: var("BETWEEN_VIDEO_RENDERER"),
        libgl_always_software: var("LIBGL_ALWAYS_SOFTWARE"),
        gallium_driver: var("GALLIUM_DRIVER"),
        render_nodes,
        linux: cfg!(target_os = "linux"),
    }
}

/// `app_graphics`: how to draw video, decided once per start.
#[tauri::command]
pub fn app_graphics() -> Graphics {
    static CHOSEN: std::sync::OnceLock<Graphics> = std::sync::OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let g = choose(&facts());
            tracing::info!(webgl = g.webgl, reason = %g.reason, "video drawing");
            g
        })
        .clone()
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
        let off = Facts {
            libgl_always_software: Some("0".into()),
            ..linux(1)
        };
        assert!(choose(&off).webgl);
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
        assert!(choose(&forced("webgl", 0)).webgl);
        assert!(!choose(&forced("2d", 1)).webgl);
        // Anything else is no override.
        assert!(choose(&forced("fast", 1)).webgl);
    }
}
