//! The one error type of this crate.
//!
//! Every variant ends up verbatim in the per-image `error` field of the JSONL
//! output, so messages are written for the person who supplied the file: they
//! say what is wrong with the input and, for limits, what the limit was.

/// Why an image (or a preprocessor config) could not be turned into pixels.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The encoded file is larger than [`crate::DecodeLimits::max_bytes`].
    #[error("image file is {size} bytes, over the limit of {limit} bytes")]
    TooManyBytes {
        /// Size of the encoded input.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The header declares more pixels than [`crate::DecodeLimits::max_pixels`].
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit}")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// `width * height`.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A JPEG holds more scans than [`crate::DecodeLimits::max_jpeg_scans`].
    #[error("JPEG has {scans} scans, over the limit of {limit}")]
    TooManyScans {
        /// Scans in the file (counted up to its end-of-image marker).
        scans: u64,
        /// The configured limit.
        limit: u32,
    },
    /// The header declares a width or height of zero.
    #[error("image has zero size ({width}x{height})")]
    ZeroSize {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Unreadable(#[from] std::io::Error),
    /// The file grew past [`crate::DecodeLimits::max_bytes`] while it was
    /// read (its size was within the limit when it was opened).
    #[error("image file grew past the limit of {limit} bytes while it was read")]
    GrewPastLimit {
        /// The configured limit.
        limit: u64,
    },
    /// The input holds no bytes at all.
    #[error("image file is empty (0 bytes)")]
    Empty,
    /// The bytes are not one of the formats this crate decodes; the payload
    /// names what was recognised (`none` when nothing was).
    #[error("unsupported image format (detected: {0})")]
    UnsupportedFormat(String),
    /// The format was recognised but the data is corrupt, truncated or uses a
    /// feature the decoder lacks.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// `preprocessor_config.json` is malformed or asks for something this
    /// crate does not reproduce.
    #[error("invalid preprocessor config: {0}")]
    InvalidConfig(String),
}
