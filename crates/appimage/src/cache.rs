//! The unpacked copy of an AppImage in the user's cache: made once per distinct image, in a
//! folder named after it, so later starts skip unpacking and a new version never runs an old
//! copy's files.
//!
//! Every start holds a shared lock on its copy's `.lock` for as long as the app runs (the
//! descriptor survives exec into AppRun and the app), so a copy is only ever removed when
//! nothing runs from it: removal takes the lock exclusively, then renames the copy out of the
//! way before deleting it, so no start ever sees half a copy.

use crate::extract::extract;
use crate::{Error, Result};
use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Written last, after every file is on disk: a copy without it is not used.
const COMPLETE: &str = ".between-appimage-complete";
const LOCK: &str = ".between-appimage-lock";
/// Copies of other images are kept this long after their last start: switching between two
/// versions does not unpack each time.
const KEEP_UNUSED: Duration = Duration::from_secs(24 * 3600);

/// A name for the image at `offset` in `file` that changes whenever its contents do: a hash
/// of the whole image (about 10 ms for the app's).
pub fn image_key(file: &mut File, offset: u64) -> std::io::Result<String> {
    let mut hasher = std::hash::DefaultHasher::new();
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
    }
    Ok(format!("{:016x}", hasher.finish()))
}

/// The folder the unpacked copies live in: `$XDG_CACHE_HOME/between/appimage` (an absolute
/// XDG_CACHE_HOME, as the XDG spec wants), else `$HOME/.cache/...`, else a private folder in
/// the temporary folder.
pub fn cache_root() -> PathBuf {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(base) = std::env::var_os("XDG_CACHE_HOME").and_then(absolute) {
        return base.join("between").join("appimage");
    }
    if let Some(home) = std::env::var_os("HOME").and_then(absolute) {
        return home.join(".cache").join("between").join("appimage");
    }
    std::env::temp_dir().join(format!(
        "between-appimage-{}",
        rustix::process::getuid().as_raw()
    ))
}

/// A copy of the image, locked (shared) for as long as this process and what it execs live.
#[derive(Debug)]
pub struct Copy {
    pub dir: PathBuf,
    /// Unpacked by this start (not found in the cache).
    pub fresh: bool,
    _lock: File,
}

/// The unpacked copy of the image at `offset` in `image` (the AppImage, opened), made now if
/// there is none yet. Two starts at once both unpack into folders of their own; the first to
/// finish is kept. Copies of other images no longer in use are removed.
pub fn unpacked(image: &mut File, offset: u64, root: &Path) -> Result<Copy> {
    private_folder(root)?;
    let key = image_key(image, offset).map_err(Error::io(root))?;
    let dir = root.join(&key);
    let copy = match existing(&dir)? {
        Some(copy) => copy,
        None => make(image, offset, root, &key)?,
    };
    prune(root, &key);
    Ok(copy)
}

/// Unpacks a new copy of the image, replacing a broken one (`replace`).
pub fn unpack_again(image: &mut File, offset: u64, root: &Path, broken: Copy) -> Result<Copy> {
    let key = broken
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // Only if no other start runs from it; else it is left for them and reported.
    if flock(&broken._lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(Error::Damaged {
            path: broken.dir,
            why: "this unpacked copy of the app cannot start, and another start is using it".into(),
        });
    }
    discard(&broken.dir);
    drop(broken);
    make(image, offset, root, &key)
}

/// The complete copy at `dir`, locked, if there is one.
fn existing(dir: &Path) -> Result<Option<Copy>> {
    let Ok(lock) = File::open(dir.join(LOCK)) else {
        return Ok(None);
    };
    // Waits only while a removal holds it, which renames the copy away at once.
    flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
        path: dir.join(LOCK),
        source: e.into(),
    })?;
    // Checked under the lock: a copy removed meanwhile is no longer at `dir`.
    let marker = dir.join(COMPLETE);
    let Ok(marker_file) = std::fs::OpenOptions::new().write(true).open(&marker) else {
        return Ok(None);
    };
    // The last start's time, which tells a removal whether the copy is still wanted.
    let _ = marker_file.set_modified(SystemTime::now());
    inheritable(&lock, dir)?;
    Ok(Some(Copy {
        dir: dir.to_path_buf(),
        fresh: false,
        _lock: lock,
    }))
}

