//! A window on an X display that shows exactly the pixels it is given: the known picture the
//! screen-sharing tests compare a received share with, and the changing counter
//! `between bench screen` times. The picture is the window's background pixmap, so the X
//! server repaints it by itself whenever the window is exposed.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, PropMode, WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// Rows per PutImage request: well under the core protocol's 256 KiB request limit.
const STRIP_BYTES: usize = 128 * 1024;

pub struct PictureWindow {
    conn: RustConnection,
    window: u32,
    pixmap: u32,
    gc: u32,
    pub width: u16,
    pub height: u16,
}

fn x11(e: impl std::fmt::Display) -> String {
    format!("X11: {e}")
}

impl PictureWindow {
    /// Opens a mapped, titled `width`x`height` window at (`x`, `y`) on `display`.
    pub fn open(
        display: &str,
        (x, y): (i16, i16),
        (width, height): (u16, u16),
        title: &str,
    ) -> Result<Self, String> {
        let (conn, screen_num) = x11rb::connect(Some(display)).map_err(x11)?;
        let screen = &conn.setup().roots[screen_num];
        let (root, depth) = (screen.root, screen.root_depth);
        let window = conn.generate_id().map_err(x11)?;
        let pixmap = conn.generate_id().map_err(x11)?;
        let gc = conn.generate_id().map_err(x11)?;
        conn.create_pixmap(depth, pixmap, root, width, height)
            .map_err(x11)?;
        conn.create_gc(gc, pixmap, &CreateGCAux::new())
            .map_err(x11)?;
        conn.create_window(
            depth,
            window,
            root,
            x,
            y,
            width,
            height,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            // Without a window manager nobody would place it: override-redirect keeps it
            // exactly where asked.
            &CreateWindowAux::new()
                .background_pixmap(pixmap)
                .override_redirect(0),
        )
        .map_err(x11)?;
        conn.change_property8(
            PropMode::REPLACE,
            window,
            x11rb::protocol::xproto::AtomEnum::WM_NAME,
            x11rb::protocol::xproto::AtomEnum::STRING,
            title.as_bytes(),
        )
        .map_err(x11)?;
        conn.map_window(window).map_err(x11)?;
        let picture = Self {
            conn,
            window,
            pixmap,
            gc,
            width,
            height,
        };
        picture.sync()?;
        Ok(picture)
    }

    /// The X window ID (share target `window:ID`).
    pub fn id(&self) -> u32 {
        self.window
    }

    /// Shows `bgrx` (4 bytes per pixel, rows of `width`), and returns once the server has
    /// drawn it.
    pub fn show(&self, bgrx: &[u8]) -> Result<(), String> {
        let row = usize::from(self.width) * 4;
        if bgrx.len() != row * usize::from(self.height) {
            return Err(format!(
                "picture has {} bytes, the window needs {}",
                bgrx.len(),
                row * usize::from(self.height)
            ));
        }
        let depth = self.conn.setup().roots[0].root_depth;
        let rows_per_strip = (STRIP_BYTES / row).max(1);
        for (i, strip) in bgrx.chunks(row * rows_per_strip).enumerate() {
            let y = (i * rows_per_strip) as i16;
            let rows = (strip.len() / row) as u16;
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    self.pixmap,
                    self.gc,
                    self.width,
                    rows,
                    0,
                    y,
                    0,
                    depth,
                    strip,
                )
                .map_err(x11)?;
        }
        self.conn
            .clear_area(false, self.window, 0, 0, 0, 0)
            .map_err(x11)?;
        self.sync()
    }

    /// Moves the window (a moved window's share follows it).
    pub fn move_to(&self, x: i32, y: i32) -> Result<(), String> {
        self.conn
            .configure_window(
                self.window,
                &x11rb::protocol::xproto::ConfigureWindowAux::new().x(x).y(y),
            )
            .map_err(x11)?;
        self.sync()
    }

    /// Closes the window (a share of it ends).
    pub fn destroy(&self) -> Result<(), String> {
        self.conn.destroy_window(self.window).map_err(x11)?;
        self.sync()
    }

    /// A round trip: everything sent before has been processed.
    fn sync(&self) -> Result<(), String> {
        self.conn.flush().map_err(x11)?;
        self.conn
            .get_input_focus()
            .map_err(x11)?
            .reply()
            .map(drop)
            .map_err(x11)
    }
}

impl Drop for PictureWindow {
    fn drop(&mut self) {
        let _ = self.conn.free_pixmap(self.pixmap);
        let _ = self.conn.free_gc(self.gc);
        let _ = self.conn.flush();
    }
}

/// [`test_picture`] as a share of it should arrive: converted as the engine converts screens.
pub fn test_picture_i420(width: u16, height: u16) -> between_media::video::I420Frame {
    use between_media::screen::{PixelLayout, ScreenPixels, to_i420};
    let bgrx = test_picture(width, height);
    to_i420(&ScreenPixels {
        width: width.into(),
        height: height.into(),
        stride: usize::from(width) * 4,
        layout: PixelLayout::Bgrx,
        data: &bgrx,
    })
    .unwrap_or_else(|e| panic!("the test picture converts: {e}"))
}

/// A picture with what makes a share hard: fine one-pixel strokes (like text) over smooth
/// colour gradients. BGRX, `width`x`height`.
pub fn test_picture(width: u16, height: u16) -> Vec<u8> {
    let (w, h) = (u32::from(width), u32::from(height));
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let stroke = (x / 3 + y / 5) % 7 == 0 || (x % 40 < 2 && y % 24 < 16);
            let (r, g, b) = if stroke {
                (20, 20, 20)
            } else {
                ((x * 255 / w) as u8, (y * 255 / h) as u8, 160)
            };
            out.extend_from_slice(&[b, g, r, 0]);
        }
    }
    out
}
