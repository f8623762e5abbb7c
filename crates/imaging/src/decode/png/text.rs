//! The chunks that carry metadata (`eXIf`, `tEXt`, `zTXt`, `iTXt`): the
//! EXIF and XMP that orientation is read from, with Pillow's `im_info`
//! overwrites, and Pillow's bound on text.
//!
//! Compressed text is the one place where the walk's work is not linear in
//! the bytes: a kilobyte inflates to Pillow's 1 MiB cap per chunk. Pillow's
//! `MAX_TEXT_MEMORY` (64 MiB of text per file) bounds that, and here it is
//! also charged with the text Pillow inflates and then discards (corrupt
//! streams, chunks without a keyword, iTXt that is not UTF-8), which Pillow
//! does not count and which would otherwise leave thousands of such chunks
//! free to cost a megabyte of inflation each.

use super::err;
use crate::error::ImagingError;
use crate::exif::{ExifSource, Metadata};

/// Pillow refuses to inflate more than `MAX_TEXT_CHUNK` bytes of one text.
const MAX_TEXT_CHUNK: usize = 1024 * 1024;

/// Pillow's `MAX_TEXT_MEMORY`: the most text one file may hold.
const MAX_TEXT_MEMORY: u64 = 64 * MAX_TEXT_CHUNK as u64;

/// What the metadata chunks leave in Pillow's `im_info` that matters here.
#[derive(Default)]
pub(super) struct Text {
    exif: Option<ExifSource>,
    raw_profile: Option<Vec<u8>>,
    xmp_text: Option<Vec<u8>>,
    xmp: Option<Vec<u8>>,
    /// Pillow's `text_memory`, plus the inflated text it discards.
    text_memory: u64,
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

impl Text {
    /// Pillow's handler for a chunk of type `kind`, if it is one of the
    /// metadata chunks (any other is left alone).
    pub fn handle(&mut self, kind: &[u8; 4], data: &[u8]) -> Result<(), ImagingError> {
        match kind {
            b"eXIf" => {
                let mut exif = b"Exif\0\0".to_vec();
                exif.extend_from_slice(data);
                self.exif = Some(ExifSource::Bytes(exif));
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

    pub fn into_metadata(self) -> Metadata {
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
