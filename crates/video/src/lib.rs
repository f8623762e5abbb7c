//! Video decoding and frame sampling for dfscan, through FFmpeg's libraries.
//!
//! Why FFmpeg: it is the one decoder stack that covers what people upload,
//! MP4/MOV, MKV/WebM, AVI (and FLV, MPEG-TS/PS, ASF/WMV, Ogg, MXF) holding
//! H.264, H.265, VP8, VP9, AV1, MPEG-4 Part 2 and the rest, and it is what
//! the Python references (PyAV, OpenCV) decode with too. The crate links the
//! system libraries through `ffmpeg-next` (FFmpeg 5.1 on Debian 12, 7.1 on
//! Debian 13; `scripts/setup.sh` installs the `-dev` packages).
//!
//! - [`is_video`]: recognised by content, never by file name.
//! - [`Video::open`] checks the [`VideoLimits`] (bytes, frame size from the
//!   codec parameters before a decoder exists, duration) and describes the
//!   stream ([`VideoInfo`]); [`Video::sample_each`] then decodes the
//!   [`Sampling`] targets with [`Seek::Accurate`] or [`Seek::Keyframes`],
//!   handing each frame ([`Frame`]: its exact presentation time and its RGB
//!   image, converted as the `ffmpeg` CLI converts to PNG and rotated for
//!   display) to a callback, one at a time, so a caller never holds more
//!   decoded frames than it keeps itself. [`sample`] collects them.
//! - Bad input is an error ([`VideoError`]) or, when some frames were
//!   decoded, a partial result whose [`Summary::stopped`] says what ended
//!   it. Bytes in memory are read in place ([`Source::Bytes`]).
//!
//! FFmpeg logs through its own logger (`av_log`, to stderr at level
//! `info`); callers set the level with `ffmpeg_next::log::set_level` if they
//! want it quieter.

mod convert;
mod error;
mod io;
mod limits;
mod probe;
mod sampling;
mod video;

use std::ops::ControlFlow;

pub use error::VideoError;
pub use limits::VideoLimits;
pub use probe::{is_video, PROBE_BYTES, VIDEO_EXTENSIONS};
pub use sampling::{Sampling, Seek};
pub use video::{Frame, Sampled, Source, Summary, Video, VideoInfo};

/// Opens and samples a video, collecting its frames.
pub fn sample(
    source: Source<'_>,
    sampling: Sampling,
    seek: Seek,
    limits: &VideoLimits,
) -> Result<Sampled, VideoError> {
    Video::open(source, limits)?.sample(sampling, seek)
}

/// Opens and samples a video, handing each frame to `each` as it is decoded
/// (see [`Video::sample_each`]).
pub fn sample_each<F>(
    source: Source<'_>,
    sampling: Sampling,
    seek: Seek,
    limits: &VideoLimits,
    each: F,
) -> Result<Summary, VideoError>
where
    F: FnMut(Frame) -> ControlFlow<()>,
{
    Video::open(source, limits)?.sample_each(sampling, seek, each)
}

/// FFmpeg's global initialisation, once per process.
fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // Registers nothing on FFmpeg 5 and later; kept for the wrapper's
        // contract.
        let _ = ffmpeg_next::init();
    });
}

#[cfg(test)]
mod tests {
    /// A worker opens a video on one thread and may sample it on another.
    #[test]
    fn videos_and_frames_move_between_threads() {
        fn send<T: Send>() {}
        send::<crate::Video<'static>>();
        send::<crate::Frame>();
        send::<crate::Sampled>();
    }
}
