//! What an AppDir must hold to become an AppImage desktops can show and start: an executable
//! `AppRun`, one `.desktop` entry at the top, and the icon that entry names.

use crate::{Error, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The parts of a checked AppDir the packer reports.
#[derive(Debug)]
pub struct AppDir {
    pub root: PathBuf,
    pub desktop_entry: PathBuf,
    pub name: String,
    pub icon: PathBuf,
}

/// Checks `root` and says what is missing, one thing at a time.
pub fn check(root: &Path) -> Result<AppDir> {
    let fail = |why: String| Error::AppDir {
        appdir: root.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(root).map_err(Error::io(root))?;
    if !meta.is_dir() {
        return Err(fail("it is not a folder".into()));
    }
    let app_run = root.join("AppRun");
    match std::fs::metadata(&app_run) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
        Ok(_) => return Err(fail("AppRun is not an executable file".into())),
        Err(_) => {
            return Err(fail(
                "it has no AppRun (the program the AppImage starts)".into(),
            ));
        }
    }
    let mut entries = Vec::new();
    for e in std::fs::read_dir(root).map_err(Error::io(root))? {
        let path = e.map_err(Error::io(root))?.path();
        if path.extension().is_some_and(|x| x == "desktop") {
            entries.push(path);
        }
    }
    let desktop_entry = match entries.as_slice() {
        [one] => one.clone(),
        [] => return Err(fail("it has no .desktop entry at its top".into())),
        _ => {
            return Err(fail(
                "it has more than one .desktop entry at its top".into(),
            ));
        }
    };
    let text = std::fs::read_to_string(&desktop_entry).map_err(Error::io(&desktop_entry))?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::trim))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let name = field("Name").ok_or_else(|| fail("its .desktop entry has no Name".into()))?;
    let icon_name = field("Icon").ok_or_else(|| fail("its .desktop entry has no Icon".into()))?;
    let icon = ["png", "svg"]
        .iter()
        .map(|ext| root.join(format!("{icon_name}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            fail(format!(
                "the icon {icon_name}.png (or .svg) is not at its top"
            ))
        })?;
    Ok(AppDir {
        root: root.to_path_buf(),
        desktop_entry,
        name,
        icon,
    })
}
