//! Writing an AppImage: the runtime (this executable, marked), then the AppDir as SquashFS.

use crate::appdir::{self, AppDir};
use crate::elf;
use crate::{Error, Result};
use backhand::compression::Compressor;
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What was packed.
#[derive(Debug)]
pub struct Packed {
    pub appdir: AppDir,
    pub runtime_bytes: u64,
    pub image_bytes: u64,
    pub files: usize,
}

/// Packs `appdir` into the AppImage `out` with `runtime` (an ELF executable without an image)
/// at its front. The file appears complete or not at all.
pub fn pack(appdir: &Path, runtime: &Path, out: &Path) -> Result<Packed> {
    let checked = appdir::check(appdir)?;
    let mut front = std::fs::read(runtime).map_err(Error::io(runtime))?;
    let end = runtime_end(&front).ok_or_else(|| Error::NotElf(runtime.to_path_buf()))?;
    // A runtime that is itself an AppImage would carry its image along: keep only the ELF.
    front.truncate(usize::try_from(end).map_err(|_| Error::NotElf(runtime.to_path_buf()))?);
    elf::mark(&mut front).map_err(|_| Error::NotElf(runtime.to_path_buf()))?;

    let mut fs = FilesystemWriter::default();
    fs.set_compressor(FilesystemCompressor::new(Compressor::Gzip, None)?);
    fs.set_root_mode(0o755);
    fs.set_root_uid(0);
    fs.set_root_gid(0);
    fs.set_current_time();
    let mut files = 0;
    add_tree(&mut fs, appdir, Path::new("/"), &mut files)?;

    let tmp = out.with_extension(format!("partial-{}", std::process::id()));
    let mut write = || -> Result<u64> {
        let mut file = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        file.write_all(&front).map_err(Error::io(&tmp))?;
        let (_, image) = fs.write_with_offset(&mut file, front.len() as u64)?;
        file.flush().map_err(Error::io(&tmp))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o755))
            .map_err(Error::io(&tmp))?;
        Ok(image)
    };
    let image_bytes = match write() {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, out) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(out)(e));
    }
    Ok(Packed {
        appdir: checked,
        runtime_bytes: front.len() as u64,
        image_bytes,
        files,
    })
}

/// The end of the ELF at the front of `bytes`, reading its program headers from the same bytes.
fn runtime_end(bytes: &[u8]) -> Option<u64> {
    let (ph_off, ph_len) = elf::program_header_table(bytes).ok()?;
    let start = usize::try_from(ph_off).ok()?;
    let ph = bytes.get(start..start.checked_add(ph_len)?)?;
    let end = elf::end_of_elf(bytes, ph).ok()?;
    (end <= bytes.len() as u64).then_some(end)
}

/// Adds the folder `dir` (at `at` in the image) and everything under it, in name order.
/// Owners become root, as on an installed system.
fn add_tree(fs: &mut FilesystemWriter, dir: &Path, at: &Path, files: &mut usize) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .map(|e| e.map(|e| e.path()).map_err(Error::io(dir)))
        .collect::<Result<_>>()?;
    entries.sort();
    for path in entries {
        let meta = std::fs::symlink_metadata(&path).map_err(Error::io(&path))?;
        let Some(name) = path.file_name() else {
            continue;
        };
        let inside = at.join(name);
        let header = NodeHeader::new(
            (meta.mode() & 0o7777) as u16,
            0,
            0,
            u32::try_from(meta.mtime().max(0)).unwrap_or(u32::MAX),
        );
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = std::fs::read_link(&path).map_err(Error::io(&path))?;
            fs.push_symlink(target, &inside, header)?;
        } else if kind.is_dir() {
            fs.push_dir(&inside, header)?;
            add_tree(fs, &path, &inside, files)?;
        } else if kind.is_file() {
            fs.push_file_from_path(&path, &inside, header)?;
            *files += 1;
        } else {
            return Err(Error::AppDir {
                appdir: path,
                why: "only files, folders and symbolic links can go into an AppImage".into(),
            });
        }
    }
    Ok(())
}

/// Where the image of the AppImage `file` (named `path` in messages) starts, if it has one:
/// `None` for a plain executable (this one before packing), an error for a file that claims
/// to be an AppImage but is cut short.
pub fn image_offset(file: &mut std::fs::File, path: &Path) -> Result<Option<u64>> {
    file.seek(std::io::SeekFrom::Start(0))
        .map_err(Error::io(path))?;
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut header = [0u8; elf::HEADER_LEN];
    file.read_exact(&mut header)
        .map_err(|_| Error::NotElf(path.to_path_buf()))?;
    let (ph_off, ph_len) =
        elf::program_header_table(&header).map_err(|_| Error::NotElf(path.to_path_buf()))?;
    let mut ph = vec![0u8; ph_len.min(64 * 1024)];
    file.seek(std::io::SeekFrom::Start(ph_off))
        .and_then(|_| file.read_exact(&mut ph))
        .map_err(|_| Error::NotElf(path.to_path_buf()))?;
    let end = elf::end_of_elf(&header, &ph).map_err(|_| Error::NotElf(path.to_path_buf()))?;
    // Without the mark this is a plain program (the packer itself); with it, a broken AppImage.
    let no_image = |why: &str| {
        if elf::is_marked(&header) {
            Err(Error::Damaged {
                path: path.to_path_buf(),
                why: why.into(),
            })
        } else {
            Ok(None)
        }
    };
    if end >= len {
        return no_image("its app image is missing (was the download cut short?)");
    }
    let mut magic = [0u8; 4];
    file.seek(std::io::SeekFrom::Start(end))
        .and_then(|_| file.read_exact(&mut magic))
        .map_err(Error::io(path))?;
    if &magic != b"hsqs" {
        return no_image("no SquashFS image follows its runtime");
    }
    Ok(Some(end))
}
