//! X11 capture: GetImage of a region of the root window. A monitor is its RandR region; a
//! window is the region it covers on screen (what the viewer sees there, as with any X11
//! capture without a compositor), followed as it moves or resizes. The share ends when the
//! window is destroyed or the display goes away.
//!
//! The DAMAGE extension says when anything on screen changed; until it does, the last
//! picture is given again without asking the server (a static screen costs next to nothing).
//! Changed pictures come through MIT-SHM where the server takes a memory file (Linux, a local
//! display: `x11_shm`), else through GetImage on the socket (BENCHMARKS.md,
//! `between bench screen`, has the costs).

use super::{SHARE_FPS, ScreenTarget, TargetKind, no_such_target, unsupported};
use crate::error::BAError;
use crate::media::sources::VideoSource;
use between_media::screen::{PixelLayout, ScreenPixels, to_i420};
use between_media::video::I420Frame;
use x11rb::NONE;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::damage::{ConnectionExt as _, ReportLevel};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, ImageFormat, ImageOrder, MapState, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

/// What a capture follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Fixed {
        x: i16,
        y: i16,
        width: u16,
        height: u16,
    },
    Window(Window),
}

pub(super) struct X11Capture {
    conn: RustConnection,
    root: Window,
    screen_size: (u16, u16),
    layout: PixelLayout,
    region: Region,
    /// The last picture: given again while nothing changed, or while a shared window is
    /// unmapped (minimised) rather than ending the share.
    last: Option<I420Frame>,
    /// Damage on the root window, where the server has DAMAGE; `None`: capture every time.
    damage: Option<u32>,
    /// Something changed since the last capture (or there is no way to know).
    changed: bool,
    #[cfg(target_os = "linux")]
    shm: Option<super::x11_shm::SharedImage>,
    /// MIT-SHM reads refused in a row (GetImage took over for those pictures).
    #[cfg(target_os = "linux")]
    shm_refusals: u8,
}

/// Connects to `display`, or to DISPLAY's.
fn connect(display: Option<&str>) -> Result<(RustConnection, usize), BAError> {
    if display.is_none() && std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
        return Err(unsupported(if wayland {
            "This Wayland desktop has no X11 display to capture (DISPLAY is not set). Let the app share through the desktop portal (unset BETWEEN_SCREEN_CAPTURE)."
        } else {
            "There is no display to share: DISPLAY is not set (no X11 desktop is running)."
        }));
    }
    x11rb::connect(display).map_err(|e| {
        unsupported(format!(
            "The X11 display could not be opened for sharing ({e}). Check that the desktop is running and DISPLAY is right."
        ))
    })
}

fn x11_error(e: impl std::fmt::Display) -> BAError {
    unsupported(format!("The X11 display refused the capture ({e})."))
}

/// The whole screen, each monitor (when there are several), then each window with a title.
pub(super) fn targets() -> Result<Vec<ScreenTarget>, BAError> {
    let (conn, screen_num) = connect(None)?;
    let screen = &conn.setup().roots[screen_num];
    let root = screen.root;
    let mut out = vec![ScreenTarget {
        id: "screen".into(),
        kind: TargetKind::Screen,
        name: "Entire screen".into(),
        width: screen.width_in_pixels.into(),
        height: screen.height_in_pixels.into(),
    }];
    let monitors = monitors(&conn, root);
    if monitors.len() > 1 {
        for (name, x, y, width, height) in monitors {
            out.push(ScreenTarget {
                id: format!("monitor:{x},{y},{width},{height}"),
                kind: TargetKind::Monitor,
                name,
                width: width.into(),
                height: height.into(),
            });
        }
    }
    for window in windows(&conn, root) {
        let Ok(Ok(geometry)) = conn.get_geometry(window).map(|c| c.reply()) else {
            continue;
        };
        let Some(name) = window_name(&conn, window) else {
            continue;
        };
        out.push(ScreenTarget {
            id: format!("window:{window}"),
            kind: TargetKind::Window,
            name,
            width: geometry.width.into(),
            height: geometry.height.into(),
        });
    }
    Ok(out)
}

/// RandR 1.5 monitors: name and region. Empty where RandR is missing.
fn monitors(conn: &RustConnection, root: Window) -> Vec<(String, i16, i16, u16, u16)> {
    let Ok(Ok(reply)) = conn
        .randr_get_monitors(root, true)
        .map(|cookie| cookie.reply())
    else {
        return Vec::new();
    };
    reply
        .monitors
        .iter()
        .map(|m| {
            let name = conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                .unwrap_or_else(|| "Monitor".into());
            (name, m.x, m.y, m.width, m.height)
        })
        .collect()
}

