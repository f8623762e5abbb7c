//! WebP, BMP and TIFF through the `image` crate's decoders.
//!
//! These formats carry no palette or transparency quirks that survive
//! `convert("RGB")`, so the decoded buffer only needs Pillow's mode rules:
//! alpha dropped without compositing, 16-bit grey clipped like `I;16`, other
//! 16-bit samples reduced to their high byte. Orientation comes from the
//! WebP `EXIF`/`XMP ` chunks or the TIFF's own first IFD.
//!
//! These decoders offer no hook to stop them, and the TIFF decoder's work
//! has no bound in the file's size: its strips may all point at the same
//! bytes, and a deflate strip's stream is read on past the strip's declared
//! length until the strip is full, so a few megabytes of empty deflate
//! blocks shared by thousands of strips cost minutes. They therefore read
//! through [`Deadline`], which fails every read once
//! [`DecodeLimits::max_decode_ms`] have passed. That bounds the time: the
//! decoders decode from the stream, and between two reads they consume at
//! most one buffer of input (flate2's 32 KiB, one LZW or PackBits buffer)
//! and write at most one strip or tile, itself within the pixel limit. The
//! one path that decodes a whole strip from memory, JPEG-compressed TIFF
//! (each strip handed to zune-jpeg with its default limits: frames up to
//! 16384x16384 whatever the strip's size, 100 progressive scans), is refused
//! outright; zune-jpeg's samples are not Pillow's anyway.

use std::io::{BufRead, Cursor, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};

use super::Frame;
use crate::error::ImagingError;
use crate::exif::{self, ExifSource, Metadata};
use crate::limits::DecodeLimits;

/// TIFF `Compression` values of JPEG (old-style and current).
const TIFF_JPEG: [i64; 2] = [6, 7];

/// The encoded file as a decoder reads it: every read fails once the
/// decode's time is up.
struct Deadline<'a> {
    inner: Cursor<&'a [u8]>,
    /// `None` for a limit too far away to represent.
    at: Option<Instant>,
    limit_ms: u64,
}

impl Deadline<'_> {
    fn check(&self) -> std::io::Result<()> {
        if self.at.is_some_and(|at| Instant::now() > at) {
            return Err(std::io::Error::other(format!(
                "decoding took longer than the limit of {} ms",
                self.limit_ms
            )));
        }
        Ok(())
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl BufRead for Deadline<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.check()?;
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
    }
}

impl Seek for Deadline<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

pub(super) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<Frame, ImagingError> {
    let name = format!("{format:?}").to_uppercase();
    if format == ImageFormat::Tiff
        && exif::tiff_compressions(bytes)
            .iter()
            .any(|c| TIFF_JPEG.contains(c))
    {
        return Err(ImagingError::Decode(
            "TIFF: JPEG-compressed TIFF is not supported".into(),
        ));
    }
    // A RIFF container knows its own length: name a cut file as such.
    let declared = bytes
        .get(4..8)
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) + 8);
    let cut = format == ImageFormat::WebP && declared > Some(bytes.len() as u64);
    let err = |e: image::ImageError| {
        if cut {
            ImagingError::Decode(format!("{name}: image file is truncated ({e})"))
        } else {
            ImagingError::Decode(format!("{name}: {e}"))
        }
    };
    let input = Deadline {
        inner: Cursor::new(bytes),
        at: Instant::now().checked_add(Duration::from_millis(limits.max_decode_ms)),
        limit_ms: limits.max_decode_ms,
    };
    let mut reader = image::ImageReader::with_format(input, format);
    let mut caps = image::Limits::default();
    caps.max_alloc = Some(limits.max_alloc());
    reader.limits(caps);
    let decoder = reader.into_decoder().map_err(err)?;
    let (width, height) = decoder.dimensions();
    limits.check_dimensions(width, height)?;
    let image = DynamicImage::from_decoder(decoder).map_err(err)?;
    let meta = match format {
        ImageFormat::WebP => webp_metadata(bytes),
        ImageFormat::Tiff => Metadata {
            exif: Some(ExifSource::TiffFile),
            xmp: exif::tiff_xmp(bytes),
            ..Metadata::default()
        },
        _ => Metadata::default(),
    };
    Ok(Frame {
        rgb: pillow_rgb(image),
        transparency: None,
        meta,
    })
}

/// `convert("RGB")` of the mode Pillow would have opened the file as.
fn pillow_rgb(image: DynamicImage) -> RgbImage {
    let (w, h) = (image.width(), image.height());
    let from = |data: Vec<u8>| RgbImage::from_raw(w, h, data).expect("buffer sized for the image");
    match image {
        DynamicImage::ImageRgb8(img) => img,
        DynamicImage::ImageRgba8(img) => {
            from(img.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect())
        }
        DynamicImage::ImageLuma8(img) => from(img.pixels().flat_map(|p| [p[0]; 3]).collect()),
        DynamicImage::ImageLumaA8(img) => from(img.pixels().flat_map(|p| [p[0]; 3]).collect()),
        DynamicImage::ImageLuma16(img) => from(
            img.pixels()
                .flat_map(|p| [p[0].min(255) as u8; 3])
                .collect(),
        ),
        DynamicImage::ImageLumaA16(img) => {
            from(img.pixels().flat_map(|p| [(p[0] >> 8) as u8; 3]).collect())
        }
        DynamicImage::ImageRgb16(img) => from(
            img.pixels()
                .flat_map(|p| p.0.map(|v| (v >> 8) as u8))
                .collect(),
        ),
        DynamicImage::ImageRgba16(img) => from(
            img.pixels()
                .flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8))
                .collect(),
        ),
        other => other.to_rgb8(),
    }
}

/// The first `EXIF` and `XMP ` chunks of an extended (VP8X) WebP, which is
/// what libwebp's demuxer hands to Pillow.
fn webp_metadata(bytes: &[u8]) -> Metadata {
    let mut meta = Metadata::default();
    let mut pos = 12;
    let mut extended = false;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some(data) = bytes.get(pos + 8..(pos + 8).saturating_add(size)) else {
            break;
        };
        match &head[..4] {
            b"VP8X" => extended = true,
            b"EXIF" if extended && meta.exif.is_none() => {
                meta.exif = Some(ExifSource::Bytes(data.to_vec()))
            }
            b"XMP " if extended && meta.xmp.is_none() => meta.xmp = Some(data.to_vec()),
            _ => {}
        }
        pos += 8 + size + (size & 1);
    }
    meta
}
