//! PNG with `PngImagePlugin` semantics.
//!
//! The `png` crate inflates and unfilters; everything Pillow decides on its
//! own is done here from the raw samples: the mode each bit depth maps to
//! (16-bit grey becomes `I;16` and is *clipped* to 255 by `convert("RGB")`,
//! other 16-bit samples keep their high byte, 2/4-bit grey is scaled), palette
//! lookups that fall off a short palette (black), alpha dropped without
//! compositing, and the `transparency` entry that `convert("RGB")` leaves
//! behind. Chunks are walked here as Pillow walks them, for its CRC checks
//! and for EXIF/XMP that may sit before or after the image data.
//!
//! Work is bounded by the file and the pixels: walking chunks and checking
//! CRCs is linear in the bytes, inflating the image data stops after the
//! last row, and every deflate symbol costs input bits. The exception is
//! compressed text, where a kilobyte inflates to Pillow's 1 MiB cap per
//! chunk: Pillow's `MAX_TEXT_MEMORY` (64 MiB of text per file) bounds that,
//! and here it is also charged with the text Pillow inflates and then
//! discards (corrupt streams, chunks without a keyword, iTXt that is not
//! UTF-8), which Pillow does not count and which would otherwise leave
//! thousands of such chunks free to cost a megabyte of inflation each.

use std::io::Cursor;

use image::RgbImage;

use super::Frame;
use crate::error::ImagingError;
use crate::exif::{ExifSource, Metadata};
use crate::limits::DecodeLimits;

const SIGNATURE_LEN: usize = 8;

/// Pillow refuses to inflate more than `MAX_TEXT_CHUNK` bytes of one text.
const MAX_TEXT_CHUNK: usize = 1024 * 1024;

/// Pillow's `MAX_TEXT_MEMORY`: the most text one file may hold.
const MAX_TEXT_MEMORY: u64 = 64 * MAX_TEXT_CHUNK as u64;

fn err(msg: impl Into<String>) -> ImagingError {
    ImagingError::Decode(format!("PNG: {}", msg.into()))
}

/// Pillow's image mode for an IHDR bit depth and colour type (`_MODES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
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

struct Header {
    width: u32,
    height: u32,
    bit_depth: u8,
    color_type: u8,
    mode: Mode,
}

/// What Pillow's `PngStream` collects from the chunks around the pixels.
#[derive(Default)]
struct Chunks {
    palette: Option<Vec<u8>>,
    trns: Option<Vec<u8>>,
    exif: Option<ExifSource>,
    raw_profile: Option<Vec<u8>>,
    xmp_text: Option<Vec<u8>>,
    xmp: Option<Vec<u8>>,
    animated: bool,
    /// Pillow's `text_memory`, plus the inflated text it discards.
    text_memory: u64,
}

/// One chunk: type, payload, and its stored CRC when present.
struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
    crc: Option<u32>,
    end: usize,
}

enum Next<'a> {
    Chunk(Chunk<'a>),
    /// Fewer than 8 bytes left, or a type that is not 4 word characters:
    /// Pillow's `PngStream.read` fails there.
    End,
    /// The header promises more data than the file has.
    Truncated([u8; 4]),
}

fn next_chunk(bytes: &[u8], pos: usize) -> Next<'_> {
    let Some(head) = bytes.get(pos..pos + 8) else {
        return Next::End;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = [head[4], head[5], head[6], head[7]];
    if !kind.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
        return Next::End;
    }
    let start = pos + 8;
    let Some(data) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
        return Next::Truncated(kind);
    };
    let end = start + len;
    let crc = bytes
        .get(end..end + 4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    Next::Chunk(Chunk {
        kind,
        data,
        crc,
        end: end + 4,
    })
}

/// CRC-32 (ISO-HDLC), the checksum PNG chunks carry, over the chunk type
/// and data (crc32fast: the implementation the `png` crate itself uses,
/// SIMD where the CPU has it).
fn crc32(kind: &[u8], data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    hasher.finalize()
}

fn parse_header(data: &[u8]) -> Result<Header, ImagingError> {
    if data.len() < 13 {
        return Err(err("truncated IHDR chunk"));
    }
    let width = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    let height = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    let (bit_depth, color_type) = (data[8], data[9]);
    let mode = match (bit_depth, color_type) {
        (1, 0) => Mode::Bilevel,
        (2 | 4 | 8, 0) => Mode::L,
        (16, 0) => Mode::I16,
        (8 | 16, 2) => Mode::Rgb,
        (1 | 2 | 4 | 8, 3) => Mode::Palette,
        (8, 4) => Mode::La,
        (16, 4) => Mode::La16,
        (8 | 16, 6) => Mode::Rgba,
        _ => {
            return Err(err(format!(
                "unsupported bit depth {bit_depth} with colour type {color_type}"
            )))
        }
    };
    Ok(Header {
        width,
        height,
        bit_depth,
        color_type,
        mode,
    })
}

