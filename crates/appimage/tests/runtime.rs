//! The packer and the runtime together, on an AppDir whose AppRun reports what it was given:
//! the image is standard SquashFS behind a marked ELF, the app gets its arguments and the
//! AppImage environment, starts after the first reuse the unpacked copy, a new version
//! replaces the old copy, and damaged files or AppDirs get sentences, not crashes.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PACKER: &str = env!("CARGO_BIN_EXE_between-appimage");

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("between-appimage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An AppDir whose AppRun prints its environment and arguments, then exits with 7.
fn appdir(at: &Path, payload: &[u8]) -> PathBuf {
    let dir = at.join("Test.AppDir");
    std::fs::create_dir_all(dir.join("usr/share/data")).unwrap();
    std::fs::write(
        dir.join("AppRun"),
        "#!/bin/sh\necho \"APPDIR=$APPDIR\"\necho \"APPIMAGE=$APPIMAGE\"\necho \"ARGV0=$ARGV0\"\n\
         echo \"OWD=$OWD\"\nfor a in \"$@\"; do echo \"ARG=$a\"; done\n\
         cat \"$APPDIR/usr/share/data/payload\" | wc -c\n\
         if [ -n \"$HOLD\" ]; then echo held; read line; fi\nexit 7\n",
    )
    .unwrap();
    std::fs::set_permissions(dir.join("AppRun"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("test.desktop"),
        "[Desktop Entry]\nType=Application\nName=Test\nExec=test\nIcon=test\nCategories=Utility;\n",
    )
    .unwrap();
    std::fs::write(dir.join("test.png"), b"\x89PNG not really").unwrap();
    std::os::unix::fs::symlink("test.png", dir.join(".DirIcon")).unwrap();
    std::fs::write(dir.join("usr/share/data/payload"), payload).unwrap();
    dir
}

/// A scratch folder with `Test.AppImage` packed from a test AppDir carrying `payload`.
fn packed(name: &str, payload: &[u8]) -> (Scratch, PathBuf) {
    let s = Scratch::new(name);
    let image = s.0.join("Test.AppImage");
    let out = pack(&appdir(&s.0, payload), &image);
    assert!(out.status.success(), "{}", text(&out));
    (s, image)
}

fn pack(appdir: &Path, out: &Path) -> Output {
    Command::new(PACKER)
        .arg("pack")
        .arg(appdir)
        .arg(out)
        .output()
        .unwrap()
}

fn run(appimage: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(appimage)
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .current_dir(cache.parent().unwrap())
        .output()
        .unwrap()
}

/// The start failed (exit 1) and said `says`.
fn fails_saying(out: &Output, says: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(text(out).contains(says), "{says}: {}", text(out));
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Bytes that do not compress, so the image is several SquashFS blocks long.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn an_appimage_starts_its_app_with_the_arguments_and_the_appimage_environment() {
    let s = Scratch::new("run");
    let dir = appdir(&s.0, &noise(600_000, 1));
    let image = s.0.join("Test.AppImage");
    let packed = pack(&dir, &image);
    assert!(packed.status.success(), "{}", text(&packed));
    assert!(
        text(&packed).contains("Test (4 files)"),
        "{}",
        text(&packed)
    );

    // A marked ELF; the image starts where the ELF ends and is SquashFS.
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    assert_eq!(&bytes[8..11], b"AI\x02");
    let cache = s.0.join("cache");
    let offset = run(&image, &cache, &["--appimage-offset"]);
    let offset: usize = String::from_utf8_lossy(&offset.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(&bytes[offset..offset + 4], b"hsqs");
    assert_eq!(offset as u64, std::fs::metadata(PACKER).unwrap().len());

    let out = run(&image, &cache, &["two words", "--appimage-offset", ""]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let t = text(&out);
    let appdir_line = t.lines().find_map(|l| l.strip_prefix("APPDIR=")).unwrap();
    assert!(
        appdir_line.starts_with(&cache.join("between/appimage").display().to_string()),
        "{t}"
    );
    assert!(t.contains(&format!("APPIMAGE={}", image.display())), "{t}");
    assert!(t.contains(&format!("ARGV0={}", image.display())), "{t}");
    assert!(t.contains(&format!("OWD={}", s.0.display())), "{t}");
    // Arguments arrive as given, empty ones and runtime-looking ones after the first too.
    assert!(
        t.contains("ARG=two words\nARG=--appimage-offset\nARG=\n"),
        "{t}"
    );
    assert!(t.contains("600000\n"), "the app's files are all there: {t}");

    // The next start uses the same unpacked copy (not unpacked again).
    let marker = Path::new(appdir_line).join("AppRun");
    let before = std::fs::metadata(&marker).unwrap().ino();
    let again = run(&image, &cache, &[]);
    assert_eq!(again.status.code(), Some(7));
    assert!(text(&again).contains(&format!("APPDIR={appdir_line}\n")));
    assert_eq!(std::fs::metadata(&marker).unwrap().ino(), before);

    // A new version gets a copy of its own; the old one stays while it may still be wanted
    // (switching back and forth does not unpack each time).
    let dir2 = s.0.join("v2");
    std::fs::create_dir_all(&dir2).unwrap();
    let image2 = s.0.join("Test2.AppImage");
    assert!(
        pack(&appdir(&dir2, &noise(300_000, 2)), &image2)
            .status
            .success()
    );
    let newer = run(&image2, &cache, &[]);
    let t2 = text(&newer);
    assert!(t2.contains("300000\n"), "{t2}");
    let appdir2 = t2.lines().find_map(|l| l.strip_prefix("APPDIR=")).unwrap();
    assert_ne!(appdir2, appdir_line);
    assert!(Path::new(appdir_line).exists());

    // Unused for more than a day, it goes at the next start.
    age(Path::new(appdir_line));
    assert_eq!(run(&image2, &cache, &[]).status.code(), Some(7));
    assert!(!Path::new(appdir_line).exists(), "the old copy is removed");
}

/// Makes a copy look unused for two days.
fn age(copy: &Path) {
    let marker = std::fs::File::options()
        .write(true)
        .open(copy.join(".between-appimage-complete"))
        .unwrap();
    marker
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400))
        .unwrap();
}

/// A start whose AppRun waits (for a line on its stdin) after it has started: the child and
/// its APPDIR.
fn start_held(image: &Path, cache: &Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(image)
        .env("XDG_CACHE_HOME", cache)
        .env("HOLD", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut appdir = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(d) = line.strip_prefix("APPDIR=") {
            appdir = d.to_string();
        }
        if line == "held" {
            break;
        }
    }
    (child, appdir)
}

/// Lets a held start finish.
fn release(mut child: std::process::Child) {
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn a_copy_in_use_is_never_removed_and_abandoned_unpacking_is() {
    let s = Scratch::new("inuse");
    let cache = s.0.join("cache");
    let old = s.0.join("Old.AppImage");
    assert!(pack(&appdir(&s.0, b"old"), &old).status.success());
    // The old version runs (its AppRun waits for a line) ...
    let (running, old_dir) = start_held(&old, &cache);
    // ... while a new version starts, with the old copy looking unused for days.
    age(Path::new(&old_dir));
    let v2 = s.0.join("v2");
    std::fs::create_dir_all(&v2).unwrap();
    let new = s.0.join("New.AppImage");
    assert!(pack(&appdir(&v2, b"new"), &new).status.success());
    // Leftovers of starts that died while unpacking: one without its lock held (gone after
    // the next start) and one whose lock a live start holds (kept).
    let root = cache.join("between/appimage");
    let dead = root.join(".0123456789abcdef.partial-1");
    std::fs::create_dir_all(&dead).unwrap();
    std::fs::write(dead.join(".between-appimage-lock"), b"").unwrap();
    let live = root.join(".0123456789abcdef.partial-2");
    std::fs::create_dir_all(&live).unwrap();
    let held = std::fs::File::create(live.join(".between-appimage-lock")).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // Both older than any unpacking takes (a fresh one may be a start about to lock it).
    for dir in [&dead, &live] {
        std::fs::File::open(dir)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
            .unwrap();
    }

    assert_eq!(run(&new, &cache, &[]).status.code(), Some(7));
    assert!(
        Path::new(&old_dir).join("usr/share/data/payload").exists(),
        "a running copy stays"
    );
    assert!(!dead.exists(), "abandoned unpacking is removed");
    assert!(live.exists(), "unpacking in progress is left alone");

    // Once the old version has ended, its copy goes at the next start.
    release(running);
    assert_eq!(run(&new, &cache, &[]).status.code(), Some(7));
    assert!(!Path::new(&old_dir).exists());
}

#[test]
fn a_damaged_copy_is_unpacked_again() {
    let (s, image) = packed("repair", &noise(500_000, 5));
    let cache = s.0.join("cache");
    let first = run(&image, &cache, &[]);
    let copy = PathBuf::from(
        text(&first)
            .lines()
            .find_map(|l| l.strip_prefix("APPDIR="))
            .unwrap(),
    );
    let payload = copy.join("usr/share/data/payload");

    // A file cut short (a crash before the disk caught up, a cleaner): unpacked again.
    std::fs::write(&payload, b"").unwrap();
    let out = run(&image, &cache, &[]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(text(&out).contains("500000\n"), "{}", text(&out));

    // The completion mark gone, or the lock file: the same.
    std::fs::remove_file(copy.join(".between-appimage-complete")).unwrap();
    let out = run(&image, &cache, &[]);
    assert!(text(&out).contains("500000\n"), "{}", text(&out));
    std::fs::remove_file(copy.join(".between-appimage-lock")).unwrap();
    let out = run(&image, &cache, &[]);
    assert!(text(&out).contains("500000\n"), "{}", text(&out));
    assert_eq!(std::fs::read(&payload).unwrap().len(), 500_000);

    // Damaged while another start runs from it: said, and left alone.
    let (running, _) = start_held(&image, &cache);
    std::fs::write(&payload, b"x").unwrap();
    let out = run(&image, &cache, &[]);
    fails_saying(&out, "damaged and another start of it is still running");
    release(running);
    let out = run(&image, &cache, &[]);
    assert!(text(&out).contains("500000\n"), "{}", text(&out));
}

#[test]
fn starts_at_the_same_moment_share_one_copy() {
    let (s, image) = packed("together", &noise(2_000_000, 4));
    let cache = s.0.join("cache");
    let starts: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&image)
                .env("XDG_CACHE_HOME", &cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let dirs: Vec<String> = starts
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(7), "{}", text(&out));
            assert!(text(&out).contains("2000000\n"), "{}", text(&out));
            text(&out)
                .lines()
                .find_map(|l| l.strip_prefix("APPDIR="))
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(dirs.iter().all(|d| d == &dirs[0]), "{dirs:?}");
    let left: Vec<_> = std::fs::read_dir(cache.join("between/appimage"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "one copy and nothing else: {left:?}");
}

#[test]
fn the_cache_folder_must_be_the_users_own() {
    let (s, image) = packed("where", b"x");
    // A relative XDG_CACHE_HOME is ignored, as the XDG spec says: the home's .cache is used.
    let home = s.0.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = Command::new(&image)
        .env("XDG_CACHE_HOME", "relative/cache")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let expected = format!("APPDIR={}", home.join(".cache/between/appimage").display());
    assert!(text(&out).contains(&expected), "{}", text(&out));
    // A cache folder others can write to is refused.
    let open = s.0.join("open");
    std::fs::create_dir_all(open.join("between/appimage")).unwrap();
    std::fs::set_permissions(
        open.join("between/appimage"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let out = run(&image, &open, &[]);
    fails_saying(&out, "can be written by other users");
}

#[test]
fn an_appimage_unpacks_itself_on_request() {
    let (s, image) = packed("extract", b"hello");
    let work = s.0.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = run(&image, &work.join("cache"), &["--appimage-extract"]);
    assert!(out.status.success(), "{}", text(&out));
    let root = work.join("squashfs-root");
    assert_eq!(
        std::fs::read(root.join("usr/share/data/payload")).unwrap(),
        b"hello"
    );
    assert_eq!(
        std::fs::metadata(root.join("AppRun"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    assert_eq!(
        std::fs::read_link(root.join(".DirIcon")).unwrap(),
        Path::new("test.png")
    );

    // Only a part.
    std::fs::remove_dir_all(&root).unwrap();
    let out = run(
        &image,
        &work.join("cache"),
        &["--appimage-extract", "usr/share"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(root.join("usr/share/data/payload").exists());
    assert!(!root.join("AppRun").exists());

    // By pattern, as the standard runtime takes them; a pattern matching nothing is an error.
    std::fs::remove_dir_all(&root).unwrap();
    let out = run(
        &image,
        &work.join("cache"),
        &["--appimage-extract", "*.desktop"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(root.join("test.desktop").exists());
    assert!(!root.join("test.png").exists());
    let out = run(
        &image,
        &work.join("cache"),
        &["--appimage-extract", "*.svg"],
    );
    fails_saying(&out, "nothing in this AppImage matches *.svg");

    // A symbolic link already in squashfs-root is never written through.
    std::fs::remove_dir_all(&root).unwrap();
    let outside = work.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("usr")).unwrap();
    let out = run(&image, &work.join("cache"), &["--appimage-extract"]);
    fails_saying(&out, "is in the way");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    let help = run(&image, &work.join("cache"), &["--appimage-help"]);
    assert!(text(&help).contains("--appimage-extract"));
    let unknown = run(&image, &work.join("cache"), &["--appimage-mount"]);
    fails_saying(&unknown, "--appimage-mount is not an option");
}

#[test]
fn a_damaged_appimage_says_so_and_leaves_nothing_behind() {
    let (s, image) = packed("damaged", &noise(400_000, 3));
    let bytes = std::fs::read(&image).unwrap();
    let offset = std::fs::metadata(PACKER).unwrap().len() as usize;
    let cache = s.0.join("cache");

    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "cut",
            bytes[..bytes.len() - 150_000].to_vec(),
            "download it again",
        ),
        (
            "no image",
            bytes[..offset].to_vec(),
            "its app image is missing",
        ),
        (
            "not squashfs",
            {
                let mut b = bytes.clone();
                b[offset..offset + 4].copy_from_slice(b"XXXX");
                b
            },
            "no SquashFS image follows its runtime",
        ),
    ];
    for (what, content, says) in cases {
        let broken = s.0.join(format!("{}.AppImage", what.replace(' ', "-")));
        std::fs::write(&broken, content).unwrap();
        std::fs::set_permissions(&broken, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = run(&broken, &cache, &[]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        assert!(text(&out).contains(says), "{what}: {}", text(&out));
        let left: Vec<_> = std::fs::read_dir(cache.join("between/appimage"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what}: left {left:?}");
    }
}

#[test]
fn the_packer_says_what_an_appdir_lacks() {
    let s = Scratch::new("appdir");
    let dir = appdir(&s.0, b"x");
    let out_file = s.0.join("Out.AppImage");
    let expect = |says: &str| {
        let out = pack(&dir, &out_file);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(says), "{says}: {}", text(&out));
        assert!(!out_file.exists());
    };
    std::fs::remove_file(dir.join("test.png")).unwrap();
    expect("the icon test.png (or .svg) is not at its top");
    std::fs::write(dir.join("test.png"), b"x").unwrap();
    std::fs::set_permissions(dir.join("AppRun"), std::fs::Permissions::from_mode(0o644)).unwrap();
    expect("AppRun is not an executable file");
    std::fs::remove_file(dir.join("AppRun")).unwrap();
    expect("it has no AppRun");
    let usage = Command::new(PACKER).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(text(&usage).contains("usage: between-appimage pack APPDIR OUT"));
}
