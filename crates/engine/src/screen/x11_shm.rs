//! Pictures through MIT-SHM without `unsafe`: the X server writes each picture into a memory
//! file (memfd) this process handed it (MIT-SHM 1.2 `AttachFd`), and the capture reads the
//! file with `pread` instead of mapping it. Against GetImage this saves the server writing 8 MB
//! into the socket and this process reading it back in pieces into a fresh buffer (with a page
//! fault per 4 KiB) for every 1080p picture: `between bench screen` has the figures.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use x11rb::connection::Connection;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{Drawable, ImageFormat};
use x11rb::rust_connection::RustConnection;

pub(super) struct SharedImage {
    segment: u32,
    file: File,
    capacity: usize,
    pixels: Vec<u8>,
}

impl SharedImage {
    /// A buffer for pictures of up to `capacity` bytes; `None` where the server cannot take a
    /// memory file (no MIT-SHM 1.2, or a display over the network), and GetImage it is.
    pub fn new(conn: &RustConnection, capacity: usize) -> Option<Self> {
        let version = conn.shm_query_version().ok()?.reply().ok()?;
        if (version.major_version, version.minor_version) < (1, 2) {
            return None;
        }
        let fd =
            rustix::fs::memfd_create("between-screen", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
        let file = File::from(fd);
        file.set_len(capacity as u64).ok()?;
        let segment = conn.generate_id().ok()?;
        let for_server = OwnedFd::from(file.try_clone().ok()?);
        // Not read-only: the server writes the pictures into it.
        conn.shm_attach_fd(segment, for_server, false)
            .ok()?
            .check()
            .ok()?;
        Some(Self {
            segment,
            file,
            capacity,
            pixels: Vec::new(),
        })
    }

    /// A rectangle of `drawable` as 32-bit ZPixmap rows; `None` when the server refused (the
    /// caller falls back to GetImage) or the rectangle does not fit.
    pub fn get(
        &mut self,
        conn: &RustConnection,
        drawable: Drawable,
        (x, y, width, height): (i16, i16, u16, u16),
    ) -> Option<&[u8]> {
        let len = usize::from(width) * usize::from(height) * 4;
        if len > self.capacity {
            return None;
        }
        let reply = conn
            .shm_get_image(
                drawable,
                x,
                y,
                width,
                height,
                !0,
                ImageFormat::Z_PIXMAP.into(),
                self.segment,
                0,
            )
            .ok()?
            .reply()
            .ok()?;
        if (reply.size as usize) < len {
            return None;
        }
        // Kept between pictures: a fresh 8 MB buffer per picture costs two thousand page faults.
        self.pixels.resize(len, 0);
        self.file.read_exact_at(&mut self.pixels, 0).ok()?;
        Some(&self.pixels)
    }
}