/// Unpacks into `.KEY.partial-PID`, makes it durable, then puts it in place as `KEY`.
fn make(image: &mut File, offset: u64, root: &Path, key: &str) -> Result<Copy> {
    let dir = root.join(key);
    let partial = root.join(format!(".{key}.partial-{}", std::process::id()));
    discard(&partial);
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&partial)
        .map_err(Error::io(&partial))?;
    let lock_path = partial.join(LOCK);
    let lock = File::create(&lock_path).map_err(Error::io(&lock_path))?;
    // Exclusive while unpacking: a removal of abandoned partial copies skips this one.
    flock(&lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
        path: lock_path.clone(),
        source: e.into(),
    })?;
    let made = extract(image, offset, &partial, None, true).and_then(|_| {
        let marker = partial.join(COMPLETE);
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(Error::io(&marker))
    });
    if let Err(e) = made {
        discard(&partial);
        return Err(e);
    }
    flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
        path: lock_path,
        source: e.into(),
    })?;
    if std::fs::rename(&partial, &dir).is_err() {
        // Another start put its copy in place first: use that one.
        discard(&partial);
        return existing(&dir)?.ok_or_else(|| Error::Io {
            path: dir,
            source: std::io::Error::other("could not put the unpacked app in place"),
        });
    }
    inheritable(&lock, &dir)?;
    Ok(Copy {
        dir,
        fresh: true,
        _lock: lock,
    })
}

/// Keeps the lock's descriptor open across exec, so the lock lasts as long as the app.
fn inheritable(lock: &File, dir: &Path) -> Result<()> {
    rustix::io::fcntl_setfd(lock, rustix::io::FdFlags::empty()).map_err(|e| Error::Io {
        path: dir.join(LOCK),
        source: e.into(),
    })
}

/// Makes the cache folder if needed and refuses one another user could plant files in.
fn private_folder(root: &Path) -> Result<()> {
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(root)(e)),
    }
    let meta = std::fs::symlink_metadata(root).map_err(Error::io(root))?;
    let unsafe_folder = |why: &str| Error::Io {
        path: root.to_path_buf(),
        source: std::io::Error::other(format!(
            "{why}, so the app will not run from it; set XDG_CACHE_HOME to a folder of your own"
        )),
    };
    if !meta.is_dir() {
        return Err(unsafe_folder("is not a folder"));
    }
    if meta.uid() != rustix::process::getuid().as_raw() {
        return Err(unsafe_folder("belongs to another user"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(unsafe_folder("can be written by other users"));
    }
    Ok(())
}

/// Moves a folder out of the way (atomically), then deletes it.
fn discard(dir: &Path) {
    let Some(name) = dir.file_name() else {
        return;
    };
    let trash = dir.with_file_name(format!(
        ".trash-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    let doomed = if std::fs::rename(dir, &trash).is_ok() {
        trash
    } else {
        dir.to_path_buf()
    };
    let _ = std::fs::remove_dir_all(doomed);
}

/// Removes copies of other images that nothing runs from and no start wanted for a day,
/// unpacking that was abandoned (its start died), and leftover trash. A copy is only a cache:
/// whatever is removed here is made again when needed.
fn prune(root: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let is_copy = name.len() == 16 && name.chars().all(|c| c.is_ascii_hexdigit());
        if name.starts_with(".trash-") {
            let _ = std::fs::remove_dir_all(&path);
        } else if is_copy && name != keep {
            let unused_since = std::fs::metadata(path.join(COMPLETE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            let stale = unused_since.is_none_or(|d| d > KEEP_UNUSED);
            if stale && let Some(_held) = lock_if_unused(&path) {
                discard(&path);
            }
        } else if name.contains(".partial-")
            && let Some(_held) = lock_if_unused(&path)
        {
            discard(&path);
        }
    }
}

/// The copy's lock, taken exclusively, if nothing holds it; the caller keeps it while it
/// moves the copy away. A partial copy that has no lock file yet counts as in use unless it
/// is an hour old.
fn lock_if_unused(dir: &Path) -> Option<Option<File>> {
    match File::open(dir.join(LOCK)) {
        Ok(lock) => flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .is_ok()
            .then_some(Some(lock)),
        Err(_) => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(3600))
            .then_some(None),
    }
}
