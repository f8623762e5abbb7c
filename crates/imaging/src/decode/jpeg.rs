//! JPEG with `JpegImagePlugin` semantics, decoded by libjpeg-turbo: the
//! library Pillow itself uses (through TurboJPEG, built from the source
//! bundled with `turbojpeg-sys` and linked statically), with the settings
//! Pillow leaves in place (accurate integer IDCT, fancy chroma upsampling), so
//! the samples are Pillow's bit for bit (turbojpeg-sys 1.2 bundles
//! libjpeg-turbo 3.1.0, Pillow 13's wheels 3.2.0: identical on every parity
//! fixture).
//!
//! Everything Pillow decides around the codec is replicated: the frame header
//! checks of its `SOF` handler, 4-component files treated as Adobe-inverted
//! CMYK (libjpeg turns YCCK into CMYK, Pillow's `cmyk2rgb` does the rest), a
//! file without its EOI marker rejected as "truncated", libjpeg's warnings
//! (corrupt but recoverable data) ignored while its errors fail the decode,
//! and EXIF gathered from the APP1 segments the way Pillow's marker loop does,
//! including its habit of swallowing broken EXIF when no JFIF density is
//! present.
//!
//! One thing Pillow does not do: scans are counted against
//! [`DecodeLimits::max_jpeg_scans`] before decoding. Each progressive scan
//! makes libjpeg walk every block of the image however few bytes the scan
//! holds, so a small file of repeated scans is a CPU bomb (the second issue
//! of <https://libjpeg-turbo.org/pmwiki/uploads/About/TwoIssueswiththeJPEGStandard.pdf>).
//! The count comes from the same walk to the end-of-image marker that the
//! truncation check makes, so such a file is refused in time proportional
//! to its size; libjpeg-turbo's own `TJPARAM_SCANLIMIT` is set to the same
//! value, counting what the library actually decodes, so the bound holds
//! even where its reading of the markers and this walk's differ.

use std::ffi::{c_int, CStr};

use image::RgbImage;
use turbojpeg_sys as tj;

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

/// Start-of-frame markers (SOF0..SOF15 less DHT, JPG and DAC), which Pillow's
/// `SOF` handler reads.
fn is_sof(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// The frame header fields Pillow's `SOF` handler looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FrameHeader {
    bits: u8,
    width: u32,
    height: u32,
    layers: u8,
}

/// What Pillow's `_open` learns from the segments up to the first SOS.
struct Markers {
    meta: Metadata,
    /// The last frame header seen (Pillow's handler overwrites its fields).
    frame: Option<FrameHeader>,
    /// Where the first scan's entropy-coded data starts.
    scan_start: Option<usize>,
}

/// Segments up to the first SOS, as Pillow's `_open` reads them.
fn read_markers(bytes: &[u8]) -> Markers {
    let mut exif: Option<Vec<u8>> = None;
    let mut xmp = None;
    let mut has_dpi = false;
    let mut frame = None;
    let mut pos = 2;
    let mut scan_start = None;
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
            m if is_sof(m) && seg.len() >= 6 => {
                frame = Some(FrameHeader {
                    bits: seg[0],
                    height: u32::from(u16::from_be_bytes([seg[1], seg[2]])),
                    width: u32::from(u16::from_be_bytes([seg[3], seg[4]])),
                    layers: seg[5],
                });
            }
            SOS => {
                scan_start = Some(pos + 2 + len);
                break;
            }
            _ => {}
        }
        pos += 2 + len;
    }
    let meta = Metadata {
        swallow_exif_errors: scan_start.is_some() && exif.is_some() && !has_dpi,
        exif: exif.map(ExifSource::Bytes),
        xmp_text: None,
        xmp,
    };
    Markers {
        meta,
        frame,
        scan_start,
    }
}

