//! Reading what the page drew: a canvas's pixels, and the test pattern's frame counter in them.

use super::webdriver::Driver;
use between_media::pattern::read_counter;
use between_media::video::I420Frame;
use serde_json::json;

/// The canvas at `css` as luma (BT.601, as the pattern was drawn) and the frames drawn so far.
pub fn canvas_luma(driver: &Driver, css: &str) -> Option<(I420Frame, u64)> {
    let v = driver
        .exec(
            "const c = document.querySelector(arguments[0]);
         if (!c || c.width < 80 || c.height < 16) return null;
         const w = c.width & ~1, h = c.height & ~1;
         const copy = document.createElement('canvas');
         copy.width = w; copy.height = h;
         const g = copy.getContext('2d');
         g.drawImage(c, 0, 0);
         const px = g.getImageData(0, 0, w, h).data;
         const luma = new Array(w * h);
         for (let i = 0; i < w * h; i++) {
           luma[i] = Math.round(16 + 0.257 * px[4*i] + 0.504 * px[4*i+1] + 0.098 * px[4*i+2]);
         }
         return {w, h, luma, frames: Number(c.dataset.frames || 0)};",
            json!([css]),
        )
        .ok()?;
    if v.is_null() {
        return None;
    }
    let (w, h) = (v["w"].as_u64()? as u32, v["h"].as_u64()? as u32);
    let mut bytes: Vec<u8> = v["luma"]
        .as_array()?
        .iter()
        .map(|x| x.as_u64().unwrap_or(0).min(255) as u8)
        .collect();
    bytes.resize(between_media::video::i420_len(w, h), 128);
    Some((
        I420Frame::from_bytes(w, h, bytes).ok()?,
        v["frames"].as_u64()?,
    ))
}

/// Waits until the canvas at `css` draws the test pattern: a legible frame counter that moves.
pub fn wait_for_pattern(driver: &Driver, css: &str, what: &str) {
    let mut first: Option<u16> = None;
    driver
        .wait_until(what, 20, |d| {
            let Some((frame, drawn)) = canvas_luma(d, css) else {
                return false;
            };
            let Some(counter) = read_counter(&frame) else {
                return false;
            };
            match first {
                None => {
                    first = Some(counter);
                    false
                }
                Some(c) => drawn > 5 && counter != c,
            }
        })
        .unwrap();
}
