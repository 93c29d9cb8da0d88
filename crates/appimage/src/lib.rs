//! Between's AppImage: the packer that makes one and the runtime at the front of it.
//!
//! An AppImage (type 2) is an ELF executable, marked `AI\x02` at byte 8, with a SquashFS image
//! of the app's folder (the AppDir) appended right after the ELF's last byte. The usual
//! runtime mounts that image with FUSE; this one unpacks it once into the user's cache and
//! runs it from there, so the AppImage also starts on desktops without `libfuse2` (most new
//! ones) and the packer needs nothing from outside the crate registry (Tauri's bundler
//! downloads its AppImage tools from GitHub at bundle time).
//!
//! One executable is both: with an image appended it is the runtime, without one it is the
//! packer (`between-appimage pack APPDIR OUT`), which copies itself to the front of the
//! AppImage it writes.

pub mod appdir;
pub mod cache;
pub mod elf;
pub mod extract;
pub mod pack;
pub mod runtime;

use std::path::PathBuf;

/// What can go wrong packing, unpacking or starting an AppImage, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} is not a 64-bit little-endian ELF executable")]
    NotElf(PathBuf),
    #[error("{path} is damaged: {why}")]
    Damaged { path: PathBuf, why: String },
    #[error("{appdir} is not a complete AppDir: {why}")]
    AppDir { appdir: PathBuf, why: String },
    #[error("the SquashFS image: {0}")]
    Squashfs(#[from] backhand::BackhandError),
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