/// The number of scans, counting the first one (whose data starts at
/// `pos`) and every SOS after it, when an EOI marker follows them; `None`
/// without one. Pillow (through libjpeg's suspending source) fails with
/// "image file is truncated" without an EOI; TurboJPEG's memory source would
/// instead make one up, warn, and pad the missing rows.
fn scans_to_eoi(bytes: &[u8], mut pos: usize) -> Option<u64> {
    let mut scans = 1;
    while pos + 1 < bytes.len() {
        if bytes[pos] != 0xFF {
            pos += 1;
            continue;
        }
        match bytes[pos + 1] {
            EOI => return Some(scans),
            0xFF => pos += 1,
            0x00 | 0xD0..=0xD7 | 0x01 => pos += 2,
            marker => {
                // DHT, SOS, DQT, DRI, APPn... between progressive scans.
                let len = bytes.get(pos + 2..pos + 4)?;
                scans += u64::from(marker == SOS);
                pos += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
    None
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

/// Rewrites `w * h` CMYK pixels as RGB in place (each RGB pixel lands at or
/// before the CMYK pixel it comes from) and drops the spare quarter.
fn cmyk_to_rgb_in_place(samples: &mut Vec<u8>) {
    let pixels = samples.len() / 4;
    for i in 0..pixels {
        let p = &samples[4 * i..4 * i + 4];
        let rgb = inverted_cmyk_to_rgb(p[0], p[1], p[2], p[3]);
        samples[3 * i..3 * i + 3].copy_from_slice(&rgb);
    }
    samples.truncate(3 * pixels);
}

/// libjpeg's text for `JWRN_JPEG_EOF`: its data source ran out of bytes.
const PREMATURE_EOF: &str = "Premature end of JPEG file";

/// A TurboJPEG decompressor instance, destroyed on drop.
struct Decompressor {
    handle: tj::tjhandle,
    /// The `TJPARAM_SCANLIMIT` it was made with, for the probe instance.
    scan_limit: c_int,
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the handle came from `tj3Init` and is destroyed only here.
        unsafe { tj::tj3Destroy(self.handle) }
    }
}

impl Decompressor {
    /// A fresh instance with the decoding settings Pillow's libjpeg has:
    /// accurate integer IDCT and smooth ("fancy") chroma upsampling, which
    /// are TurboJPEG's defaults too, set here to make the choice visible;
    /// and a limit on the scans it decodes (0: none).
    fn new(stop_on_warning: bool, scan_limit: c_int) -> Result<Self, ImagingError> {
        // SAFETY: no preconditions; a null handle is checked below.
        let handle = unsafe { tj::tj3Init(tj::TJINIT_TJINIT_DECOMPRESS as c_int) };
        if handle.is_null() {
            return Err(err(format!(
                "cannot start libjpeg-turbo: {}",
                error_text(handle)
            )));
        }
        let mut this = Self { handle, scan_limit };
        this.set(tj::TJPARAM_TJPARAM_FASTDCT, 0)?;
        this.set(tj::TJPARAM_TJPARAM_FASTUPSAMPLE, 0)?;
        this.set(
            tj::TJPARAM_TJPARAM_STOPONWARNING,
            c_int::from(stop_on_warning),
        )?;
        this.set(tj::TJPARAM_TJPARAM_SCANLIMIT, scan_limit)?;
        Ok(this)
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: valid handle; unknown parameters just return -1.
        unsafe { tj::tj3Get(self.handle, param as c_int) }
    }

    fn set(&mut self, param: tj::TJPARAM, value: c_int) -> Result<(), ImagingError> {
        // SAFETY: valid handle; bad parameters or values return -1.
        if unsafe { tj::tj3Set(self.handle, param as c_int, value) } != 0 {
            return Err(err(format!("libjpeg-turbo: {}", error_text(self.handle))));
        }
        Ok(())
    }

    /// Runs a TurboJPEG call on this instance and judges it as Pillow would:
    /// failed when libjpeg raised an error, fine when it only warned (Pillow
    /// silences libjpeg's warnings about corrupt but recoverable data).
    fn run(&mut self, call: impl Fn(tj::tjhandle) -> c_int) -> Result<(), String> {
        if call(self.handle) == 0 {
            return Ok(());
        }
        let message = error_text(self.handle);
        // SAFETY: valid handle.
        let code = unsafe { tj::tj3GetErrorCode(self.handle) };
        if code != tj::TJERR_TJERR_WARNING as c_int {
            return Err(message);
        }
        // TurboJPEG also says "warning" when an error followed a warning. The
        // text tells the two apart: libjpeg reports only its first warning,
        // and an error overwrites it. So repeat the call on a fresh instance
        // that stops at the first warning (the same one: decoding is
        // deterministic, and rows it rewrites get the same values) and
        // compare. A fresh instance, because TurboJPEG does not reset one
        // that stopped while reading a header.
        let probe = Self::new(true, self.scan_limit).map_err(|e| e.to_string())?;
        call(probe.handle);
        let first_warning = error_text(probe.handle);
        if message != first_warning {
            return Err(message);
        }
        if message == PREMATURE_EOF {
            // The data ran out under libjpeg: where Pillow's suspending
            // source waits for bytes that never come.
            return Err("image file is truncated (premature end of JPEG file)".into());
        }
        Ok(())
    }
}

/// TurboJPEG's message for the last failure on `handle` (or, for a null
/// handle, on this thread).
fn error_text(handle: tj::tjhandle) -> String {
    // SAFETY: tj3GetErrorStr accepts any handle value it returned (or null)
    // and returns a NUL-terminated buffer that stays valid until the next
    // TurboJPEG call on this thread; it is copied out at once.
    let text = unsafe { tj::tj3GetErrorStr(handle) };
    if text.is_null() {
        return "unknown libjpeg-turbo error".into();
    }
    // SAFETY: non-null, NUL-terminated (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .trim()
        .to_owned()
}

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, ImagingError> {
    let Markers {
        meta,
        frame,
        scan_start,
    } = read_markers(bytes);
    let Some(frame) = frame else {
        return Err(err(match scan_start {
            None => "image file is truncated (no frame header)",
            Some(_) => "no frame header (SOF) before the image data",
        }));
    };
    // Pillow's `SOF` handler refuses these before any decoding.
    if frame.bits != 8 {
        return Err(err(format!("cannot handle {}-bit layers", frame.bits)));
    }
    if !matches!(frame.layers, 1 | 3 | 4) {
        return Err(err(format!("cannot handle {}-layer images", frame.layers)));
    }
    limits.check_dimensions(frame.width, frame.height)?;
    let scans = scan_start.and_then(|start| scans_to_eoi(bytes, start));
    let scans = scans.ok_or_else(|| err("image file is truncated (no end-of-image marker)"))?;
    limits.check_scans(scans)?;

    let len = tj::size_t::try_from(bytes.len()).map_err(|_| err("file too large"))?;
    let scan_limit = c_int::try_from(limits.max_jpeg_scans).unwrap_or(c_int::MAX);
    let mut decompressor = Decompressor::new(false, scan_limit)?;
    // SAFETY: `bytes` outlives the call and `len` is its length.
    decompressor
        .run(|h| unsafe { tj::tj3DecompressHeader(h, bytes.as_ptr(), len) })
        .map_err(err)?;
    let dimension = |param| {
        u32::try_from(decompressor.get(param)).map_err(|_| err("libjpeg-turbo found no frame size"))
    };
    let width = dimension(tj::TJPARAM_TJPARAM_JPEGWIDTH)?;
    let height = dimension(tj::TJPARAM_TJPARAM_JPEGHEIGHT)?;
    limits.check_dimensions(width, height)?;
    // Ask libjpeg for what Pillow's decoder asks it for: RGB from YCbCr and
    // RGB files, CMYK from CMYK and YCCK ones ("CMYK;I"). Pillow's
    // `convert("RGB")` replicates greyscale, exactly as libjpeg's
    // grey-to-RGB output does.
    let colorspace = u32::try_from(decompressor.get(tj::TJPARAM_TJPARAM_COLORSPACE));
    let (format, channels) = match colorspace {
        Ok(tj::TJCS_TJCS_GRAY | tj::TJCS_TJCS_RGB | tj::TJCS_TJCS_YCbCr) => (tj::TJPF_TJPF_RGB, 3),
        Ok(tj::TJCS_TJCS_CMYK | tj::TJCS_TJCS_YCCK) => (tj::TJPF_TJPF_CMYK, 4),
        _ => return Err(err("unsupported colour space")),
    };

    let size = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(|| err("image too large for memory"))?;
    let mut samples = vec![0u8; size];
    let out = samples.as_mut_ptr();
    // SAFETY: `out` points at `width * height * channels` bytes, exactly
    // what a pitch of 0 (tightly packed rows) at this size and pixel format
    // fills; scaling and cropping are off on this fresh instance.
    decompressor
        .run(|h| unsafe { tj::tj3Decompress8(h, bytes.as_ptr(), len, out, 0, format) })
        .map_err(err)?;
    if channels == 4 {
        cmyk_to_rgb_in_place(&mut samples);
    }
    let rgb =
        RgbImage::from_raw(width, height, samples).ok_or_else(|| err("short pixel buffer"))?;
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
    fn cmyk_converts_in_place() {
        let pixels: Vec<[u8; 4]> = (0..7u8)
            .map(|i| [i * 30, 255 - i * 20, i * 7 + 100, 200 - i * 25])
            .collect();
        let mut samples: Vec<u8> = pixels.iter().flatten().copied().collect();
        cmyk_to_rgb_in_place(&mut samples);
        let expected: Vec<u8> = pixels
            .iter()
            .flat_map(|p| inverted_cmyk_to_rgb(p[0], p[1], p[2], p[3]))
            .collect();
        assert_eq!(samples, expected);
    }

    #[test]
    fn eoi_scan_skips_stuffing_and_segments() {
        let data = [
            0xFF, 0xD8, 0x12, 0xFF, 0x00, 0xFF, 0xD3, 0xFF, 0xC4, 0x00, 0x04, 0xFF, 0xD9, 0x00,
        ];
        // The FF D9 inside the DHT segment payload is skipped; none follows.
        assert_eq!(scans_to_eoi(&data, 2), None);
        let mut ok = data.to_vec();
        ok.extend([0xFF, 0xFF, 0xD9]);
        assert_eq!(scans_to_eoi(&ok, 2), Some(1));
    }

    #[test]
    fn scans_are_counted_up_to_eoi() {
        // Entropy data, then two more scans (SOS segments with data), EOI,
        // and an SOS after it that libjpeg never reads.
        let sos = [
            0xFF, 0xDA, 0x00, 0x08, 1, 1, 0, 0, 0x3F, 0, 0x12, 0xFF, 0x00,
        ];
        let mut data = vec![0xFF, 0xD8, 0x34, 0x56];
        data.extend(sos);
        data.extend([0xFF, 0xC4, 0x00, 0x03, 0xDA]);
        data.extend(sos);
        data.extend([0xFF, 0xD9]);
        data.extend(sos);
        assert_eq!(scans_to_eoi(&data, 2), Some(3));
    }

    #[test]
    fn frame_header_is_read_like_pillow() {
        // SOI, SOF2 (12-bit, 3x2, 4 layers), SOS.
        let data = [
            0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x08, 12, 0x00, 0x02, 0x00, 0x03, 4, 0xFF, 0xDA, 0x00,
            0x02,
        ];
        let m = read_markers(&data);
        let frame = FrameHeader {
            bits: 12,
            width: 3,
            height: 2,
            layers: 4,
        };
        assert_eq!(m.frame, Some(frame));
        assert_eq!(m.scan_start, Some(data.len()));
        // DHT (0xC4) is not a frame header.
        let mut dht = data;
        dht[3] = 0xC4;
        assert_eq!(read_markers(&dht).frame, None);
    }
}
