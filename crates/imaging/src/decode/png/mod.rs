//! PNG with `PngImagePlugin` semantics.
//!
//! The `png` crate inflates and unfilters; everything Pillow decides on its
//! own is done here, in three steps:
//!
//! - [`chunks`]: one walk over the chunk stream, as Pillow walks it (its
//!   CRC checks, the IHDR dimensions against the limits, EXIF/XMP before or
//!   after the image data, text bounded as in [`text`]), collecting what the
//!   other steps need: the header, palette, `tRNS` and the image data's
//!   chunks;
//! - [`pixels`]: the raw samples, with Pillow's rules for where the image
//!   data may end;
//! - [`modes`]: those samples to `convert("RGB")` of the mode Pillow opens
//!   them as, and the `transparency` entry that `convert("RGB")` leaves
//!   behind.

mod chunks;
mod modes;
mod pixels;
mod text;

use super::Frame;
use crate::error::ImagingError;
use crate::limits::DecodeLimits;

fn err(msg: impl Into<String>) -> ImagingError {
    ImagingError::Decode(format!("PNG: {}", msg.into()))
}

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, ImagingError> {
    let stream = chunks::walk(bytes, limits)?;
    let samples = pixels::read(bytes, &stream.header, &stream.image_data, limits)?;

    let palette: Vec<[u8; 3]> = stream
        .palette
        .unwrap_or_default()
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let rgb = modes::to_rgb(&stream.header, &samples, &palette);
    let transparency = match stream.trns {
        Some(trns) => modes::transparency_key(stream.header.mode, trns, &palette)?,
        None => None,
    };
    Ok(Frame {
        rgb,
        transparency,
        meta: stream.text.into_metadata(),
    })
}