/// Splits a text chunk at its first NUL like Pillow (`k, v = s.split(b"\0", 1)`).
fn split_key(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// What `_safe_zlib_decompress` makes of a text chunk's zlib stream.
enum Inflated {
    Text(Vec<u8>),
    /// Not a valid stream (Pillow's `zlib.error`), after `produced` bytes.
    Corrupt {
        produced: usize,
    },
}

/// `_safe_zlib_decompress`: over-long text is an error, a corrupt stream
/// [`Inflated::Corrupt`] (what each caller makes of it differs).
fn inflate_text(data: &[u8]) -> Result<Inflated, ImagingError> {
    let mut inflater = fdeflate::Decompressor::new();
    let mut out = vec![0; 1024];
    let (mut input, mut produced) = (0, 0);
    loop {
        match inflater.read(&data[input..], &mut out, produced, true) {
            Ok((consumed, n)) => {
                input += consumed;
                produced += n;
            }
            Err(_) => return Ok(Inflated::Corrupt { produced }),
        }
        if inflater.is_done() {
            out.truncate(produced);
            return Ok(Inflated::Text(out));
        }
        if produced == MAX_TEXT_CHUNK {
            return Err(err("text chunk decompresses to more than 1 MiB"));
        }
        out.resize((produced + 32 * 1024).min(MAX_TEXT_CHUNK), 0);
    }
}

impl Chunks {
    /// Pillow's `check_text_memory`, for `len` more bytes (or characters) of
    /// text.
    fn charge_text(&mut self, len: usize) -> Result<(), ImagingError> {
        self.text_memory += len as u64;
        if self.text_memory > MAX_TEXT_MEMORY {
            return Err(err(format!(
                "too much memory used in text chunks ({} bytes, over Pillow's \
                 MAX_TEXT_MEMORY of {MAX_TEXT_MEMORY})",
                self.text_memory
            )));
        }
        Ok(())
    }

    /// Records a text value under `key` with Pillow's `im_info` overwrites.
    /// `is_str` is false only for an uncompressed `tEXt` (kept as bytes).
    fn text(&mut self, key: &[u8], value: Vec<u8>, is_str: bool) {
        match key {
            b"exif" => {
                self.exif = Some(if is_str {
                    ExifSource::Text
                } else {
                    ExifSource::Bytes(value)
                })
            }
            b"Raw profile type exif" => self.raw_profile = Some(value),
            b"XML:com.adobe.xmp" => self.xmp_text = Some(value),
            _ => {}
        }
    }

    /// Pillow's chunk handlers for the chunks that matter here.
    fn handle(&mut self, header: &Header, chunk: &Chunk<'_>) -> Result<(), ImagingError> {
        let data = chunk.data;
        match &chunk.kind {
            b"PLTE" if header.mode == Mode::Palette => self.palette = Some(data.to_vec()),
            b"tRNS" => self.trns = Some(data.to_vec()),
            b"eXIf" => {
                let mut exif = b"Exif\0\0".to_vec();
                exif.extend_from_slice(data);
                self.exif = Some(ExifSource::Bytes(exif));
            }
            b"acTL" => {
                let frames = data
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                self.animated = matches!(frames, Some(n) if n > 1 && n <= 0x8000_0000);
            }
            b"tEXt" => {
                let (key, value) = split_key(data);
                if !key.is_empty() {
                    self.text(key, value.to_vec(), key != b"exif");
                    self.charge_text(value.len())?;
                }
            }
            b"zTXt" => {
                let (key, value) = split_key(data);
                let method = value.first().copied().unwrap_or(0);
                if method != 0 {
                    return Err(err(format!(
                        "unknown compression method {method} in zTXt chunk"
                    )));
                }
                // Pillow charges the text it keeps; the rest is charged too.
                let text = match inflate_text(value.get(1..).unwrap_or_default())? {
                    Inflated::Text(text) => text,
                    Inflated::Corrupt { produced } => {
                        self.charge_text(produced)?;
                        Vec::new()
                    }
                };
                self.charge_text(text.len())?;
                if !key.is_empty() {
                    self.text(key, text, true);
                }
            }
            b"iTXt" => self.international_text(data)?,
            _ => {}
        }
        Ok(())
    }

    /// `chunk_iTXt`, which bails out silently on most malformations.
    fn international_text(&mut self, data: &[u8]) -> Result<(), ImagingError> {
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            return Ok(());
        };
        let (key, rest) = (&data[..nul], &data[nul + 1..]);
        let [flag, method, rest @ ..] = rest else {
            return Ok(());
        };
        let mut parts = rest.splitn(3, |&b| b == 0);
        let (Some(_lang), Some(_translated), Some(value)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Ok(());
        };
        let (value, inflated) = match (flag, method) {
            (0, _) => (value.to_vec(), 0),
            (_, 0) => match inflate_text(value)? {
                Inflated::Text(v) => {
                    let len = v.len();
                    (v, len)
                }
                Inflated::Corrupt { produced } => return self.charge_text(produced),
            },
            _ => return Ok(()),
        };
        if key == b"XML:com.adobe.xmp" {
            self.xmp = Some(value.clone());
        }
        match std::str::from_utf8(&value) {
            // Pillow counts the characters of the text it keeps.
            Ok(text) => {
                let chars = text.chars().count();
                self.text(key, value, true);
                self.charge_text(chars)
            }
            Err(_) => self.charge_text(inflated),
        }
    }

    fn into_metadata(self) -> Metadata {
        let exif = self
            .exif
            .or_else(|| self.raw_profile.map(ExifSource::RawProfileHex));
        Metadata {
            exif,
            xmp_text: self.xmp_text,
            xmp: self.xmp,
            swallow_exif_errors: false,
        }
    }
}

