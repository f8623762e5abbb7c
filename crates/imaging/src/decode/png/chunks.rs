//! The chunk stream, walked once as `PngImageFile._open` and `load_end`
//! walk it: before the image data every chunk must be complete and its CRC
//! right, after it Pillow reads on (CRCs unchecked) for EXIF/XMP until
//! IEND. The IHDR dimensions are checked against the limits as soon as they
//! are read, and the walk is linear in the bytes (text aside, see
//! [`super::text`]).

use super::err;
use super::modes::Mode;
use super::text::Text;
use crate::error::ImagingError;
use crate::limits::DecodeLimits;

const SIGNATURE_LEN: usize = 8;

/// The IHDR chunk (Pillow keeps the last one).
pub(super) struct Header {
    pub width: u32,
    pub height: u32,
    pub bit_depth: u8,
    pub color_type: u8,
    pub mode: Mode,
}

/// What the walk collects for decoding.
pub(super) struct Stream<'a> {
    pub header: Header,
    /// The `PLTE` of a palette image.
    pub palette: Option<&'a [u8]>,
    pub trns: Option<&'a [u8]>,
    pub text: Text,
    /// The payloads of the first run of IDAT chunks, empty ones left out:
    /// joined, the zlib stream Pillow inflates (a cut last chunk gives what
    /// is there).
    pub image_data: Vec<&'a [u8]>,
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
    /// The header promises more data than the file has, which ends after
    /// `data`.
    Truncated {
        kind: [u8; 4],
        data: &'a [u8],
    },
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
        return Next::Truncated {
            kind,
            data: &bytes[start..],
        };
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
    let mode = Mode::of(bit_depth, color_type).ok_or_else(|| {
        err(format!(
            "unsupported bit depth {bit_depth} with colour type {color_type}"
        ))
    })?;
    Ok(Header {
        width,
        height,
        bit_depth,
        color_type,
        mode,
    })
}

/// What Pillow's `PngStream` chunk handlers collect, apart from the header.
#[derive(Default)]
struct Collected<'a> {
    palette: Option<&'a [u8]>,
    trns: Option<&'a [u8]>,
    text: Text,
    animated: bool,
}

impl<'a> Collected<'a> {
    /// Pillow's chunk handlers for the chunks that matter here.
    fn handle(&mut self, mode: Mode, chunk: &Chunk<'a>) -> Result<(), ImagingError> {
        let data = chunk.data;
        match &chunk.kind {
            b"PLTE" if mode == Mode::Palette => self.palette = Some(data),
            b"tRNS" => self.trns = Some(data),
            b"acTL" => {
                let frames = data
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                self.animated = matches!(frames, Some(n) if n > 1 && n <= 0x8000_0000);
            }
            kind => self.text.handle(kind, data)?,
        }
        Ok(())
    }
}

/// Where the walk is relative to the first run of IDAT chunks.
#[derive(PartialEq)]
enum Run {
    Before,
    In,
    After,
}

/// Walks the chunks as `PngImageFile._open` and `load_end` do, checking the
/// IHDR dimensions against `limits` as soon as they are known.
pub(super) fn walk<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<Stream<'a>, ImagingError> {
    let mut pos = SIGNATURE_LEN;
    let mut header = None;
    let mut collected = Collected::default();
    // Before the first IDAT: every chunk must be complete and its CRC right.
    loop {
        let chunk = match next_chunk(bytes, pos) {
            Next::Chunk(c) => c,
            // Pillow stops at the IDAT header; whether enough of the data
            // is there is for the pixel decoder to find out.
            Next::Truncated { kind, .. } if &kind == b"IDAT" => break,
            Next::End | Next::Truncated { .. } => {
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
                collected.handle(h.mode, &chunk)?;
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
    // From the image data on Pillow keeps reading (CRCs unchecked) until
    // IEND, the next APNG frame, or a header it cannot read; a chunk cut
    // short raises.
    let mut image_data = Vec::new();
    let mut run = Run::Before;
    loop {
        match next_chunk(bytes, pos) {
            Next::End => break,
            Next::Truncated { kind, data } => {
                // A cut IDAT is image data (the decoder fails if rows are
                // missing); IEND is never read.
                if &kind == b"IDAT" {
                    if run != Run::After && !data.is_empty() {
                        image_data.push(data);
                    }
                } else if &kind != b"IEND" {
                    return Err(err(format!(
                        "file is truncated inside a {} chunk",
                        String::from_utf8_lossy(&kind)
                    )));
                }
                break;
            }
            Next::Chunk(chunk) => {
                if &chunk.kind == b"IDAT" {
                    if run != Run::After {
                        run = Run::In;
                        if !chunk.data.is_empty() {
                            image_data.push(chunk.data);
                        }
                    }
                } else if run == Run::In {
                    run = Run::After;
                }
                if &chunk.kind == b"IEND" || (&chunk.kind == b"fcTL" && collected.animated) {
                    break;
                }
                if &chunk.kind != b"PLTE" {
                    collected.handle(header.mode, &chunk)?;
                }
                pos = chunk.end;
            }
        }
    }
    Ok(Stream {
        header,
        palette: collected.palette,
        trns: collected.trns,
        text: collected.text,
        image_data,
    })
}
