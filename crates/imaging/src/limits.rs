//! Caps that keep one hostile upload from exhausting the scanner's memory.
//!
//! Dimensions are checked from the header before any pixel buffer exists, and
//! the decoders' own allocation caps are derived from the same numbers so a
//! header that lies about its size still cannot allocate without bound.

use crate::error::ImagingError;

/// Limits applied to every decode.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted encoded input, in bytes.
    pub max_bytes: u64,
    /// Largest accepted `width * height` (of the canvas, before orientation).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 256 MiB of input and Pillow's `Image.MAX_IMAGE_PIXELS` (89 478 485),
    /// the size above which Pillow starts warning about decompression bombs.
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024 * 1024,
            max_pixels: 89_478_485,
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
    }
}
