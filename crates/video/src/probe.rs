//! Is it a video? Decided from the content, never from the file name: an
//! image renamed `.mp4` is not a video and a video named `.jpg` is.
//!
//! FFmpeg's own probe (`av_probe_input_format3`, every demuxer's signature
//! test, the same one `ffmpeg -i` runs) picks the container, on growing
//! prefixes of the data as `av_probe_input_buffer` does, and the answer
//! counts as a video when the winner is one of the video containers below
//! with a confident score. Formats FFmpeg also opens but that are images or
//! audio (PNG, JPEG, GIF, WebP, WAV, MP3, ...), and raw elementary streams
//! (a bare H.264 bitstream has neither timestamps nor a duration to sample
//! over), are not videos here. ISO media files whose major brand is an
//! image brand (HEIC/HEIF, AVIF) are images even though the MP4 demuxer
//! would take them.

use std::ffi::{c_int, CStr};

use ffmpeg_next::ffi;

use crate::error::VideoError;

/// The most of a file's beginning the probe looks at: FFmpeg's own
/// `probesize` ceiling for format detection. Handing [`is_video`] this many
/// bytes (or the whole file, when smaller) gives the answer opening the
/// file would.
pub const PROBE_BYTES: usize = 1 << 20;

/// File extensions of the containers recognised here, lower case, for
/// walking folders. Detection itself ignores names (`.ts` also names
/// TypeScript sources, which [`is_video`] then turns away).
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "3gp", "3g2", "mkv", "webm", "avi", "flv", "ts", "mts", "m2ts", "mpg",
    "mpeg", "wmv", "asf", "ogv", "mxf", "ivf", "rm", "rmvb", "nut",
];

/// Demuxers whose files are videos: the first name FFmpeg lists for each.
const VIDEO_DEMUXERS: &[&str] = &[
    "mov",      // MP4, MOV, 3GP (mov,mp4,m4a,3gp,3g2,mj2)
    "matroska", // MKV, WebM (matroska,webm)
    "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "mxf", "ivf", "rm", "nut",
];

/// ISO media major brands of still images and image sequences.
const IMAGE_BRANDS: &[&[u8; 4]] = &[
    b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    b"crx ",
];

/// `AVPROBE_SCORE_MAX / 4`: below it FFmpeg itself keeps reading before it
/// trusts a detection.
const SCORE_RETRY: c_int = 25;

/// The smallest prefix FFmpeg probes (`PROBE_BUF_MIN`).
const FIRST_PROBE: usize = 2048;

/// Whether these leading bytes (ideally [`PROBE_BYTES`] of them, or the
/// whole input) are a video container.
pub fn is_video(prefix: &[u8]) -> bool {
    probe(prefix).is_ok()
}

/// The demuxer for the data, or why it is not a video.
pub(crate) fn probe(prefix: &[u8]) -> Result<&'static ffi::AVInputFormat, VideoError> {
    let prefix = &prefix[..prefix.len().min(PROBE_BYTES)];
    if prefix.is_empty() {
        return Err(VideoError::NotAVideo("the input is empty".into()));
    }
    if prefix.get(4..8) == Some(b"ftyp") {
        if let Some(brand) = prefix
            .get(8..12)
            .filter(|b| IMAGE_BRANDS.iter().any(|i| &i[..] == *b))
        {
            return Err(VideoError::NotAVideo(format!(
                "an ISO media image (major brand '{}')",
                String::from_utf8_lossy(brand)
            )));
        }
    }
    crate::init();
    // Zero padding after the data, as every probe function may read it.
    let mut buf = vec![0u8; prefix.len() + ffi::AVPROBE_PADDING_SIZE as usize];
    let mut size = FIRST_PROBE.min(prefix.len());
    loop {
        buf[..size].copy_from_slice(&prefix[..size]);
        buf[size..size + ffi::AVPROBE_PADDING_SIZE as usize].fill(0);
        let data = ffi::AVProbeData {
            filename: c"".as_ptr(),
            buf: buf.as_mut_ptr(),
            buf_size: size as c_int,
            mime_type: std::ptr::null(),
        };
        let mut score: c_int = 0;
        // SAFETY: `data` points at `size` bytes followed by the padding the
        // probe functions may read; the returned format is a static of
        // libavformat.
        let format = unsafe { ffi::av_probe_input_format3(&data, 1, &mut score).as_ref() };
        if let Some(format) = format.filter(|_| score > SCORE_RETRY) {
            // SAFETY: every demuxer has a static, NUL-terminated name.
            let names = unsafe { CStr::from_ptr(format.name) }.to_string_lossy();
            let first = names.split(',').next().unwrap_or_default();
            return if VIDEO_DEMUXERS.contains(&first) {
                Ok(format)
            } else {
                Err(VideoError::NotAVideo(format!(
                    "FFmpeg reads it as '{names}'"
                )))
            };
        }
        if size == prefix.len() {
            return Err(VideoError::NotAVideo(
                "no container format recognised in its content".into(),
            ));
        }
        size = (size * 2).min(prefix.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_text_are_not_videos() {
        assert!(!is_video(b""));
        assert!(!is_video(
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0"
        ));
        assert!(!is_video(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"));
        assert!(!is_video(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf"));
        assert!(!is_video(b"plain text, nothing to see"));
    }
}