/// The window manager's client list (EWMH); without a window manager, the root's mapped
/// top-level windows.
fn windows(conn: &RustConnection, root: Window) -> Vec<Window> {
    if let Some(atom) = atom(conn, b"_NET_CLIENT_LIST")
        && let Ok(Ok(reply)) = conn
            .get_property(false, root, atom, AtomEnum::WINDOW, 0, 4096)
            .map(|c| c.reply())
        && let Some(list) = reply.value32()
    {
        let list: Vec<Window> = list.collect();
        if !list.is_empty() {
            return list;
        }
    }
    let Ok(Ok(tree)) = conn.query_tree(root).map(|c| c.reply()) else {
        return Vec::new();
    };
    tree.children
        .into_iter()
        .filter(|&w| {
            conn.get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| {
                    a.map_state == MapState::VIEWABLE
                        && a.class == WindowClass::INPUT_OUTPUT
                        && !a.override_redirect
                })
        })
        .collect()
}

fn atom(conn: &RustConnection, name: &[u8]) -> Option<u32> {
    conn.intern_atom(true, name)
        .ok()?
        .reply()
        .ok()
        .map(|r| r.atom)
        .filter(|&a| a != 0)
}

fn window_name(conn: &RustConnection, window: Window) -> Option<String> {
    let utf8 = atom(conn, b"UTF8_STRING");
    let net_name = atom(conn, b"_NET_WM_NAME");
    let candidates = [
        net_name.zip(utf8),
        Some((AtomEnum::WM_NAME.into(), AtomEnum::STRING.into())),
    ];
    candidates.into_iter().flatten().find_map(|(prop, ty)| {
        let reply = conn
            .get_property(false, window, prop, ty, 0, 1024)
            .ok()?
            .reply()
            .ok()?;
        let name = String::from_utf8_lossy(&reply.value).trim().to_string();
        (!name.is_empty()).then_some(name)
    })
}

fn parse_target(id: &str) -> Option<Region> {
    if let Some(window) = id.strip_prefix("window:") {
        return window.parse().ok().map(Region::Window);
    }
    let rect = id.strip_prefix("monitor:")?;
    let mut parts = rect.split(',');
    let mut next = || parts.next();
    let region = Region::Fixed {
        x: next()?.parse().ok()?,
        y: next()?.parse().ok()?,
        width: next()?.parse().ok()?,
        height: next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(region)
}

impl X11Capture {
    /// Opens a capture of `target` on `display` (None: DISPLAY's).
    pub fn open(display: Option<&str>, target: Option<&str>) -> Result<Self, BAError> {
        let (conn, screen_num) = connect(display)?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_num];
        let root = screen.root;
        let screen_size = (screen.width_in_pixels, screen.height_in_pixels);
        let bpp = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == screen.root_depth)
            .map(|f| f.bits_per_pixel);
        if bpp != Some(32) {
            return Err(unsupported(format!(
                "This X11 screen uses {} bits per pixel (depth {}); sharing needs a 24- or 32-bit colour screen.",
                bpp.unwrap_or(0),
                screen.root_depth
            )));
        }
        let layout = if setup.image_byte_order == ImageOrder::LSB_FIRST {
            PixelLayout::Bgrx
        } else {
            PixelLayout::Xrgb
        };
        let region = match target {
            None | Some("screen") => Region::Fixed {
                x: 0,
                y: 0,
                width: screen_size.0,
                height: screen_size.1,
            },
            Some(id) => parse_target(id).ok_or_else(|| no_such_target(id))?,
        };
        let damage = watch_damage(&conn, root);
        // Any rectangle read is clipped to the screen, so a screen-sized buffer holds it.
        #[cfg(target_os = "linux")]
        let shm = super::x11_shm::SharedImage::new(
            &conn,
            usize::from(screen_size.0) * usize::from(screen_size.1) * 4,
        );
        #[cfg(target_os = "linux")]
        tracing::debug!(mit_shm = shm.is_some(), "X11 capture");
        let mut capture = Self {
            conn,
            root,
            screen_size,
            layout,
            region,
            last: None,
            damage,
            changed: true,
            #[cfg(target_os = "linux")]
            shm,
            #[cfg(target_os = "linux")]
            shm_refusals: 0,
        };
        // Fail now, with a reason, rather than as a share that ends at once.
        match capture.grab() {
            Ok(Some(frame)) => capture.last = Some(frame),
            Ok(None) => return Err(no_such_target(target.unwrap_or("screen"))),
            Err(e) => return Err(e),
        }
        Ok(capture)
    }

    /// The on-screen rectangle to read now, clipped to the screen; `None` when a window is
    /// gone, `Some(None)` when it is not visible (unmapped or off screen).
    fn rectangle(&self) -> Option<Option<(i16, i16, u16, u16)>> {
        let (x, y, w, h) = match self.region {
            Region::Fixed {
                x,
                y,
                width,
                height,
            } => (
                i32::from(x),
                i32::from(y),
                i32::from(width),
                i32::from(height),
            ),
            Region::Window(window) => {
                let attributes = self.conn.get_window_attributes(window).ok()?.reply().ok()?;
                if attributes.map_state != MapState::VIEWABLE {
                    return Some(None);
                }
                let geometry = self.conn.get_geometry(window).ok()?.reply().ok()?;
                let origin = self
                    .conn
                    .translate_coordinates(window, self.root, 0, 0)
                    .ok()?
                    .reply()
                    .ok()?;
                (
                    i32::from(origin.dst_x),
                    i32::from(origin.dst_y),
                    i32::from(geometry.width),
                    i32::from(geometry.height),
                )
            }
        };
        let (sw, sh) = (i32::from(self.screen_size.0), i32::from(self.screen_size.1));
        let (x0, y0) = (x.clamp(0, sw), y.clamp(0, sh));
        let (x1, y1) = ((x + w).clamp(0, sw), (y + h).clamp(0, sh));
        if x1 - x0 < 2 || y1 - y0 < 2 {
            return Some(None);
        }
        Some(Some((
            x0 as i16,
            y0 as i16,
            (x1 - x0) as u16,
            (y1 - y0) as u16,
        )))
    }

    /// One picture; `Ok(None)` when the shared window is gone.
    fn grab(&mut self) -> Result<Option<I420Frame>, BAError> {
        let Some(rect) = self.rectangle() else {
            return Ok(None);
        };
        let Some((x, y, width, height)) = rect else {
            return Ok(self.last.clone());
        };
        let layout = self.layout;
        let convert = |data: &[u8]| {
            to_i420(&ScreenPixels {
                width: width.into(),
                height: height.into(),
                stride: usize::from(width) * 4,
                layout,
                data,
            })
            .map(Some)
            .map_err(x11_error)
        };
        #[cfg(target_os = "linux")]
        if let Some(shm) = self.shm.as_mut() {
            if let Some(data) = shm.get(&self.conn, self.root, (x, y, width, height)) {
                self.shm_refusals = 0;
                return convert(data);
            }
            // One refusal can be a window caught mid-move; several mean the server will not.
            self.shm_refusals += 1;
            if self.shm_refusals >= 3 {
                tracing::debug!("MIT-SHM capture refused; reading through the socket from now on");
                self.shm = None;
            }
        }
        let image = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, x, y, width, height, !0)
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?;
        convert(&image.data)
    }
}

