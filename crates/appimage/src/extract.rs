//! Unpacking an AppImage's image into a folder, keeping modes and symbolic links.

use crate::{Error, Result};
use backhand::{FilesystemReader, InnerNode};
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Unpacks the image that starts at `offset` in `appimage` into `dest` (made if missing).
/// Only paths under `only` (relative to the image's top) when given. Returns the number of
/// files written.
pub fn extract(appimage: &Path, offset: u64, dest: &Path, only: Option<&Path>) -> Result<usize> {
    let file = std::fs::File::open(appimage).map_err(Error::io(appimage))?;
    let damaged = |e: backhand::BackhandError| Error::Damaged {
        path: appimage.to_path_buf(),
        why: format!("its app image cannot be read ({e}); download it again"),
    };
    let fs =
        FilesystemReader::from_reader_with_offset(BufReader::new(file), offset).map_err(damaged)?;
    std::fs::create_dir_all(dest).map_err(Error::io(dest))?;
    let mut written = 0;
    // Folders get their own modes last: a read-only folder must first be filled.
    let mut folders = Vec::new();
    for node in fs.files() {
        let Some(rel) = relative(&node.fullpath) else {
            return Err(Error::Damaged {
                path: appimage.to_path_buf(),
                why: format!(
                    "its image names a path outside itself: {}",
                    node.fullpath.display()
                ),
            });
        };
        if let Some(only) = only
            && !(rel.starts_with(only) || only.starts_with(&rel))
        {
            continue;
        }
        let target = dest.join(&rel);
        let mode = u32::from(node.header.permissions);
        match &node.inner {
            InnerNode::Dir(_) => {
                std::fs::create_dir_all(&target).map_err(Error::io(&target))?;
                folders.push((target, mode));
            }
            InnerNode::File(f) => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                let _ = std::fs::remove_file(&target);
                let mut out = std::fs::File::create(&target).map_err(Error::io(&target))?;
                let mut reader = fs.file(f).reader_checked().map_err(damaged)?;
                std::io::copy(&mut reader, &mut out).map_err(|e| Error::Damaged {
                    path: appimage.to_path_buf(),
                    why: format!(
                        "{} cannot be unpacked ({e}); download it again",
                        rel.display()
                    ),
                })?;
                out.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(Error::io(&target))?;
                written += 1;
            }
            InnerNode::Symlink(link) => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
                }
                let _ = std::fs::remove_file(&target);
                std::os::unix::fs::symlink(&link.link, &target).map_err(Error::io(&target))?;
            }
            // Devices, pipes and sockets have no place in an app's folder; the packer never
            // writes them.
            _ => {}
        }
    }
    for (folder, mode) in folders.into_iter().rev() {
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io(&folder))?;
    }
    Ok(written)
}

/// The image path below its top, refusing anything that climbs out (`..`).
fn relative(path: &Path) -> Option<PathBuf> {
    let mut rel = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => rel.push(part),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(rel)
}

#[cfg(test)]
mod tests {
    use super::relative;
    use std::path::{Path, PathBuf};

    #[test]
    fn paths_stay_inside_the_destination() {
        assert_eq!(
            relative(Path::new("/usr/bin/x")),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(relative(Path::new("/")), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("/usr/../../etc/passwd")), None);
    }
}
