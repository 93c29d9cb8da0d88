//! The AppImage's runtime: options of its own (`--appimage-...`, first argument only, as the
//! standard runtime reads them), otherwise start the app with the AppImage environment.

use crate::{Error, Result, cache, extract};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// What a start of the AppImage asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the app with these arguments.
    Run(Vec<OsString>),
    /// Unpack into `./squashfs-root`, everything or only what is under the path.
    Extract(Option<PathBuf>),
    /// Print where the image starts in the file.
    Offset,
    Help,
    Version,
    /// An `--appimage-...` option this runtime does not have.
    Unknown(String),
}

/// Reads the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Action {
    let Some(first) = args.first().and_then(|a| a.to_str()) else {
        return Action::Run(args);
    };
    if !first.starts_with("--appimage-") {
        return Action::Run(args);
    }
    match first {
        "--appimage-extract" => Action::Extract(args.get(1).map(PathBuf::from)),
        // This runtime always unpacks before it runs: the same as a plain start.
        "--appimage-extract-and-run" => Action::Run(args[1..].to_vec()),
        "--appimage-offset" => Action::Offset,
        "--appimage-help" => Action::Help,
        "--appimage-version" => Action::Version,
        other => Action::Unknown(other.to_string()),
    }
}

pub const HELP: &str = "\
This is an AppImage: one file that holds the app and starts it.

  --appimage-extract [PATH]   unpack it (or only PATH in it) into ./squashfs-root
  --appimage-extract-and-run  start the app (what a plain start does too)
  --appimage-offset           print where its image starts in this file
  --appimage-help             this text
  --appimage-version          the runtime's version

It unpacks itself once into $XDG_CACHE_HOME/between/appimage (~/.cache/between/appimage)
and starts from there; FUSE is not needed. Any other arguments go to the app.
";

/// Carries out `action` for the AppImage at `appimage` (as the user named it), whose bytes
/// `image` are (the running file itself, even if `appimage` was replaced meanwhile) and whose
/// image starts at `offset`. A start of the app does not return unless it fails.
pub fn carry_out(
    appimage: &Path,
    image: &mut File,
    offset: u64,
    action: Action,
    argv0: OsString,
) -> Result<String> {
    match action {
        Action::Help => Ok(HELP.to_string()),
        Action::Version => Ok(format!("between-appimage {}\n", env!("CARGO_PKG_VERSION"))),
        Action::Offset => Ok(format!("{offset}\n")),
        Action::Unknown(option) => Err(Error::Usage(format!(
            "{option} is not an option of this AppImage; --appimage-help lists them"
        ))),
        Action::Extract(only) => {
            let dest = Path::new("squashfs-root");
            let only = only.as_deref().map(Path::to_string_lossy);
            let n = extract::extract(image, offset, dest, only.as_deref(), false)?;
            match only {
                Some(o) if n == 0 => Err(Error::Usage(format!(
                    "nothing in this AppImage matches {o}"
                ))),
                _ => Ok(format!("unpacked {n} files into {}/\n", dest.display())),
            }
        }
        Action::Run(args) => {
            let copy = cache::unpacked(image, offset, &cache::cache_root())?;
            let e = start(&copy, appimage, &args, &argv0);
            let app_run = copy.dir.join("AppRun");
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(Error::Io {
                    path: app_run,
                    source: std::io::Error::other(format!(
                        "{e}: the cache folder may be on a file system that forbids running \
                         programs; set XDG_CACHE_HOME to another folder, or run the AppImage \
                         with --appimage-extract and start squashfs-root/AppRun"
                    )),
                });
            }
            Err(Error::Io {
                path: app_run,
                source: e,
            })
        }
    }
}

/// Replaces this process with the copy's AppRun; returns only if that failed.
fn start(
    copy: &cache::Copy,
    appimage: &Path,
    args: &[OsString],
    argv0: &OsString,
) -> std::io::Error {
    let mut cmd = std::process::Command::new(copy.dir.join("AppRun"));
    cmd.args(args)
        .env("APPIMAGE", appimage)
        .env("APPDIR", &copy.dir)
        .env("ARGV0", argv0);
    if let Ok(owd) = std::env::current_dir() {
        cmd.env("OWD", owd);
    }
    cmd.exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_apps_arguments_pass_through() {
        assert_eq!(
            parse(args(&["--call", "x --appimage-offset"])),
            Action::Run(args(&["--call", "x --appimage-offset"]))
        );
        assert_eq!(parse(args(&[])), Action::Run(vec![]));
        // Only the first argument can be the runtime's.
        assert_eq!(
            parse(args(&["a", "--appimage-help"])),
            Action::Run(args(&["a", "--appimage-help"]))
        );
    }

    #[test]
    fn the_runtimes_own_options() {
        assert_eq!(parse(args(&["--appimage-offset"])), Action::Offset);
        assert_eq!(
            parse(args(&["--appimage-extract", "usr/bin"])),
            Action::Extract(Some(PathBuf::from("usr/bin")))
        );
        assert_eq!(
            parse(args(&["--appimage-extract-and-run", "-v"])),
            Action::Run(args(&["-v"]))
        );
        assert_eq!(
            parse(args(&["--appimage-mount"])),
            Action::Unknown("--appimage-mount".into())
        );
    }
}
