//! WebP, BMP and TIFF through the `image` crate's decoders.
//!
//! These formats carry no palette or transparency quirks that survive
//! `convert("RGB")`, so the decoded buffer only needs Pillow's mode rules:
//! alpha dropped without compositing, 16-bit grey clipped like `I;16`, other
//! 16-bit samples reduced to their high byte. Orientation comes from the
//! WebP `EXIF`/`XMP ` chunks or the TIFF's own first IFD.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, RgbImage};

use super::Frame;
use crate::error::ImagingError;
use crate::exif::{self, ExifSource, Metadata};
use crate::limits::DecodeLimits;

pub(super) fn decode(
    bytes: &[u8],
    format: ImageFormat,
    limits: &DecodeLimits,
) -> Result<Frame, ImagingError> {
    let name = format!("{format:?}").to_uppercase();
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
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
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
