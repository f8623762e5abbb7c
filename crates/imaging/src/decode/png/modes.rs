//! Pillow's modes for PNG samples and what `convert("RGB")` makes of them:
//! 16-bit grey becomes `I;16` and is *clipped* to 255, other 16-bit samples
//! keep their high byte, 1/2/4-bit grey is scaled, palette lookups that
//! fall off a short palette give black, alpha is dropped without
//! compositing, and the `transparency` entry is what `convert("RGB")`
//! leaves behind.

use image::RgbImage;

use super::chunks::Header;
use super::err;
use super::pixels::Samples;
use crate::error::ImagingError;

/// Pillow's image mode for an IHDR bit depth and colour type (`_MODES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// 1-bit grey.
    Bilevel,
    /// 2, 4 or 8-bit grey.
    L,
    /// 16-bit grey.
    I16,
    Rgb,
    Palette,
    La,
    /// 16-bit grey+alpha, which Pillow opens as RGBA (`LA;16B`).
    La16,
    Rgba,
}

impl Mode {
    /// `_MODES[(bit_depth, color_type)]`; `None` where Pillow has no mode.
    pub fn of(bit_depth: u8, color_type: u8) -> Option<Mode> {
        Some(match (bit_depth, color_type) {
            (1, 0) => Mode::Bilevel,
            (2 | 4 | 8, 0) => Mode::L,
            (16, 0) => Mode::I16,
            (8 | 16, 2) => Mode::Rgb,
            (1 | 2 | 4 | 8, 3) => Mode::Palette,
            (8, 4) => Mode::La,
            (16, 4) => Mode::La16,
            (8 | 16, 6) => Mode::Rgba,
            _ => return None,
        })
    }
}

/// `im.info["transparency"]` after `convert("RGB")`, as the RGB key that a
/// later `convert("RGBA")` turns transparent (`rgbT2rgba` masks each value
/// to its low byte).
pub(super) fn transparency_key(
    mode: Mode,
    trns: &[u8],
    palette: &[[u8; 3]],
) -> Result<Option<[u8; 3]>, ImagingError> {
    let be16 = |i: usize| u16::from_be_bytes([trns[i], trns[i + 1]]);
    let needed = match mode {
        Mode::Rgb => 6,
        Mode::Bilevel | Mode::L | Mode::I16 => 2,
        _ => 0,
    };
    if trns.len() < needed {
        return Err(err("truncated tRNS chunk"));
    }
    Ok(match mode {
        Mode::Palette => {
            // `_simple_palette`: one 0x00 among 0xFF, `$` also matching
            // before a final newline; anything else is per-entry alpha,
            // which `convert("RGB")` deletes.
            let body = trns.strip_suffix(b"\n").unwrap_or(trns);
            let simple = body.iter().filter(|&&b| b == 0).count() == 1
                && body.iter().all(|&b| b == 0 || b == 0xff);
            if simple {
                let index = trns.iter().position(|&b| b == 0).unwrap_or_default();
                Some(palette.get(index).copied().unwrap_or([0; 3]))
            } else {
                None
            }
        }
        // Mode "1" stores 0 or 255; that int survives convert("RGB") and keys (t, 0, 0).
        Mode::Bilevel => Some([if be16(0) != 0 { 255 } else { 0 }, 0, 0]),
        // convert("RGB") from L maps the value through a 1x1 L image, clamping.
        Mode::L => Some([be16(0).min(255) as u8; 3]),
        Mode::I16 => Some([be16(0) as u8, 0, 0]),
        Mode::Rgb => Some([be16(0) as u8, be16(2) as u8, be16(4) as u8]),
        Mode::La | Mode::La16 | Mode::Rgba => None,
    })
}

/// Raw PNG samples to `convert("RGB")` of Pillow's mode for them.
pub(super) fn to_rgb(header: &Header, samples: &Samples, palette: &[[u8; 3]]) -> RgbImage {
    let (w, h) = (header.width as usize, header.height as usize);
    let depth = usize::from(header.bit_depth);
    let rows = samples.data.chunks_exact(samples.line_size).take(h);
    let mut out = Vec::with_capacity(w * h * 3);
    // Applies `f` to each pixel's `bytes` raw bytes.
    let mut per_pixel = |bytes: usize, f: &dyn Fn(&[u8]) -> [u8; 3]| {
        for row in rows.clone() {
            for px in row[..w * bytes].chunks_exact(bytes) {
                out.extend_from_slice(&f(px));
            }
        }
    };
    let colour = |i: usize| palette.get(i).copied().unwrap_or([0; 3]);
    match (header.mode, depth) {
        (Mode::Bilevel, _) | (Mode::L | Mode::Palette, 1 | 2 | 4) => {
            for row in rows.clone() {
                for x in 0..w {
                    // Sub-byte samples, most significant bits first.
                    let bit = x * depth;
                    let v = (row[bit / 8] >> (8 - depth - bit % 8)) & ((1 << depth) - 1);
                    out.extend_from_slice(&if header.mode == Mode::Palette {
                        colour(usize::from(v))
                    } else {
                        // "1" -> RGB gives 0/255; L;2 and L;4 scale by 85 / 17.
                        [(u16::from(v) * 255 / ((1 << depth) - 1)) as u8; 3]
                    });
                }
            }
        }
        (Mode::L, _) => per_pixel(1, &|p| [p[0]; 3]),
        (Mode::Palette, _) => per_pixel(1, &|p| colour(usize::from(p[0]))),
        // I;16 -> RGB clips instead of scaling.
        (Mode::I16, _) => per_pixel(2, &|p| [u16::from_be_bytes([p[0], p[1]]).min(255) as u8; 3]),
        // Other 16-bit samples keep their high (first, big-endian) byte.
        (Mode::Rgb, 8) => per_pixel(3, &|p| [p[0], p[1], p[2]]),
        (Mode::Rgb, _) => per_pixel(6, &|p| [p[0], p[2], p[4]]),
        (Mode::La, _) => per_pixel(2, &|p| [p[0]; 3]),
        (Mode::La16, _) => per_pixel(4, &|p| [p[0]; 3]),
        (Mode::Rgba, 8) => per_pixel(4, &|p| [p[0], p[1], p[2]]),
        (Mode::Rgba, _) => per_pixel(8, &|p| [p[0], p[2], p[4]]),
    }
    RgbImage::from_raw(header.width, header.height, out).expect("buffer sized for the image")
}
