//! Inputs a scanner must survive: each gets its error, or a partial result
//! that says what ended it, and nothing is sized by a number from the file
//! before the limits have seen it.

mod common;

use std::path::{Path, PathBuf};

use common::{derived, make, video};
use dfscan_video::{
    is_video, sample, Sampled, Sampling, Seek, Source, Video, VideoError, VideoLimits,
};

fn open(path: &Path, limits: &VideoLimits) -> Result<Sampled, VideoError> {
    sample(
        Source::Path(path),
        Sampling::default(),
        Seek::Accurate,
        limits,
    )
}

fn sampled(path: &Path) -> Result<Sampled, VideoError> {
    open(path, &VideoLimits::default())
}

/// The first `fraction` of `path`'s bytes, as `name`.
fn cut(path: &Path, fraction: f64, name: &str) -> PathBuf {
    derived(name, path, |bytes| {
        bytes[..(bytes.len() as f64 * fraction) as usize].to_vec()
    })
}

#[test]
fn an_image_renamed_mp4_is_not_a_video() {
    for (name, codec) in [("still.png", "png"), ("still.jpg", "mjpeg")] {
        let image = make(
            name,
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=64x64",
                "-frames:v",
                "1",
                "-c:v",
                codec,
            ],
        );
        let renamed = derived(&format!("{name}.mp4"), &image, |bytes| bytes);
        let bytes = std::fs::read(&renamed).unwrap();
        assert!(!is_video(&bytes), "{name}");
        match sampled(&renamed) {
            Err(VideoError::NotAVideo(why)) => assert!(why.contains("_pipe"), "{name}: {why}"),
            other => panic!("{name}: {other:?}"),
        }
        assert!(matches!(
            sample(
                Source::Bytes(&bytes),
                Sampling::default(),
                Seek::Accurate,
                &VideoLimits::default()
            ),
            Err(VideoError::NotAVideo(_))
        ));
    }
    // An animated GIF stays an image too.
    let gif = make(
        "anim.gif",
        &["-f", "lavfi", "-i", "testsrc2=size=64x64:duration=1"],
    );
    assert!(!is_video(&std::fs::read(gif).unwrap()));
    // Empty and text inputs.
    assert!(matches!(
        sample(
            Source::Bytes(b""),
            Sampling::default(),
            Seek::Accurate,
            &VideoLimits::default()
        ),
        Err(VideoError::NotAVideo(_))
    ));
    let text = "just some text, not a video\n".repeat(100);
    assert!(matches!(
        sample(
            Source::Bytes(text.as_bytes()),
            Sampling::default(),
            Seek::Accurate,
            &VideoLimits::default()
        ),
        Err(VideoError::NotAVideo(_))
    ));
}

#[test]
fn audio_is_not_a_video_stream() {
    let sine = ["-f", "lavfi", "-i", "sine=duration=1"];
    for name in ["tone.m4a", "tone.mkv"] {
        let audio = make(name, &sine);
        assert!(
            matches!(sampled(&audio), Err(VideoError::NoVideoStream)),
            "{name}: {:?}",
            sampled(&audio)
        );
    }
    // WAV is not a video container at all.
    let wav = make("tone.wav", &sine);
    assert!(matches!(sampled(&wav), Err(VideoError::NotAVideo(_))));
}

#[test]
fn a_zero_length_stream_is_empty() {
    // A video stream with no frames: AVI keeps the stream (duration 0), MP4
    // drops the track.
    let args = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x64:rate=25",
        "-frames:v",
        "0",
        "-c:v",
        "libx264",
    ];
    let avi = make("empty.avi", &args);
    assert!(
        matches!(sampled(&avi), Err(VideoError::EmptyStream(_))),
        "{:?}",
        sampled(&avi)
    );
    let mp4 = make("empty.mp4", &args);
    assert!(
        matches!(
            sampled(&mp4),
            Err(VideoError::EmptyStream(_) | VideoError::NoVideoStream)
        ),
        "{:?}",
        sampled(&mp4)
    );
}

#[test]
fn a_header_claiming_100000x100000_is_refused_before_decoding() {
    // Raw video in AVI: the frame size comes straight from the headers
    // (`avih` and the stream's BITMAPINFOHEADER), which are rewritten.
    let raw = make(
        "raw.avi",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=16x16:rate=5:duration=1",
            "-c:v",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
        ],
    );
    let huge = derived("huge.avi", &raw, |mut bytes| {
        let find = |bytes: &[u8], tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
        let avih = find(&bytes, b"avih") + 8;
        let strf = find(&bytes, b"strf") + 8;
        for at in [avih + 32, avih + 36, strf + 4, strf + 8] {
            bytes[at..at + 4].copy_from_slice(&100_000u32.to_le_bytes());
        }
        bytes
    });
    match sampled(&huge) {
        Err(VideoError::FrameTooLarge { width, height, .. }) => {
            assert_eq!((width, height), (100_000, 100_000))
        }
        other => panic!("{other:?}"),
    }
    // And a real stream over a lowered limit, refused at open.
    let limits = VideoLimits {
        max_pixels_per_frame: 320 * 240 - 1,
        ..VideoLimits::default()
    };
    let h264 = video(&common::H264_MP4);
    assert!(matches!(
        Video::open(Source::Path(&h264), &limits),
        Err(VideoError::FrameTooLarge {
            width: 320,
            height: 240,
            ..
        })
    ));
}

