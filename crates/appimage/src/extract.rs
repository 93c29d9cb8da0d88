//! Unpacking an AppImage's image into a folder, keeping modes and symbolic links, and never
//! writing outside that folder (through `..`, or through a symbolic link already there).

use crate::{Error, Result};
use backhand::{FilesystemReader, InnerNode};
use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Unpacks the image that starts at `offset` in `image` into `dest` (made if missing). With
/// `only`, just what matches it: a path in the image and what is under it, or a pattern with
/// `*` and `?` (as `'*.desktop'`). With `durable`, files are on disk when this returns.
/// Returns the number of files written.
pub fn extract(
    image: &File,
    offset: u64,
    dest: &Path,
    only: Option<&str>,
    durable: bool,
) -> Result<usize> {
    let damaged = |e: backhand::BackhandError| Error::Damaged {
        path: dest.to_path_buf(),
        why: format!("the AppImage's image cannot be read ({e}); download it again"),
    };
    let reader = BufReader::new(image.try_clone().map_err(Error::io(dest))?);
    let fs = FilesystemReader::from_reader_with_offset(reader, offset).map_err(damaged)?;
    make_folder(dest)?;
    let mut written = 0;
    let mut seen = HashSet::new();
    // Folders get their own modes last: a read-only folder must first be filled.
    let mut folders = Vec::new();
    for node in fs.files() {
        let Some(rel) = relative(&node.fullpath) else {
            return Err(Error::Damaged {
                path: dest.to_path_buf(),
                why: format!(
                    "the AppImage's image names a path outside itself: {}",
                    node.fullpath.display()
                ),
            });
        };
        if !seen.insert(rel.clone()) {
            return Err(Error::Damaged {
                path: dest.to_path_buf(),
                why: format!("the AppImage's image holds {} twice", rel.display()),
            });
        }
        if rel.as_os_str().is_empty() || !only.is_none_or(|o| selected(o, &rel)) {
            continue;
        }
        let target = safe_parents(dest, &rel)?;
        let mode = u32::from(node.header.permissions);
        match &node.inner {
            InnerNode::Dir(_) => {
                make_folder(&target)?;
                folders.push((target, mode));
            }
            InnerNode::File(f) => {
                remove_file(&target)?;
                let mut out = File::create(&target).map_err(Error::io(&target))?;
                let mut reader = fs.file(f).reader_checked().map_err(damaged)?;
                std::io::copy(&mut reader, &mut out).map_err(|e| Error::Damaged {
                    path: dest.to_path_buf(),
                    why: format!(
                        "{} cannot be unpacked ({e}); download it again",
                        rel.display()
                    ),
                })?;
                out.set_permissions(std::fs::Permissions::from_mode(mode))
                    .map_err(Error::io(&target))?;
                if durable {
                    out.sync_all().map_err(Error::io(&target))?;
                }
                written += 1;
            }
            InnerNode::Symlink(link) => {
                remove_file(&target)?;
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

/// Whether `rel` is chosen by `only`.
fn selected(only: &str, rel: &Path) -> bool {
    if only.contains(['*', '?']) {
        wildcard(only.as_bytes(), rel.to_string_lossy().as_bytes())
    } else {
        rel.starts_with(only.trim_start_matches('/'))
    }
}

/// `*` any run of characters (`/` too, as fnmatch without FNM_PATHNAME), `?` one.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// `dest/rel`, after making sure every folder on the way is a real folder inside `dest` (made
/// if missing), never a symbolic link that would lead elsewhere.
fn safe_parents(dest: &Path, rel: &Path) -> Result<PathBuf> {
    let mut at = dest.to_path_buf();
    if let Some(parent) = rel.parent() {
        for part in parent.components() {
            at.push(part);
            make_folder(&at)?;
        }
    }
    Ok(dest.join(rel))
}

/// Makes a folder, or accepts one that is there, refusing a symbolic link in its place.
fn make_folder(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(
                "is in the way (a file or symbolic link where a folder goes); move it and try again",
            ),
        }),
        Err(_) => std::fs::DirBuilder::new()
            .mode(0o755)
            .create(path)
            .map_err(Error::io(path)),
    }
}

/// Removes what is at `path` so a file or link can take its place; a folder there is refused.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("is a folder where a file goes; move it and try again"),
        }),
        Ok(_) => std::fs::remove_file(path).map_err(Error::io(path)),
        Err(_) => Ok(()),
    }
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
    use super::*;

    #[test]
    fn paths_stay_inside_the_destination() {
        assert_eq!(
            relative(Path::new("/usr/bin/x")),
            Some(PathBuf::from("usr/bin/x"))
        );
        assert_eq!(relative(Path::new("/")), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("/usr/../../etc/passwd")), None);
    }

    #[test]
    fn parts_are_chosen_by_path_or_pattern() {
        let rel = Path::new("usr/share/applications/between-app.desktop");
        assert!(selected("usr/share", rel));
        assert!(selected("/usr/share", rel));
        assert!(!selected("usr/sha", rel));
        assert!(selected("*.desktop", rel));
        assert!(selected("usr/*/app?ications/*", rel));
        assert!(!selected("*.png", rel));
        assert!(wildcard(b"a*b*c", b"axxbyyc"));
        assert!(!wildcard(b"a*b*c", b"axxbyy"));
        assert!(wildcard(b"*", b""));
    }
}