/// Asks for DAMAGE reports on the whole screen (any change makes the region non-empty).
fn watch_damage(conn: &RustConnection, root: Window) -> Option<u32> {
    conn.damage_query_version(1, 1).ok()?.reply().ok()?;
    let damage = conn.generate_id().ok()?;
    conn.damage_create(damage, root, ReportLevel::NON_EMPTY)
        .ok()?
        .check()
        .ok()?;
    Some(damage)
}

impl X11Capture {
    /// Reads the damage reports that came in: whether anything changed since the last
    /// capture (without clearing it).
    fn poll_damage(&mut self) -> bool {
        if self.damage.is_none() {
            return true;
        }
        loop {
            match self.conn.poll_for_event() {
                Ok(Some(Event::DamageNotify(_))) => self.changed = true,
                Ok(Some(_)) => {}
                Ok(None) => break,
                // A broken connection: capture, and let the capture report it.
                Err(_) => return true,
            }
        }
        self.changed
    }

    /// Whether the screen changed since the last capture; clears the damage it read.
    fn take_change(&mut self) -> bool {
        let Some(damage) = self.damage else {
            return true;
        };
        if !self.poll_damage() {
            return false;
        }
        self.changed = false;
        // Cleared before capturing: a change during the capture is reported again.
        let _ = self.conn.damage_subtract(damage, NONE, NONE);
        let _ = self.conn.flush();
        true
    }
}

impl VideoSource for X11Capture {
    fn read_frame(&mut self) -> Option<I420Frame> {
        // A window that moved changes no pixels of its own but is still damage on the root,
        // so the root's damage covers every target.
        if !self.take_change()
            && let Some(last) = &self.last
        {
            return Some(last.clone());
        }
        match self.grab() {
            Ok(Some(frame)) => {
                self.last = Some(frame.clone());
                Some(frame)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::info!(error = %e.message, "screen capture ended");
                None
            }
        }
    }

    fn frame_rate(&self) -> f64 {
        SHARE_FPS
    }

    fn changed(&mut self) -> bool {
        self.last.is_none() || self.poll_damage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ids_parse() {
        assert_eq!(
            parse_target("window:4194305"),
            Some(Region::Window(4194305))
        );
        assert_eq!(
            parse_target("monitor:1920,0,1280,1024"),
            Some(Region::Fixed {
                x: 1920,
                y: 0,
                width: 1280,
                height: 1024
            })
        );
        for bad in [
            "window:",
            "window:x",
            "monitor:1,2,3",
            "monitor:1,2,3,4,5",
            "tab:1",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }
}
