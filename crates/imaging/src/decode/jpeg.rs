//! JPEG with `JpegImagePlugin` semantics around the zune-jpeg decoder.
//!
//! The DCT decode itself is zune-jpeg's (libjpeg-turbo's IDCT and chroma
//! upsampling are not reproduced, so samples may differ by a few levels);
//! everything Pillow decides is replicated: 4-component files are treated as
//! Adobe-inverted CMYK and converted with Pillow's `cmyk2rgb`, a file without
//! its EOI marker is "truncated" and rejected, and EXIF is gathered from the
//! APP1 segments the way Pillow's marker loop does, including its habit of
//! swallowing broken EXIF when no JFIF density is present.

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::Frame;
use crate::error::ImagingError;
use crate::exif::{ExifSource, Metadata};
use crate::limits::DecodeLimits;

fn err(msg: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode(format!("JPEG: {msg}"))
}

const SOS: u8 = 0xDA;
const EOI: u8 = 0xD9;

/// Markers that stand alone, without a length field.
fn is_standalone(marker: u8) -> bool {
    matches!(marker, 0xD0..=0xD9 | 0x01)
}

/// Segments up to the first SOS, as Pillow's `_open` reads them, plus the
/// offset where the first scan's entropy-coded data starts.
fn read_markers(bytes: &[u8]) -> (Metadata, Option<usize>) {
    let mut exif: Option<Vec<u8>> = None;
    let mut xmp = None;
    let mut has_dpi = false;
    let mut pos = 2;
    while let Some(&b) = bytes.get(pos) {
        if b != 0xFF {
            pos += 1;
            continue;
        }
        let Some(&marker) = bytes.get(pos + 1) else {
            break;
        };
        if marker == 0xFF {
            pos += 1;
            continue;
        }
        if marker == 0x00 || is_standalone(marker) {
            pos += 2;
            continue;
        }
        let Some(len) = bytes.get(pos + 2..pos + 4) else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let Some(seg) = len
            .checked_sub(2)
            .and_then(|n| bytes.get(pos + 4..pos + 4 + n))
        else {
            break;
        };
        match marker {
            0xE0 if seg.starts_with(b"JFIF") => {
                // Pillow sets info["dpi"] for units 1 (inch) and 2 (cm).
                has_dpi |= seg.len() >= 12 && matches!(seg[7], 1 | 2);
            }
            0xE1 if seg.starts_with(b"Exif\0\0") => match &mut exif {
                Some(e) => e.extend_from_slice(&seg[6..]),
                None => exif = Some(seg.to_vec()),
            },
            0xE1 if seg.starts_with(b"http://ns.adobe.com/xap/1.0/\0") => {
                xmp = seg
                    .iter()
                    .position(|&b| b == 0)
                    .map(|i| seg[i + 1..].to_vec());
            }
            SOS => {
                let meta = Metadata {
                    swallow_exif_errors: exif.is_some() && !has_dpi,
                    exif: exif.map(ExifSource::Bytes),
                    xmp_text: None,
                    xmp,
                };
                return (meta, Some(pos + 2 + len));
            }
            _ => {}
        }
        pos += 2 + len;
    }
    let meta = Metadata {
        exif: exif.map(ExifSource::Bytes),
        xmp_text: None,
        xmp,
        swallow_exif_errors: false,
    };
    (meta, None)
}

