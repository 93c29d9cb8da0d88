//! Video frames for the page, without I/O: the size a frame is drawn at (fit inside the
//! tile, keep aspect, never enlarge: the page's shader scales up for free, the IPC does not)
//! and the bytes a frame crosses the IPC as (a 16-byte header, then I420 planes, see IPC.md).

use between_media::video::I420Frame;

pub const HEADER_LEN: usize = 16;

/// The largest even size inside `max_w`x`max_h` with the frame's aspect, at most the frame's
/// own size. `None` for a box too small to draw into.
pub fn fit(src_w: u32, src_h: u32, max_w: u32, max_h: u32) -> Option<(u32, u32)> {
    if src_w < 2 || src_h < 2 || max_w < 2 || max_h < 2 {
        return None;
    }
    let scale = f64::min(
        1.0,
        f64::min(max_w as f64 / src_w as f64, max_h as f64 / src_h as f64),
    );
    let even = |v: f64| ((v as u32) & !1).max(2);
    Some((even(src_w as f64 * scale), even(src_h as f64 * scale)))
}

/// The frame scaled (nearest sample) to fit `max_w`x`max_h`, as the page's message.
/// `sent_at` is the wall clock in milliseconds (mod 2^32): the page subtracts it from its own
/// clock to measure what the IPC and drawing add.
pub fn pack(
    frame: &I420Frame,
    max_w: u32,
    max_h: u32,
    number: u32,
    sent_at: u32,
) -> Option<Vec<u8>> {
    let (w, h) = fit(frame.width(), frame.height(), max_w, max_h)?;
    let (sw, sh) = (frame.width() as usize, frame.height() as usize);
    let (dw, dh) = (w as usize, h as usize);
    let mut out = Vec::with_capacity(HEADER_LEN + dw * dh + 2 * (dw / 2) * (dh / 2));
    for v in [w, h, number, sent_at] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    scale_plane(frame.y(), sw, sh, dw, dh, &mut out);
    scale_plane(frame.u(), sw / 2, sh / 2, dw / 2, dh / 2, &mut out);
    scale_plane(frame.v(), sw / 2, sh / 2, dw / 2, dh / 2, &mut out);
    Some(out)
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize, out: &mut Vec<u8>) {
    if (sw, sh) == (dw, dh) {
        out.extend_from_slice(&src[..sw * sh]);
        return;
    }
    // Source column of every output column, once per frame rather than once per pixel.
    let columns: Vec<usize> = (0..dw).map(|dx| dx * sw / dw).collect();
    for dy in 0..dh {
        let sy = dy * sh / dh;
        let row = &src[sy * sw..(sy + 1) * sw];
        out.extend(columns.iter().map(|&sx| row[sx]));
    }
}

/// The wall clock in milliseconds, mod 2^32 (the header's `sentAt`).
pub fn wall_ms() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_inside_keeping_aspect_and_never_enlarges() {
        assert_eq!(fit(1280, 720, 640, 640), Some((640, 360)));
        assert_eq!(fit(1280, 720, 400, 100), Some((176, 100)));
        assert_eq!(fit(640, 360, 1920, 1080), Some((640, 360)));
        assert_eq!(fit(1280, 720, 333, 333), Some((332, 186)));
        assert_eq!(fit(1280, 720, 1, 100), None);
    }

    #[test]
    fn packs_header_and_planes() {
        let mut f = I420Frame::black(8, 4).expect("frame");
        let (y, u, v) = f.planes_mut();
        for (i, p) in y.iter_mut().enumerate() {
            *p = (i % 8) as u8 * 10;
        }
        u.fill(90);
        v.fill(200);
        let out = pack(&f, 4, 4, 7, 99).expect("packed");
        let word = |i: usize| u32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().expect("4"));
        assert_eq!((word(0), word(1), word(2), word(3)), (4, 2, 7, 99));
        assert_eq!(out.len(), HEADER_LEN + 4 * 2 + 2 * 2);
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + 4], &[0, 20, 40, 60]);
        assert_eq!(&out[HEADER_LEN + 8..], &[90, 90, 200, 200]);
    }

    #[test]
    fn same_size_is_a_copy() {
        let f = I420Frame::black(4, 4).expect("frame");
        let out = pack(&f, 100, 100, 1, 0).expect("packed");
        assert_eq!(&out[HEADER_LEN..], f.as_bytes());
    }
}
