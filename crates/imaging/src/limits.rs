//! Caps that keep one hostile upload from exhausting the scanner's memory or
//! its time.
//!
//! Dimensions are checked from the header before any pixel buffer exists, and
//! the decoders' own allocation caps are derived from the same numbers so a
//! header that lies about its size still cannot allocate without bound.
//!
//! Time is bounded by work where the work can be counted: the JPEG, PNG and
//! GIF decoders here do work proportional to the bytes they read plus the
//! pixels they write, both capped, except progressive JPEG (every scan
//! revisits every block, however few bytes it holds), which gets a cap on
//! its scan count. The `image` crate's TIFF decoder has no such bound (its
//! strips may all point at the same bytes, and each deflate strip reads on
//! past its declared length), so it and the other `image` crate decoders
//! get a wall-clock budget instead, checked on every read they make from
//! the input: between two reads a decoder inflates at most one buffer of
//! input into at most one strip of output, so the check really bounds the
//! time (see `decode/via_image.rs`).

use crate::error::ImagingError;

/// Limits applied to every decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted encoded input, in bytes.
    pub max_bytes: u64,
    /// Largest accepted `width * height` (of the canvas, before orientation).
    pub max_pixels: u64,
    /// Most scans a JPEG may have. A progressive scan costs a pass over the
    /// whole image whatever its size in bytes, so without this cap a few
    /// kilobytes of repeated scans buy minutes of decoding.
    pub max_jpeg_scans: u32,
    /// Longest a TIFF, WebP or BMP decode (the `image` crate's decoders,
    /// whose work nothing else bounds) may run, in milliseconds.
    pub max_decode_ms: u64,
}

impl Default for DecodeLimits {
    /// 256 MiB of input, Pillow's `Image.MAX_IMAGE_PIXELS` (89 478 485),
    /// the size above which Pillow starts warning about decompression bombs,
    /// 500 JPEG scans: the value of libjpeg-turbo's own `TJFLAG_LIMITSCANS`
    /// and of the `-maxscans` its `djpeg` documentation suggests. Encoders
    /// write about 10 (libjpeg's default progression; zune-jpeg refuses more
    /// than 100), and at 81 Mpixels 500 empty scans cost libjpeg-turbo about
    /// 3.5 s of one core. And 10 s per `image` crate decode: a TIFF at the
    /// pixel limit decodes in about a second.
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_pixels: 89_478_485,
            max_jpeg_scans: 500,
            max_decode_ms: 10_000,
        }
    }
}

/// Bytes per pixel of the widest intermediate any decoder here produces
/// (16-bit RGBA).
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Headroom for decoder bookkeeping (Huffman tables, row buffers, palettes).
const DECODER_OVERHEAD: u64 = 16 * 1024 * 1024;

impl DecodeLimits {
    pub(crate) fn check_bytes(&self, len: usize) -> Result<(), ImagingError> {
        let size = len as u64;
        if size > self.max_bytes {
            return Err(ImagingError::TooManyBytes {
                size,
                limit: self.max_bytes,
            });
        }
        if size == 0 {
            return Err(ImagingError::Empty);
        }
        Ok(())
    }

    /// Rejects empty canvases and canvases over `max_pixels`.
    pub(crate) fn check_dimensions(&self, width: u32, height: u32) -> Result<(), ImagingError> {
        if width == 0 || height == 0 {
            return Err(ImagingError::ZeroSize { width, height });
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(ImagingError::TooManyPixels {
                width,
                height,
                pixels,
                limit: self.max_pixels,
            });
        }
        Ok(())
    }

    /// Rejects a JPEG with more than `max_jpeg_scans` scans.
    pub(crate) fn check_scans(&self, scans: u64) -> Result<(), ImagingError> {
        if scans > u64::from(self.max_jpeg_scans) {
            return Err(ImagingError::TooManyScans {
                scans,
                limit: self.max_jpeg_scans,
            });
        }
        Ok(())
    }

    /// Allocation budget handed to the underlying decoders.
    pub(crate) fn max_alloc(&self) -> u64 {
        self.max_pixels
            .saturating_mul(MAX_BYTES_PER_PIXEL)
            .saturating_add(DECODER_OVERHEAD)
    }

    /// [`Self::max_alloc`] as a `usize`, saturating on 32-bit targets.
    pub(crate) fn max_alloc_usize(&self) -> usize {
        usize::try_from(self.max_alloc()).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_sizes_and_limits() {
        let limits = DecodeLimits::default();
        let err = limits.check_dimensions(100_000, 100_000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 100000x100000 = 10000000000 pixels, over the limit of 89478485"
        );
        let small = DecodeLimits {
            max_bytes: 10,
            max_pixels: 4,
            max_jpeg_scans: 2,
            max_decode_ms: 1,
        };
        assert_eq!(
            small.check_bytes(11).unwrap_err().to_string(),
            "image file is 11 bytes, over the limit of 10 bytes"
        );
        assert!(matches!(small.check_bytes(0), Err(ImagingError::Empty)));
        assert!(small.check_bytes(10).is_ok());
        assert!(small.check_dimensions(2, 2).is_ok());
        assert!(matches!(
            small.check_dimensions(0, 2),
            Err(ImagingError::ZeroSize { .. })
        ));
        assert!(small.check_scans(2).is_ok());
        assert_eq!(
            small.check_scans(3).unwrap_err().to_string(),
            "JPEG has 3 scans, over the limit of 2"
        );
    }
}
