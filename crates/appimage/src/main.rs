//! `between-appimage`: with an app image appended, the AppImage's runtime; without one, the
//! packer (`between-appimage pack APPDIR OUT`).

use between_appimage::{pack, runtime};
use std::ffi::OsString;
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
    match pack::image_offset(&exe) {
        Ok(Some(offset)) => match runtime::carry_out(&exe, offset, runtime::parse(args), argv0) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        },
        Ok(None) => packer(args),
        Err(e) => fail(&e.to_string()),
    }
}

fn packer(args: Vec<OsString>) -> ExitCode {
    let [cmd, appdir, out] = args.as_slice() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd != "pack" {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot find this program's own file: {e}")),
    };
    let (appdir, out) = (PathBuf::from(appdir), PathBuf::from(out));
    match pack::pack(&appdir, &exe, &out) {
        Ok(p) => {
            let mib = |b: u64| b as f64 / 1048576.0;
            println!(
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

fn fail(message: &str) -> ExitCode {
    eprintln!("between-appimage: {message}");
    ExitCode::FAILURE
}
