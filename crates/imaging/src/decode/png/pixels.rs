//! The raw samples, through the `png` crate (which inflates and unfilters),
//! with Pillow's rules for where the image data may end. Like Pillow's zlib
//! decoder it stops inflating after the last row, so the work is bounded by
//! the pixels and every deflate symbol costs input bits.
//!
//! When the crate stops early its error does not say how far the zlib
//! stream got, which is what Pillow's verdict depends on (a complete stream
//! that ends after a row is no error), so only then is the stream inflated
//! a second time, from the image data the chunk walk collected, through a
//! window of fixed size and no further than the image needs.

use std::io::Cursor;

use super::chunks::Header;
use super::err;
use crate::error::ImagingError;
use crate::limits::DecodeLimits;

/// The unfiltered samples, in rows of `line_size` bytes.
pub(super) struct Samples {
    pub data: Vec<u8>,
    pub line_size: usize,
}

/// Adam7 passes: first column, first row, column step, row step.
const ADAM7: [(u32, u32, u32, u32); 7] = [
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
];

/// The scanlines of the image data, as (count, bytes with their filter
/// bytes): Adam7 passes with no pixels have none.
fn scanlines(width: u32, height: u32, interlaced: bool, bits_per_pixel: u8) -> (u64, u64) {
    let row_bytes = |samples: u32| 1 + (u64::from(samples) * u64::from(bits_per_pixel)).div_ceil(8);
    if !interlaced {
        return (u64::from(height), u64::from(height) * row_bytes(width));
    }
    let count = |size: u32, start: u32, step: u32| size.saturating_sub(start).div_ceil(step);
    ADAM7
        .iter()
        .filter(|&&(x, _, dx, _)| count(width, x, dx) > 0)
        .map(|&(x, y, dx, dy)| {
            let lines = u64::from(count(height, y, dy));
            (lines, lines * row_bytes(count(width, x, dx)))
        })
        .fold((0, 0), |(n, b), (lines, bytes)| (n + lines, b + bytes))
}

/// How the zlib stream of the image data ends, relative to what the image
/// needs.
#[derive(Debug, PartialEq)]
enum StreamEnd {
    /// Complete (checksum right) after exactly this many bytes.
    Complete(u64),
    /// The data runs out before the stream ends.
    Cut,
    /// Not a valid stream (or a wrong checksum).
    Corrupt(String),
    /// It holds at least the bytes the image needs.
    Enough,
}

/// Inflates `data` through a sliding window (96 KiB whatever the image
/// size), at most `needed` bytes of it.
fn stream_end(data: &[u8], needed: u64) -> StreamEnd {
    const WINDOW: usize = 32 * 1024;
    let mut inflater = fdeflate::Decompressor::new();
    let mut buf = vec![0u8; 3 * WINDOW];
    let (mut input, mut pos, mut total) = (0, 0, 0u64);
    while !inflater.is_done() {
        if total >= needed {
            return StreamEnd::Enough;
        }
        if pos > 2 * WINDOW {
            buf.copy_within(pos - WINDOW..pos, 0);
            pos = WINDOW;
        }
        match inflater.read(&data[input..], &mut buf, pos, true) {
            Ok((consumed, produced)) => {
                input += consumed;
                pos += produced;
                total += produced as u64;
                if consumed == 0 && produced == 0 && !inflater.is_done() {
                    return StreamEnd::Cut;
                }
            }
            Err(fdeflate::DecompressionError::InsufficientInput) => return StreamEnd::Cut,
            Err(e) => return StreamEnd::Corrupt(format!("{e:?}")),
        }
    }
    StreamEnd::Complete(total)
}

/// The unfiltered samples as Pillow's zlib decoder leaves them. Like
/// Pillow, it stops inflating after the last row (so a missing IEND, or
/// data cut after the last row, does not matter); rows are also complete
/// when the zlib stream ends exactly after one of them (Pillow leaves the
/// rest black); data that runs out first ("image file is truncated"), a
/// corrupt stream or a wrong Adler-32 are errors. `image_data` is the
/// stream's chunks as the walk found them.
pub(super) fn read(
    bytes: &[u8],
    header: &Header,
    image_data: &[&[u8]],
    limits: &DecodeLimits,
) -> Result<Samples, ImagingError> {
    let mut options = png::DecodeOptions::default();
    // CRCs were checked (as far as Pillow checks them) by the walk; zlib
    // verifies the stream's checksum, in Pillow as here.
    options.set_ignore_crc(true);
    options.set_ignore_adler32(false);
    // Text was read (and its size bounded) by the walk; the crate would
    // keep a second copy of every text chunk.
    options.set_ignore_text_chunk(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(bytes), options);
    decoder.set_limits(png::Limits {
        bytes: limits.max_alloc_usize(),
    });
    // Raw samples: every conversion is Pillow's (`super::modes`).
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| err(e.to_string()))?;
    let (width, height, interlaced) = {
        let info = reader.info();
        (info.width, info.height, info.interlaced)
    };
    let (colour, depth) = reader.output_color_type();
    // The crate reads the first IHDR, Pillow the last one.
    let found = (width, height, depth as u8, colour as u8);
    if found
        != (
            header.width,
            header.height,
            header.bit_depth,
            header.color_type,
        )
    {
        return Err(err("conflicting IHDR chunks"));
    }
    let bits_per_pixel = colour.samples() as u8 * depth as u8;
    let too_large = || err("image too large");
    let line_size = reader.output_line_size(width).ok_or_else(too_large)?;
    let size = reader.output_buffer_size().ok_or_else(too_large)?;
    let mut data = vec![0u8; size];
    let (total, needed) = scanlines(width, height, interlaced, bits_per_pixel);
    let (mut rows, mut inflated) = (0u64, 0u64);
    while rows < total {
        let row = match reader.next_interlaced_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                return match stream_end(&image_data.concat(), needed) {
                    StreamEnd::Complete(n) if n == inflated && rows > 0 => {
                        Ok(Samples { data, line_size })
                    }
                    StreamEnd::Complete(_) | StreamEnd::Cut => Err(err(
                        "image file is truncated (the image data stops before the last row)",
                    )),
                    StreamEnd::Corrupt(why) => Err(err(format!("corrupt image data ({why})"))),
                    StreamEnd::Enough => Err(err(e.to_string())),
                };
            }
        };
        match row.interlace() {
            png::InterlaceInfo::Adam7(pass) => {
                png::expand_interlaced_row(&mut data, line_size, row.data(), pass, bits_per_pixel)
            }
            png::InterlaceInfo::Null(_) => {
                let start = rows as usize * line_size;
                data[start..start + row.data().len()].copy_from_slice(row.data());
            }
        }
        inflated += 1 + row.data().len() as u64;
        rows += 1;
    }
    // Pillow stops after the last row, but zlib goes on to the end of the
    // stream in the same call when the data is there, and fails on a wrong
    // checksum (or bad data) right after the rows. A file cut there, or odd
    // chunks after the data, are no error to Pillow.
    match reader.next_interlaced_row() {
        Err(png::DecodingError::Format(e))
            if e.to_string().starts_with("Corrupt deflate stream") =>
        {
            Err(err(format!("corrupt image data ({e})")))
        }
        _ => Ok(Samples { data, line_size }),
    }
}
