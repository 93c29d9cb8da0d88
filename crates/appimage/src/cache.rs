//! The unpacked copy of an AppImage in the user's cache: made once per distinct image, in a
//! folder named after it, so later starts skip unpacking and a new version never runs an old
//! copy's files.
//!
//! Every start holds a shared lock on its copy's lock file for as long as the app runs (the
//! descriptor survives exec into AppRun and the app; programs the app starts inherit it too,
//! which only keeps the copy a little longer), so a copy is only ever removed when nothing
//! runs from it: removal takes the lock exclusively, renames the copy out of the way (a start
//! sees a whole copy or none), lets go of the lock, then deletes.

use crate::extract::extract;
use crate::{Error, Result};
use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Written last, after every file is on disk, listing each file's size ("SIZE PATH" lines):
/// a copy without it, or whose files no longer have those sizes (cut short by a crash, or by
/// a disk cleaner), is unpacked again.
const COMPLETE: &str = ".between-appimage-complete";
const LOCK: &str = ".between-appimage-lock";
/// Copies of other images are kept this long after their last start: switching between two
/// versions does not unpack each time.
const KEEP_UNUSED: Duration = Duration::from_secs(24 * 3600);
/// Unpacking takes well under a minute; a partial copy this old whose lock is free belongs to
/// a start that died (the age also covers the moment before a start locks its partial copy).
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

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

/// What the cache holds for an image.
enum Found {
    Whole(Copy),
    /// Not there, or being removed.
    Nothing,
    /// There, but incomplete or with files cut short.
    Damaged,
}

/// The unpacked copy of the image at `offset` in `image` (the AppImage, opened), made now if
/// there is none yet or it is damaged. Two starts at once both unpack into folders of their
/// own; the first to finish is kept. Copies of other images no longer in use are removed.
pub fn unpacked(image: &mut File, offset: u64, root: &Path) -> Result<Copy> {
    private_folder(root)?;
    let key = image_key(image, offset).map_err(Error::io(root))?;
    let dir = root.join(&key);
    let copy = match existing(&dir)? {
        Found::Whole(copy) => copy,
        Found::Nothing => make(image, offset, root, &key)?,
        Found::Damaged => {
            if !take_away(&dir, Duration::ZERO) {
                return Err(Error::Damaged {
                    path: dir,
                    why: "this unpacked copy of the app is damaged and another start of it is \
                          still running; close Between and start it again"
                        .into(),
                });
            }
            make(image, offset, root, &key)?
        }
    };
    prune(root, &key);
    Ok(copy)
}

/// The copy at `dir`, locked, if there is a whole one.
fn existing(dir: &Path) -> Result<Found> {
    let lock_path = dir.join(LOCK);
    let lock = match File::open(&lock_path) {
        Ok(lock) => lock,
        Err(_) if dir.exists() => return Ok(Found::Damaged),
        Err(_) => return Ok(Found::Nothing),
    };
    // Waits only while a removal holds it, which moves the copy away at once.
    flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
        path: lock_path.clone(),
        source: e.into(),
    })?;
    // Checked under the lock: a copy removed meanwhile is no longer at `dir`, or another has
    // taken its place (then this lock is on the old one's file).
    match (lock.metadata(), std::fs::metadata(&lock_path)) {
        (Ok(held), Ok(now)) if held.dev() == now.dev() && held.ino() == now.ino() => {}
        _ => return Ok(Found::Nothing),
    }
    let marker = dir.join(COMPLETE);
    let Ok(listing) = std::fs::read_to_string(&marker) else {
        return Ok(Found::Damaged);
    };
    if !files_as_listed(dir, &listing) {
        return Ok(Found::Damaged);
    }
    // The last start's time, which tells a removal whether the copy is still wanted.
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&marker) {
        let _ = f.set_modified(SystemTime::now());
    }
    inheritable(&lock, dir)?;
    Ok(Found::Whole(Copy {
        dir: dir.to_path_buf(),
        fresh: false,
        _lock: lock,
    }))
}

