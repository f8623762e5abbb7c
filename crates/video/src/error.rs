//! The one error type of this crate. Every variant says what was wrong with
//! the input in words a moderator or an operator can act on; the variants
//! that can also end sampling early (a truncated file, a corrupt bitstream,
//! the decode time budget) are the ones [`crate::Summary::stopped`] carries
//! when some frames were decoded before them.

use std::path::PathBuf;

/// Why a video could not be sampled (or, in [`crate::Summary::stopped`], why
/// sampling ended before its last target).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VideoError {
    /// The content is not a container this crate treats as video (an
    /// image, audio, text, an unknown format), whatever the file is called.
    #[error("not a video: {0}")]
    NotAVideo(String),
    /// The input is larger than [`crate::VideoLimits::max_bytes`].
    #[error("the video is {size} bytes, over the limit of {limit}")]
    TooManyBytes { size: u64, limit: u64 },
    /// A container without a video stream (audio only, or only cover art).
    #[error("the container has no video stream")]
    NoVideoStream,
    /// FFmpeg has no decoder for the stream's codec.
    #[error("no decoder for the video codec {0}")]
    UnsupportedCodec(String),
    /// A video stream without frames or without a duration.
    #[error("the video stream is empty: {0}")]
    EmptyStream(String),
    /// The container gives no duration to spread the samples over.
    #[error("the video has no known duration")]
    UnknownDuration,
    /// The timeline is longer than [`crate::VideoLimits::max_duration_s`].
    #[error("the video lasts {duration_s:.1} s, over the limit of {limit_s:.1} s")]
    TooLong { duration_s: f64, limit_s: f64 },
    /// A frame (as the stream's header declares it, or as decoded) has more
    /// pixels than [`crate::VideoLimits::max_pixels_per_frame`].
    #[error("frames of {width}x{height} are over the limit of {limit} pixels")]
    FrameTooLarge { width: u32, height: u32, limit: u64 },
    /// The sampling request itself is unusable (no frames, a rate that is
    /// not a positive number).
    #[error("invalid sampling: {0}")]
    InvalidSampling(String),
    /// The data ends before the container says it does.
    #[error("the video is truncated: {0}")]
    Truncated(String),
    /// The container or the bitstream cannot be read.
    #[error("the video is corrupt: {0}")]
    Corrupt(String),
    /// Demuxing and decoding took longer than
    /// [`crate::VideoLimits::max_decode_ms`].
    #[error("decoding took longer than the budget of {limit_ms} ms")]
    DecodeTimeout { limit_ms: u64 },
    /// The file could not be read.
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}
