//! The unpacked copy of an AppImage in the user's cache: made once per distinct image, in a
//! folder named after it, so later starts skip unpacking and a new version never runs an old
//! copy's files.

use crate::extract::extract;
use crate::{Error, Result};
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Marks a copy as complete; a copy without it was interrupted and is made again.
const COMPLETE: &str = ".between-appimage-complete";
/// The SquashFS superblock (size, time, table places) and the tail of the image, where its
/// inode, folder and fragment tables are: any change to the files changes these.
const SUPERBLOCK: u64 = 96;
const TAIL: u64 = 256 * 1024;

/// A name for the image at `offset` in `appimage` that changes whenever its contents do.
pub fn image_key(appimage: &Path, offset: u64) -> Result<String> {
    let mut file = std::fs::File::open(appimage).map_err(Error::io(appimage))?;
    let len = file.metadata().map_err(Error::io(appimage))?.len();
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write_u64(len - offset.min(len));
    let mut buf = vec![0u8; SUPERBLOCK as usize];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(Error::io(appimage))?;
    hasher.write(&buf);
    let tail_start = len.saturating_sub(TAIL).max(offset);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(tail_start))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(Error::io(appimage))?;
    hasher.write(&tail);
    Ok(format!("{:016x}", hasher.finish()))
}

/// The folder all unpacked copies live in: `$XDG_CACHE_HOME/between/appimage`, else
/// `~/.cache/...`, else the temporary folder.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("between").join("appimage")
}

/// The unpacked copy of the image, made now if there is none yet. Two starts at once both
/// unpack into folders of their own; the first to finish is kept. Copies of other images
/// (older versions) are removed once this one is complete.
pub fn unpacked(appimage: &Path, offset: u64, root: &Path) -> Result<(PathBuf, bool)> {
    let key = image_key(appimage, offset)?;
    let dir = root.join(&key);
    if dir.join(COMPLETE).is_file() {
        return Ok((dir, false));
    }
    std::fs::create_dir_all(root).map_err(Error::io(root))?;
    let partial = root.join(format!(".{key}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let made = extract(appimage, offset, &partial, None)
        .and_then(|_| std::fs::write(partial.join(COMPLETE), b"").map_err(Error::io(&partial)));
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    // A copy left incomplete by an interrupted start is replaced.
    if dir.exists() && !dir.join(COMPLETE).is_file() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if std::fs::rename(&partial, &dir).is_err() {
        // Another start finished first: use its copy.
        let _ = std::fs::remove_dir_all(&partial);
        if !dir.join(COMPLETE).is_file() {
            return Err(Error::Io {
                path: dir,
                source: std::io::Error::other("could not put the unpacked app in place"),
            });
        }
        return Ok((dir, false));
    }
    prune(root, &key);
    Ok((dir, true))
}

/// Removes the copies of other images. A copy is only a cache: anything left behind here is
/// made again when needed.
fn prune(root: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_copy = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        // ".KEY.partial-PID" of a start that died while unpacking.
        let abandoned = name
            .rsplit_once(".partial-")
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if (is_copy && name != keep) || abandoned {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