/// Whether every file the marker lists is there with its size.
fn files_as_listed(dir: &Path, listing: &str) -> bool {
    listing.lines().filter(|l| !l.is_empty()).all(|line| {
        let Some((size, rel)) = line.split_once(' ') else {
            return false;
        };
        let listed: Option<u64> = size.parse().ok();
        let actual = std::fs::symlink_metadata(dir.join(rel))
            .ok()
            .map(|m| m.len());
        listed.is_some() && listed == actual
    })
}

/// The marker's lines for the files under `dir` (`under` is its path in the copy).
fn listing(dir: &Path, under: &Path, out: &mut String) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let kind = e.file_type()?;
        let rel = under.join(e.file_name());
        if kind.is_dir() {
            listing(&e.path(), &rel, out)?;
        } else if kind.is_file() && e.file_name() != LOCK {
            out.push_str(&format!("{} {}\n", e.metadata()?.len(), rel.display()));
        }
    }
    Ok(())
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
        let mut text = String::new();
        listing(&partial, Path::new(""), &mut text)
            .and_then(|_| std::fs::write(&marker, text))
            .and_then(|_| File::open(&marker)?.sync_all())
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
        // Another start put its copy in place first: use that one. A damaged one that
        // nothing runs from gives way to this one.
        match existing(&dir)? {
            Found::Whole(copy) => {
                discard(&partial);
                return Ok(copy);
            }
            Found::Damaged | Found::Nothing => {
                take_away(&dir, Duration::ZERO);
                if let Err(e) = std::fs::rename(&partial, &dir) {
                    discard(&partial);
                    return Err(Error::Io {
                        path: dir,
                        source: std::io::Error::other(format!(
                            "could not put the unpacked app in place ({e})"
                        )),
                    });
                }
            }
        }
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

/// Moves a folder out of the way and deletes it.
fn discard(dir: &Path) {
    remove(move_away(dir));
}

/// Renames a folder to `.trash-PID-NAME` (atomic: a start sees the whole copy or none) and
/// returns where it went.
fn move_away(dir: &Path) -> PathBuf {
    let Some(name) = dir.file_name() else {
        return dir.to_path_buf();
    };
    let trash = dir.with_file_name(format!(
        ".trash-{}-{}",
        std::process::id(),
        name.to_string_lossy()
    ));
    if std::fs::rename(dir, &trash).is_ok() {
        trash
    } else {
        dir.to_path_buf()
    }
}

fn remove(dir: PathBuf) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the folder if nothing holds its lock and it is older than `min_age`: moved away
/// under the lock, deleted after letting go of it (a start waiting for the lock finds the
/// folder gone at once instead of waiting for the deletion). Whether it was removed.
fn take_away(dir: &Path, min_age: Duration) -> bool {
    let Some(held) = lock_if_unused(dir, min_age) else {
        return false;
    };
    let trash = move_away(dir);
    drop(held);
    remove(trash);
    true
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
            remove(path);
        } else if is_copy && name != keep {
            let unused_since = std::fs::metadata(path.join(COMPLETE))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok());
            if unused_since.is_none_or(|d| d > KEEP_UNUSED) {
                take_away(&path, Duration::ZERO);
            }
        } else if name.contains(".partial-") {
            take_away(&path, ABANDONED_AFTER);
        }
    }
}

/// The folder's lock, taken exclusively, if nothing holds it and the folder is older than
/// `min_age`. `Some(None)`: a folder without a lock file (a start that died at once, or
/// damage), which nothing can hold.
fn lock_if_unused(dir: &Path, min_age: Duration) -> Option<Option<File>> {
    let age = std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or(Duration::ZERO);
    match File::open(dir.join(LOCK)) {
        Ok(lock) => (age >= min_age
            && flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok())
        .then_some(Some(lock)),
        Err(_) => (age >= min_age).then_some(None),
    }
}
