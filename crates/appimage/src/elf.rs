//! The ELF facts an AppImage needs: where the executable ends (the image starts there) and
//! the type 2 mark. Pure functions over the header's bytes.

/// Bytes of an ELF64 header.
pub const HEADER_LEN: usize = 64;
/// `AI` and type 2, in the header's padding (bytes 8-10), which loaders ignore.
pub const MAGIC: [u8; 3] = *b"AI\x02";
const MAGIC_AT: usize = 8;

/// Why a header is not what an AppImage runtime can be.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("too short for an ELF header")]
    TooShort,
    #[error("not an ELF file")]
    NotElf,
    #[error("not a 64-bit little-endian ELF file")]
    Not64BitLittleEndian,
    #[error("its header places data beyond any possible file")]
    OutOfRange,
}

/// The offset of the first byte after the ELF executable: the end of its section header
/// table, which linkers write last, or the end of its last program segment if that is later.
/// `program_headers` are the bytes of the program header table when the caller has read them
/// (an empty slice skips that check).
pub fn end_of_elf(header: &[u8], program_headers: &[u8]) -> Result<u64, HeaderError> {
    check(header)?;
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([header[o], header[o + 1]]));
    let u64_at = |b: &[u8], o: usize| -> u64 {
        let mut v = [0u8; 8];
        v.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let sh_end = u64_at(header, 0x28)
        .checked_add(u16_at(0x3A) * u16_at(0x3C))
        .ok_or(HeaderError::OutOfRange)?;
    let ph_size = u16_at(0x36) as usize;
    let segments_end = if ph_size >= 56 {
        program_headers
            .chunks_exact(ph_size)
            .map(|ph| u64_at(ph, 0x08).saturating_add(u64_at(ph, 0x20)))
            .max()
            .unwrap_or(0)
    } else {
        0
    };
    Ok(sh_end.max(segments_end))
}

/// Where the program header table is and how long: (offset, bytes).
pub fn program_header_table(header: &[u8]) -> Result<(u64, usize), HeaderError> {
    check(header)?;
    let mut off = [0u8; 8];
    off.copy_from_slice(&header[0x20..0x28]);
    let size = usize::from(u16::from_le_bytes([header[0x36], header[0x37]]));
    let count = usize::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    Ok((u64::from_le_bytes(off), size * count))
}

/// Whether this header carries the type 2 AppImage mark.
pub fn is_marked(header: &[u8]) -> bool {
    header.get(MAGIC_AT..MAGIC_AT + 3) == Some(&MAGIC[..])
}

/// Puts the type 2 mark into a header.
pub fn mark(header: &mut [u8]) -> Result<(), HeaderError> {
    check(header)?;
    header[MAGIC_AT..MAGIC_AT + 3].copy_from_slice(&MAGIC);
    Ok(())
}

fn check(header: &[u8]) -> Result<(), HeaderError> {
    if header.len() < HEADER_LEN {
        return Err(HeaderError::TooShort);
    }
    if header[..4] != *b"\x7fELF" {
        return Err(HeaderError::NotElf);
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian: every target Between ships on Linux.
    if header[4] != 2 || header[5] != 1 {
        return Err(HeaderError::Not64BitLittleEndian);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(shoff: u64, shentsize: u16, shnum: u16) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        h[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        h[0x3A..0x3C].copy_from_slice(&shentsize.to_le_bytes());
        h[0x3C..0x3E].copy_from_slice(&shnum.to_le_bytes());
        h
    }

    #[test]
    fn the_image_starts_after_the_section_header_table() {
        assert_eq!(end_of_elf(&header(1000, 64, 30), &[]), Ok(1000 + 64 * 30));
    }

    #[test]
    fn a_segment_past_the_section_headers_moves_the_end() {
        let mut ph = vec![0u8; 56];
        ph[0x08..0x10].copy_from_slice(&5000u64.to_le_bytes());
        ph[0x20..0x28].copy_from_slice(&700u64.to_le_bytes());
        assert_eq!(end_of_elf(&header(1000, 64, 2), &ph), Ok(5700));
    }

    #[test]
    fn marking_touches_only_the_padding() {
        let mut h = header(1000, 64, 2);
        assert!(!is_marked(&h));
        let before = h.clone();
        assert_eq!(mark(&mut h), Ok(()));
        assert!(is_marked(&h));
        assert_eq!(&h[..8], &before[..8]);
        assert_eq!(&h[11..], &before[11..]);
    }

    #[test]
    fn what_is_not_an_elf64_is_refused() {
        assert_eq!(end_of_elf(b"#!/bin/sh", &[]), Err(HeaderError::TooShort));
        let mut h = header(0, 0, 0);
        h[0] = b'M';
        assert_eq!(end_of_elf(&h, &[]), Err(HeaderError::NotElf));
        let mut h = header(0, 0, 0);
        h[4] = 1;
        assert_eq!(end_of_elf(&h, &[]), Err(HeaderError::Not64BitLittleEndian));
    }
}