#[test]
fn a_truncated_file_gives_the_frames_before_the_cut() {
    // Index first: the file opens, sampling stops where the data does.
    let faststart = cut(&video(&common::H264_FASTSTART), 0.5, "cut_faststart.mp4");
    let out = sampled(&faststart).expect("a partial result");
    assert!(
        matches!(out.summary.stopped, Some(VideoError::Truncated(_))),
        "{:?}",
        out.summary
    );
    assert!(
        !out.frames.is_empty() && out.frames.len() < 32,
        "{}",
        out.frames.len()
    );
    assert!(
        out.frames.iter().all(|f| f.t < 2.5),
        "frames from after the cut"
    );
    // Index last (FFmpeg's default MP4): the index is gone, nothing opens.
    let plain = cut(&video(&common::H264_MP4), 0.5, "cut.mp4");
    assert!(
        matches!(sampled(&plain), Err(VideoError::Corrupt(_))),
        "{:?}",
        sampled(&plain).map(|s| s.summary)
    );
    // Matroska needs no index: the frames before the cut, and a warning
    // that the stream ends early.
    let mkv = cut(&video(&common::H264_MKV), 0.5, "cut.mkv");
    let out = sampled(&mkv).expect("a partial result");
    assert!(!out.frames.is_empty() && out.frames.len() < 32);
    assert!(
        out.summary.stopped.is_some()
            || out
                .summary
                .warnings
                .iter()
                .any(|w| w.contains("frames end")),
        "{:?}",
        out.summary
    );
    // A few bytes of a file.
    let stub = cut(&video(&common::H264_MKV), 0.001, "stub.mkv");
    assert!(sampled(&stub).is_err());
}

#[test]
fn a_corrupt_bitstream_is_decoded_around_or_refused() {
    // The middle of the data overwritten with noise (a fixed xorshift).
    let path = video(&common::H264_MKV);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let (from, to) = (bytes.len() / 3, bytes.len() * 2 / 3);
    for byte in &mut bytes[from..to] {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    match sample(
        Source::Bytes(&bytes),
        Sampling::default(),
        Seek::Accurate,
        &VideoLimits::default(),
    ) {
        Ok(out) => {
            assert!(!out.frames.is_empty());
            assert!(
                out.summary.stopped.is_some() || !out.summary.warnings.is_empty(),
                "noise decoded without a word: {:?}",
                out.summary
            );
        }
        Err(error) => assert!(
            matches!(error, VideoError::Corrupt(_) | VideoError::Truncated(_)),
            "{error}"
        ),
    }
    // Every frame's data replaced, the container intact: nothing decodes.
    let mut bytes = std::fs::read(video(&common::H264_FASTSTART)).unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap() + 4;
    let end = bytes.len();
    for (i, byte) in bytes[mdat..end].iter_mut().enumerate() {
        *byte = (i * 7 + 3) as u8;
    }
    match sample(
        Source::Bytes(&bytes),
        Sampling::default(),
        Seek::Accurate,
        &VideoLimits::default(),
    ) {
        Err(VideoError::Corrupt(_)) => {}
        Ok(out) => assert!(!out.summary.warnings.is_empty(), "{:?}", out.summary),
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_ten_hour_timeline_with_one_frame() {
    // One frame that lasts ten hours.
    let long = make(
        "long.mkv",
        &[
            "-f",
            "lavfi",
            "-i",
            "color=size=64x64:rate=1/36000",
            "-frames:v",
            "1",
            "-c:v",
            "libx264",
        ],
    );
    assert!(matches!(
        sampled(&long),
        Err(VideoError::TooLong { duration_s, .. }) if (duration_s - 36000.0).abs() < 1.0
    ));
    let limits = VideoLimits {
        max_duration_s: 11.0 * 3600.0,
        ..VideoLimits::default()
    };
    let out = open(&long, &limits).unwrap();
    assert_eq!(out.frames.len(), 1);
    assert_eq!(out.frames[0].t, 0.0);
    // The one frame stands for every target (it is on screen for all of
    // them); it is reported once.
    assert_eq!(out.summary.targets, 32);
    assert!(
        out.summary
            .warnings
            .iter()
            .any(|w| w.contains("31 targets found a frame already sampled")),
        "{:?}",
        out.summary
    );
}

#[test]
fn limits_refuse_before_work() {
    let path = video(&common::H264_MP4);
    let bytes = std::fs::read(&path).unwrap();
    let limits = VideoLimits {
        max_bytes: 1000,
        ..VideoLimits::default()
    };
    assert!(matches!(
        open(&path, &limits),
        Err(VideoError::TooManyBytes { limit: 1000, .. })
    ));
    assert!(matches!(
        sample(
            Source::Bytes(&bytes),
            Sampling::default(),
            Seek::Accurate,
            &limits
        ),
        Err(VideoError::TooManyBytes { .. })
    ));
    let limits = VideoLimits {
        max_duration_s: 1.0,
        ..VideoLimits::default()
    };
    assert!(matches!(
        open(&path, &limits),
        Err(VideoError::TooLong { .. })
    ));
    let limits = VideoLimits {
        max_decode_ms: 0,
        ..VideoLimits::default()
    };
    assert!(matches!(
        open(&path, &limits),
        Err(VideoError::DecodeTimeout { limit_ms: 0 })
    ));
    for sampling in [
        Sampling::Frames(0),
        Sampling::Fps(0.0),
        Sampling::Fps(f64::NAN),
    ] {
        assert!(matches!(
            sample(
                Source::Path(&path),
                sampling,
                Seek::Accurate,
                &VideoLimits::default()
            ),
            Err(VideoError::InvalidSampling(_))
        ));
    }
    assert!(matches!(
        sampled(Path::new("/nonexistent/clip.mp4")),
        Err(VideoError::Io { .. })
    ));
}
