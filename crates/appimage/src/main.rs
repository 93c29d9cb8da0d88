//! `between-appimage`: with an app image appended, the AppImage's runtime; without one, the
//! packer (`between-appimage pack APPDIR OUT`).

use between_appimage::{pack, runtime};
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: between-appimage pack APPDIR OUT

Packs the AppDir APPDIR (an executable AppRun, one .desktop entry and its icon at the top)
into the AppImage OUT, with this program as its runtime. scripts/package.sh makes Between's
AppDir and calls this.
";

fn main() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot find this program's own file: {e}")),
    };
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    let args: Vec<OsString> = argv.collect();
    // The running file itself: what the path names may have been replaced since (an update).
    let mut image = match File::open("/proc/self/exe") {
        Ok(f) => f,
        Err(e) => return fail_visibly(&format!("cannot read {}: {e}", exe.display())),
    };
    let offset = match pack::image_offset(&mut image, &exe) {
        Ok(Some(offset)) => offset,
        Ok(None) => return packer(&exe, args),
        Err(e) => return fail_visibly(&e.to_string()),
    };
    match runtime::carry_out(&exe, &mut image, offset, runtime::parse(args), argv0) {
        Ok(text) => {
            // A closed pipe (`| head`) is not a failure of the AppImage.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => fail_visibly(&e.to_string()),
    }
}

fn packer(exe: &std::path::Path, args: Vec<OsString>) -> ExitCode {
    let [cmd, appdir, out] = args.as_slice() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd != "pack" {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let (appdir, out) = (PathBuf::from(appdir), PathBuf::from(out));
    match pack::pack(&appdir, exe, &out) {
        Ok(p) => {
            let mib = |b: u64| b as f64 / 1048576.0;
            let _ = writeln!(
                std::io::stdout(),
                "{}: {} ({} files), {:.1} MiB (runtime {:.1} MiB, image {:.1} MiB)",
                out.display(),
                p.appdir.name,
                p.files,
                mib(p.runtime_bytes + p.image_bytes),
                mib(p.runtime_bytes),
                mib(p.image_bytes)
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

/// Also tells a user who started the AppImage from a file manager, where nobody reads stderr.
fn fail_visibly(message: &str) -> ExitCode {
    let _ = std::process::Command::new("notify-send")
        .args(["Between cannot start", message])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    fail(message)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("between-appimage: {message}");
    ExitCode::FAILURE
}