/// Walks the chunks as `PngImageFile._open` and `load_end` do, checking the
/// IHDR dimensions against `limits` as soon as they are known.
fn walk(bytes: &[u8], limits: &DecodeLimits) -> Result<(Header, Chunks), ImagingError> {
    let mut pos = SIGNATURE_LEN;
    let mut header = None;
    let mut chunks = Chunks::default();
    // Before the first IDAT: every chunk must be complete and its CRC right.
    loop {
        let chunk = match next_chunk(bytes, pos) {
            Next::Chunk(c) => c,
            // Pillow stops at the IDAT header; whether enough of the data
            // is there is for the pixel decoder to find out.
            Next::Truncated(kind) if &kind == b"IDAT" => break,
            Next::End | Next::Truncated(_) => {
                return Err(err("file is truncated before the image data"))
            }
        };
        if &chunk.kind == b"IDAT" || &chunk.kind == b"IEND" {
            break;
        }
        // Pillow runs the chunk handler, then verifies the CRC.
        match &chunk.kind {
            b"IHDR" => {
                let h = parse_header(chunk.data)?;
                limits.check_dimensions(h.width, h.height)?;
                header = Some(h);
            }
            _ => {
                let h = header.as_ref().ok_or_else(|| err("missing IHDR chunk"))?;
                chunks.handle(h, &chunk)?;
            }
        }
        let stored = chunk
            .crc
            .ok_or_else(|| err("file is truncated before the image data"))?;
        if crc32(&chunk.kind, chunk.data) != stored {
            return Err(err(format!(
                "bad checksum in {} chunk",
                String::from_utf8_lossy(&chunk.kind)
            )));
        }
        pos = chunk.end;
    }
    let header = header.ok_or_else(|| err("missing IHDR chunk"))?;
    // After the pixels Pillow keeps reading (CRCs unchecked) until IEND, the
    // next APNG frame, or a header it cannot read; a chunk cut short raises.
    loop {
        match next_chunk(bytes, pos) {
            Next::End => break,
            // A cut IDAT was consumed as image data (the decoder fails if
            // rows are missing); IEND is never read.
            Next::Truncated(kind) if &kind != b"IEND" && &kind != b"IDAT" => {
                return Err(err(format!(
                    "file is truncated inside a {} chunk",
                    String::from_utf8_lossy(&kind)
                )))
            }
            Next::Truncated(_) => break,
            Next::Chunk(chunk) => {
                if &chunk.kind == b"IEND" || (&chunk.kind == b"fcTL" && chunks.animated) {
                    break;
                }
                if &chunk.kind != b"PLTE" {
                    chunks.handle(&header, &chunk)?;
                }
                pos = chunk.end;
            }
        }
    }
    Ok((header, chunks))
}

