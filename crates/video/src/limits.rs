//! Caps that keep one hostile or oversized video from exhausting a worker.
//!
//! Everything a file says about itself is checked against these before it
//! sizes anything: the byte count before demuxing, the frame dimensions from
//! the codec parameters before a decoder opens (and again on every decoded
//! frame, since a stream may change resolution midway; FFmpeg's own
//! `max_pixels` is set on the decoder as well, so it refuses such a frame
//! before allocating it), the duration before targets are planned, the
//! number of targets before the list of them exists.
//!
//! Time is bounded by a budget on demuxing, decoding and conversion (the
//! caller's own work on each frame is not counted): FFmpeg's interrupt
//! callback aborts a read that runs past it, and the decode loop checks it
//! between packets, where one packet's work is bounded by the pixel cap.

use crate::error::VideoError;

/// Limits applied to every video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoLimits {
    /// Largest accepted input, in bytes (the file's size, or the length of
    /// the bytes handed in).
    pub max_bytes: u64,
    /// Longest accepted timeline, in seconds.
    pub max_duration_s: f64,
    /// Most frames one video yields: a larger `Sampling::Frames(n)` is
    /// lowered to it, a `Sampling::Fps` that would give more is slowed to it
    /// (both with a warning).
    pub max_frames: usize,
    /// Largest accepted `width * height` of a frame, as coded (before the
    /// display rotation, which does not change the count).
    pub max_pixels_per_frame: u64,
    /// Longest demuxing, decoding and conversion of one video may take, in
    /// milliseconds, opening and sampling together (the caller's work on
    /// each frame, and any wait between opening and sampling, not counted);
    /// past it sampling stops with what it has.
    pub max_decode_ms: u64,
    /// Most threads FFmpeg's decoder uses for one video (frame and slice
    /// threads). Each frame thread holds a frame in flight, so this also
    /// bounds the decoder's memory: about `max_decode_threads + references`
    /// frames of at most `max_pixels_per_frame`.
    pub max_decode_threads: usize,
}

impl Default for VideoLimits {
    /// 2 GiB of input (a worker holds an inline job's bytes in memory; larger
    /// videos are better read from a path or URI under a raised limit),
    /// 3 hours of timeline (a feature film; what is longer is more likely a
    /// crafted timeline than content), 256 frames (8× the default 32-frame
    /// sample, or 1 frame per second over four minutes), 8192×4320 pixels
    /// per frame (the largest frame H.264 and H.265 levels 6.2 allow:
    /// 35.4 Mpixels, 8K UHD included), 60 s of decoding (32 accurate seeks
    /// into 1080p H.264 with 10-second GOPs take a few seconds of one core)
    /// and 4 decoder threads.
    fn default() -> Self {
        Self {
            max_bytes: 2 * 1024 * 1024 * 1024,
            max_duration_s: 3.0 * 3600.0,
            max_frames: 256,
            max_pixels_per_frame: 8192 * 4320,
            max_decode_ms: 60_000,
            max_decode_threads: 4,
        }
    }
}

impl VideoLimits {
    pub(crate) fn check_bytes(&self, size: u64) -> Result<(), VideoError> {
        if size > self.max_bytes {
            return Err(VideoError::TooManyBytes {
                size,
                limit: self.max_bytes,
            });
        }
        if size == 0 {
            return Err(VideoError::NotAVideo("the input is empty".into()));
        }
        Ok(())
    }

    /// Refuses frames with no pixels or more than `max_pixels_per_frame`.
    pub(crate) fn check_dimensions(&self, width: u32, height: u32) -> Result<(), VideoError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels == 0 {
            return Err(VideoError::Corrupt(format!(
                "a frame size of {width}x{height}"
            )));
        }
        if pixels > self.max_pixels_per_frame {
            return Err(VideoError::FrameTooLarge {
                width,
                height,
                limit: self.max_pixels_per_frame,
            });
        }
        Ok(())
    }

    pub(crate) fn check_duration(&self, duration_s: f64) -> Result<(), VideoError> {
        if duration_s > self.max_duration_s {
            return Err(VideoError::TooLong {
                duration_s,
                limit_s: self.max_duration_s,
            });
        }
        Ok(())
    }
}
