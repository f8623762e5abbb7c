//! Encoded bytes to the RGB image `transformers.image_utils.load_image`
//! returns: `PIL.Image.open`, `ImageOps.exif_transpose`, `convert("RGB")`.
//!
//! Each format module reproduces what Pillow's plugin and `convert` decide
//! (modes, palettes, bit depths, metadata); this module sniffs the format,
//! enforces the limits and applies the orientation they report.

mod gif;
mod jpeg;
mod png;
mod via_image;

use image::{ImageFormat, RgbImage};

use crate::error::ImagingError;
use crate::exif::Metadata;
use crate::format::{sniff, Format, Sniffed};
use crate::limits::DecodeLimits;
use crate::orient;

/// A decoded image as `load_image` returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Upright RGB pixels.
    pub rgb: RgbImage,
    /// The colour Pillow still records as `info["transparency"]` after
    /// `convert("RGB")` (from a PNG `tRNS` chunk or a GIF transparent index),
    /// reduced to the key `convert("RGBA")` would match. It only matters when
    /// the processor runs with `do_convert_rgb`, see
    /// [`Decoded::into_processor_input`].
    pub transparency: Option<[u8; 3]>,
}

impl Decoded {
    /// The array transformers' `PilBackend.process_image` hands on. With
    /// `do_convert_rgb`, `convert_to_rgb` sees the `transparency` entry, keys
    /// matching pixels out via `convert("RGBA")` and composites onto white,
    /// so exactly those pixels become `(255, 255, 255)`.
    pub fn into_processor_input(self, do_convert_rgb: bool) -> RgbImage {
        let mut rgb = self.rgb;
        if let (true, Some(key)) = (do_convert_rgb, self.transparency) {
            for px in rgb.pixels_mut() {
                if px.0 == key {
                    px.0 = [255; 3];
                }
            }
        }
        rgb
    }
}

/// What a format module hands back: pixels before orientation.
struct Frame {
    rgb: RgbImage,
    transparency: Option<[u8; 3]>,
    meta: Metadata,
}

/// Decodes `bytes` with Pillow's semantics, keeping the transparency key.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, ImagingError> {
    limits.check_bytes(bytes.len())?;
    let frame = match sniff(bytes) {
        Sniffed::Supported(Format::Png) => png::decode(bytes, limits)?,
        Sniffed::Supported(Format::Jpeg) => jpeg::decode(bytes, limits)?,
        Sniffed::Supported(Format::Gif) => gif::decode(bytes, limits)?,
        Sniffed::Supported(Format::WebP) => via_image::decode(bytes, ImageFormat::WebP, limits)?,
        Sniffed::Supported(Format::Bmp) => via_image::decode(bytes, ImageFormat::Bmp, limits)?,
        Sniffed::Supported(Format::Tiff) => via_image::decode(bytes, ImageFormat::Tiff, limits)?,
        Sniffed::Unsupported(name) => return Err(ImagingError::UnsupportedFormat(name.into())),
        Sniffed::Unknown => return Err(ImagingError::UnsupportedFormat("none".into())),
    };
    let code = frame
        .meta
        .orientation(bytes)
        .map_err(ImagingError::Decode)?;
    Ok(Decoded {
        rgb: orient::apply(frame.rgb, code),
        transparency: frame.transparency,
    })
}

/// Decodes `bytes` to 8-bit RGB exactly as `load_image` would (EXIF
/// orientation applied, alpha dropped without compositing).
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, ImagingError> {
    decode(bytes, limits).map(|d| d.rgb)
}
