//! GIF's first frame with `GifImagePlugin` semantics.
//!
//! Pillow does not composite the first frame onto a background colour: the
//! canvas (the logical screen, grown if the frame sticks out) starts as the
//! transparent index, or index 0 without one, and the frame's indices are
//! pasted in. The whole canvas is then looked up in the frame's palette
//! (local, else global; an identity grey palette or none means plain grey
//! levels). The `gif` crate decodes LZW into indices; the rest is done here.

use std::io::Cursor;

use gif::{ColorOutput, DecodeOptions, MemoryLimit};
use image::RgbImage;

use super::Frame;
use crate::error::ImagingError;
use crate::exif::Metadata;
use crate::limits::DecodeLimits;

fn err(msg: impl std::fmt::Display) -> ImagingError {
    ImagingError::Decode(format!("GIF: {msg}"))
}

/// The `gif` crate's errors, naming a cut file as Pillow does.
fn decoding(e: gif::DecodingError) -> ImagingError {
    match e {
        gif::DecodingError::UnexpectedEof => err("image file is truncated"),
        gif::DecodingError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            err("image file is truncated")
        }
        e => err(e),
    }
}

/// `GifImageFile._is_palette_needed` is false for `(i, i, i)` ramps, which
/// Pillow opens as mode `L` instead of `P`.
fn palette_lookup(palette: Option<&[u8]>) -> Vec<[u8; 3]> {
    let entries: Vec<[u8; 3]> = palette
        .unwrap_or_default()
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let is_ramp = entries
        .iter()
        .enumerate()
        .all(|(i, c)| c.iter().all(|&v| usize::from(v) == i));
    if is_ramp {
        (0..=255u8).map(|i| [i; 3]).collect()
    } else {
        entries
    }
}

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, ImagingError> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    options.set_memory_limit(MemoryLimit::Bytes(
        std::num::NonZeroU64::new(limits.max_alloc()).ok_or_else(|| err("zero memory limit"))?,
    ));
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(decoding)?;
    let (screen_w, screen_h) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let global = decoder.global_palette().map(<[u8]>::to_vec);

    let frame = decoder
        .next_frame_info()
        .map_err(decoding)?
        .ok_or_else(|| err("image not found in GIF file"))?;
    let (left, top) = (u32::from(frame.left), u32::from(frame.top));
    let (fw, fh) = (u32::from(frame.width), u32::from(frame.height));
    // Pillow grows the canvas to contain the first frame.
    let width = screen_w.max(left + fw);
    let height = screen_h.max(top + fh);
    limits.check_dimensions(width, height)?;
    let transparent = frame.transparent;
    let lookup = palette_lookup(frame.palette.as_deref().or(global.as_deref()));

    let mut indices = vec![0u8; decoder.buffer_size()];
    decoder.read_into_buffer(&mut indices).map_err(decoding)?;

    let background = transparent.unwrap_or(0);
    let mut canvas = vec![background; width as usize * height as usize];
    if fw > 0 {
        for (row, src) in indices.chunks_exact(fw as usize).enumerate() {
            let start = (top as usize + row) * width as usize + left as usize;
            canvas[start..start + fw as usize].copy_from_slice(src);
        }
    }
    let colour = |i: u8| lookup.get(usize::from(i)).copied().unwrap_or([0; 3]);
    let rgb: Vec<u8> = canvas.iter().flat_map(|&i| colour(i)).collect();
    Ok(Frame {
        rgb: RgbImage::from_raw(width, height, rgb).ok_or_else(|| err("short pixel buffer"))?,
        // info["transparency"] (an index) becomes its colour in convert("RGB").
        transparency: transparent.map(colour),
        meta: Metadata::default(),
    })
}