/// `im.info["transparency"]` after `convert("RGB")`, as the RGB key that a
/// later `convert("RGBA")` turns transparent (`rgbT2rgba` masks each value
/// to its low byte).
fn transparency_key(
    header: &Header,
    trns: &[u8],
    palette: &[[u8; 3]],
) -> Result<Option<[u8; 3]>, ImagingError> {
    let be16 = |i: usize| u16::from_be_bytes([trns[i], trns[i + 1]]);
    let needed = match header.mode {
        Mode::Rgb => 6,
        Mode::Bilevel | Mode::L | Mode::I16 => 2,
        _ => 0,
    };
    if trns.len() < needed {
        return Err(err("truncated tRNS chunk"));
    }
    Ok(match header.mode {
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

pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Frame, ImagingError> {
    let (header, chunks) = walk(bytes, limits)?;
    let (buf, line_size) = read_pixels(bytes, &header, limits)?;

    let palette: Vec<[u8; 3]> = chunks
        .palette
        .as_deref()
        .unwrap_or_default()
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    let rgb = to_rgb(&header, &buf, line_size, &palette);
    let transparency = match &chunks.trns {
        Some(trns) => transparency_key(&header, trns, &palette)?,
        None => None,
    };
    Ok(Frame {
        rgb,
        transparency,
        meta: chunks.into_metadata(),
    })
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

/// The payloads of the first run of IDAT chunks, joined: the zlib stream
/// Pillow inflates (a cut last chunk gives what is there).
fn image_data(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = SIGNATURE_LEN;
    let mut seen = false;
    while let Some(head) = bytes.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let is_idat = &head[4..8] == b"IDAT";
        if seen && !is_idat {
            break;
        }
        let start = pos + 8;
        let end = start.saturating_add(len).min(bytes.len());
        if is_idat {
            seen = true;
            out.extend_from_slice(&bytes[start..end]);
        }
        pos = end.saturating_add(4);
    }
    out
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

/// The unfiltered samples (rows of `line_size` bytes) as Pillow's zlib
/// decoder leaves them. Like Pillow, it stops inflating after the last row
/// (so a missing IEND, or data cut after the last row, does not matter);
/// rows are also complete when the zlib stream ends exactly after one of
/// them (Pillow leaves the rest black); data that runs out first ("image
/// file is truncated"), a corrupt stream or a wrong Adler-32 are errors.
fn read_pixels(
    bytes: &[u8],
    header: &Header,
    limits: &DecodeLimits,
) -> Result<(Vec<u8>, usize), ImagingError> {
    let mut options = png::DecodeOptions::default();
    // CRCs were checked (as far as Pillow checks them) by `walk`; zlib
    // verifies the stream's checksum, in Pillow as here.
    options.set_ignore_crc(true);
    options.set_ignore_adler32(false);
    // Text was read (and its size bounded) by `walk`; the crate would keep
    // a second copy of every text chunk.
    options.set_ignore_text_chunk(true);
    let mut decoder = png::Decoder::new_with_options(Cursor::new(bytes), options);
    decoder.set_limits(png::Limits {
        bytes: limits.max_alloc_usize(),
    });
    // Raw samples: every conversion is Pillow's, done in `to_rgb`.
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
    let mut buf = vec![0u8; size];
    let (total, needed) = scanlines(width, height, interlaced, bits_per_pixel);
    let (mut rows, mut inflated) = (0u64, 0u64);
    while rows < total {
        let row = match reader.next_interlaced_row() {
            Ok(Some(row)) => row,
            Ok(None) => break,
            Err(e) => {
                return match stream_end(&image_data(bytes), needed) {
                    StreamEnd::Complete(n) if n == inflated && rows > 0 => Ok((buf, line_size)),
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
                png::expand_interlaced_row(&mut buf, line_size, row.data(), pass, bits_per_pixel)
            }
            png::InterlaceInfo::Null(_) => {
                let start = rows as usize * line_size;
                buf[start..start + row.data().len()].copy_from_slice(row.data());
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
        _ => Ok((buf, line_size)),
    }
}

/// Raw PNG samples to `convert("RGB")` of Pillow's mode for them.
fn to_rgb(header: &Header, data: &[u8], line_size: usize, palette: &[[u8; 3]]) -> RgbImage {
    let (w, h) = (header.width as usize, header.height as usize);
    let depth = usize::from(header.bit_depth);
    let rows = data.chunks_exact(line_size).take(h);
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