/// Whether an EOI marker follows the scans. Pillow (through libjpeg's
/// suspending source) fails with "image file is truncated" without one;
/// zune-jpeg would instead pad the missing rows with grey.
fn reaches_eoi(bytes: &[u8], mut pos: usize) -> bool {
    while pos + 1 < bytes.len() {
        if bytes[pos] != 0xFF {
            pos += 1;
            continue;
        }
        match bytes[pos + 1] {
            EOI => return true,
            0xFF => pos += 1,
            0x00 | 0xD0..=0xD7 | 0x01 => pos += 2,
            _ => {
                // DHT, SOS, DQT, DRI, APPn... between progressive scans.
                let Some(len) = bytes.get(pos + 2..pos + 4) else {
                    return false;
                };
                pos += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
    false
}

/// `MULDIV255` from Pillow's `Convert.c`: `a * b / 255` rounded.
fn muldiv255(a: u32, b: u32) -> u32 {
    let tmp = a * b + 128;
    ((tmp >> 8) + tmp) >> 8
}

/// Stored Adobe CMYK samples (inverted) through Pillow's `CMYK;I` unpacker
/// and `cmyk2rgb`.
fn inverted_cmyk_to_rgb(c: u8, m: u8, y: u8, k: u8) -> [u8; 3] {
    let nk = u32::from(k);
    let ch = |v: u8| (nk - muldiv255(255 - u32::from(v), nk)) as u8;
    [ch(c), ch(m), ch(y)]
}

/// libjpeg's YCC->RGB (`jdcolor.c`, 16-bit fixed point), which its YCCK->CMYK
/// conversion applies before inverting.
fn ycc_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SCALEBITS: i32 = 16;
    const ONE_HALF: i64 = 1 << (SCALEBITS - 1);
    let fix = |x: f64| (x * f64::from(1 << SCALEBITS) + 0.5) as i64;
    let (y, cb, cr) = (i64::from(y), i64::from(cb) - 128, i64::from(cr) - 128);
    let r = y + ((fix(1.40200) * cr + ONE_HALF) >> SCALEBITS);
    let g = y + ((-fix(0.34414) * cb + ONE_HALF - fix(0.71414) * cr) >> SCALEBITS);
    let b = y + ((fix(1.77200) * cb + ONE_HALF) >> SCALEBITS);
    [r, g, b].map(|v| v.clamp(0, 255) as u8)
}

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, ImagingError> {
    let (meta, scan_start) = read_markers(bytes);
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX));
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(err)?;
    let (width, height) = decoder
        .dimensions()
        .ok_or_else(|| err("missing frame header"))?;
    let (width, height) = (width as u32, height as u32);
    limits.check_dimensions(width, height)?;
    match scan_start {
        Some(start) if reaches_eoi(bytes, start) => {}
        _ => return Err(err("image file is truncated (no end-of-image marker)")),
    }

    let input = decoder
        .input_colorspace()
        .ok_or_else(|| err("missing frame header"))?;
    // Ask zune for the samples Pillow's libjpeg would hand over before
    // `convert("RGB")`; the 4-component conversions are Pillow's own.
    let output = match input {
        ColorSpace::Luma => ColorSpace::Luma,
        ColorSpace::YCbCr | ColorSpace::RGB => ColorSpace::RGB,
        ColorSpace::CMYK => ColorSpace::CMYK,
        ColorSpace::YCCK => ColorSpace::YCCK,
        other => {
            return Err(err(format!(
                "cannot handle {}-layer images",
                other.num_components()
            )))
        }
    };
    let mut decoder =
        JpegDecoder::new_with_options(ZCursor::new(bytes), options.jpeg_set_out_colorspace(output));
    let mut samples = decoder.decode().map_err(err)?;
    let len = width as usize * height as usize * output.num_components();
    if samples.len() < len {
        return Err(err("decoder returned too few samples"));
    }
    samples.truncate(len);
    let rgb: Vec<u8> = match output {
        ColorSpace::Luma => samples.iter().flat_map(|&v| [v; 3]).collect(),
        ColorSpace::RGB => samples,
        ColorSpace::CMYK => samples
            .chunks_exact(4)
            .flat_map(|p| inverted_cmyk_to_rgb(p[0], p[1], p[2], p[3]))
            .collect(),
        _ => samples
            .chunks_exact(4)
            .flat_map(|p| {
                // libjpeg emits C = 255 - R, Pillow's `CMYK;I` undoes it.
                let [r, g, b] = ycc_to_rgb(p[0], p[1], p[2]);
                inverted_cmyk_to_rgb(255 - r, 255 - g, 255 - b, p[3])
            })
            .collect(),
    };
    let rgb = RgbImage::from_raw(width, height, rgb).ok_or_else(|| err("short pixel buffer"))?;
    Ok(Frame {
        rgb,
        transparency: None,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_matches_pillow_formula() {
        // No ink (stored inverted as 255) -> white; full black -> black.
        assert_eq!(inverted_cmyk_to_rgb(255, 255, 255, 255), [255, 255, 255]);
        assert_eq!(inverted_cmyk_to_rgb(255, 255, 255, 0), [0, 0, 0]);
        // Full cyan, no black.
        assert_eq!(inverted_cmyk_to_rgb(0, 255, 255, 255), [0, 255, 255]);
        assert_eq!(muldiv255(255, 255), 255);
        assert_eq!(muldiv255(128, 255), 128);
    }

    #[test]
    fn ycc_grey_axis_is_identity() {
        for y in [0u8, 1, 77, 128, 254, 255] {
            assert_eq!(ycc_to_rgb(y, 128, 128), [y; 3]);
        }
    }

    #[test]
    fn eoi_scan_skips_stuffing_and_segments() {
        let data = [
            0xFF, 0xD8, 0x12, 0xFF, 0x00, 0xFF, 0xD3, 0xFF, 0xC4, 0x00, 0x04, 0xFF, 0xD9, 0x00,
        ];
        // The FF D9 inside the DHT segment payload is skipped; none follows.
        assert!(!reaches_eoi(&data, 2));
        let mut ok = data.to_vec();
        ok.extend([0xFF, 0xFF, 0xD9]);
        assert!(reaches_eoi(&ok, 2));
    }
}
