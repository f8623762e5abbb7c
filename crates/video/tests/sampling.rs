//! Sampling real videos of several codecs and containers, checked against
//! the `ffmpeg` CLI: the frame at each reported time, keyframe times, and
//! the same result from bytes in memory as from the file.

mod common;

use std::ops::ControlFlow;

use common::{cli_frame, diff, keyframe_times, video, Spec, ALL};
use dfscan_video::{
    is_video, sample, sample_each, Sampling, Seek, Source, Video, VideoLimits, PROBE_BYTES,
};

fn sampled(spec: &Spec, sampling: Sampling, seek: Seek) -> dfscan_video::Sampled {
    let path = video(spec);
    sample(Source::Path(&path), sampling, seek, &VideoLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name))
}

#[test]
fn every_codec_and_container_gives_32_frames_in_order() {
    for spec in ALL {
        let path = video(spec);
        let prefix = std::fs::read(&path).unwrap();
        assert!(
            is_video(&prefix[..prefix.len().min(PROBE_BYTES)]),
            "{}",
            spec.name
        );
        let out = sampled(spec, Sampling::default(), Seek::Accurate);
        let info = &out.summary.info;
        assert_eq!((info.width, info.height), (320, 240), "{}", spec.name);
        assert!(
            (info.duration_s - 4.0).abs() < 0.1,
            "{}: duration {}",
            spec.name,
            info.duration_s
        );
        assert_eq!(out.frames.len(), 32, "{}: {:?}", spec.name, out.summary);
        assert_eq!(out.summary.frames, 32);
        assert_eq!(out.summary.stopped, None, "{}", spec.name);
        assert!(
            out.summary.warnings.is_empty(),
            "{}: {:?}",
            spec.name,
            out.summary.warnings
        );
        for pair in out.frames.windows(2) {
            assert!(
                pair[0].t < pair[1].t,
                "{}: {} then {}",
                spec.name,
                pair[0].t,
                pair[1].t
            );
        }
        for (i, frame) in out.frames.iter().enumerate() {
            assert!(
                (0.0..info.duration_s).contains(&frame.t),
                "{}: t={}",
                spec.name,
                frame.t
            );
            assert_eq!(frame.target, i);
            assert_eq!(frame.image.dimensions(), (320, 240));
            // Accurate: the first frame at or after the target, 1/25 s apart at most.
            let target = info.duration_s * (i as f64 + 0.5) / 32.0;
            assert!(
                frame.t >= target - 1e-6 && frame.t < target + 0.04 + 1e-6,
                "{}: target {target}, t {}",
                spec.name,
                frame.t
            );
        }
    }
}

#[test]
fn lossless_frames_equal_the_cli_frame_at_their_time() {
    for spec in [&common::FFV1_MKV, &common::X264RGB_MKV] {
        let path = video(spec);
        for frame in sampled(spec, Sampling::Frames(8), Seek::Accurate).frames {
            let (max, _) = diff(&frame.image, &cli_frame(&path, frame.t));
            assert!(
                max <= 1,
                "{} at t={}: max difference {max}",
                spec.name,
                frame.t
            );
        }
    }
}

#[test]
fn yuv_frames_equal_the_cli_frame_at_their_time() {
    for spec in [
        &common::H264_MP4,
        &common::H264_MKV,
        &common::MPEG4_AVI,
        &common::VP9_WEBM,
        &common::HEVC_MP4,
        &common::AV1_MP4,
        &common::H264_709_FULL,
        &common::H264_TS,
        &common::VP9_LIVE_WEBM,
    ] {
        let path = video(spec);
        for frame in sampled(spec, Sampling::Frames(6), Seek::Accurate).frames {
            let reference = if spec.name.ends_with(".ts") {
                common::cli_frame_decoding_from_the_start(&path, frame.t)
            } else {
                cli_frame(&path, frame.t)
            };
            let (max, mean) = diff(&frame.image, &reference);
            // Same swscale, same settings: equal samples (colour conversion
            // is where a difference would come from).
            assert!(
                mean <= 0.01 && max <= 2,
                "{} at t={}: mean {mean}, max {max}",
                spec.name,
                frame.t
            );
        }
    }
}

#[test]
fn full_range_bt709_is_converted_as_tagged() {
    // Decoding the same stream as limited-range BT.601 would shift every
    // colour; the pattern's large flat areas make that visible in the mean.
    let out = sampled(&common::H264_709_FULL, Sampling::Frames(1), Seek::Accurate);
    let reference = sampled(&common::H264_MKV, Sampling::Frames(1), Seek::Accurate);
    let (_, mean) = diff(&out.frames[0].image, &reference.frames[0].image);
    assert!(
        mean < 3.0,
        "BT.709 full range decoded off by {mean} on average"
    );
}

#[test]
fn keyframe_mode_returns_keyframes_only() {
    // Not AVI: it stores no presentation times, and with B-frames the time
    // FFmpeg guesses for a keyframe depends on the frames decoded around it
    // (see `Seek::Keyframes`).
    for spec in [
        &common::H264_MP4,
        &common::H264_MKV,
        &common::VP9_WEBM,
        &common::HEVC_MP4,
        &common::AV1_MP4,
    ] {
        let path = video(spec);
        let keyframes = keyframe_times(&path);
        let out = sampled(spec, Sampling::Frames(16), Seek::Keyframes);
        assert!(!out.frames.is_empty());
        for frame in &out.frames {
            assert!(frame.keyframe, "{}: t={}", spec.name, frame.t);
            assert!(
                keyframes.iter().any(|k| (k - frame.t).abs() < 1e-3),
                "{}: t={} is not a keyframe ({keyframes:?})",
                spec.name,
                frame.t
            );
        }
        for pair in out.frames.windows(2) {
            assert!(pair[0].t < pair[1].t, "{}", spec.name);
        }
        // 16 targets over 4 s with a keyframe every 1 or 2 s: several targets share one.
        assert!(
            out.frames.len() < 16 && out.frames.len() >= 2,
            "{}: {}",
            spec.name,
            out.frames.len()
        );
        // And each keyframe is the one at or before its target.
        for frame in &out.frames {
            let target = 4.0 * (frame.target as f64 + 0.5) / 16.0;
            let expected = keyframes
                .iter()
                .copied()
                .filter(|k| *k <= target + 1e-6)
                .fold(f64::MIN, f64::max);
            assert!(
                (frame.t - expected).abs() < 1e-3,
                "{}: target {target} gave {} not {expected}",
                spec.name,
                frame.t
            );
        }
    }
}

#[test]
fn keyframe_frames_equal_the_accurate_frames_at_the_same_time() {
    let path = video(&common::FFV1_MKV);
    let keyframes = sampled(&common::FFV1_MKV, Sampling::Frames(4), Seek::Keyframes);
    for frame in keyframes.frames {
        let (max, _) = diff(&frame.image, &cli_frame(&path, frame.t));
        assert!(max <= 1, "t={}", frame.t);
    }
}

#[test]
fn bytes_decode_as_the_file_does() {
    for spec in [&common::H264_MP4, &common::VP9_WEBM, &common::MPEG4_AVI] {
        let path = video(spec);
        let bytes = std::fs::read(&path).unwrap();
        let from_path = sampled(spec, Sampling::Frames(8), Seek::Accurate);
        let from_bytes = sample(
            Source::Bytes(&bytes),
            Sampling::Frames(8),
            Seek::Accurate,
            &VideoLimits::default(),
        )
        .unwrap();
        assert_eq!(from_path.summary, from_bytes.summary, "{}", spec.name);
        for (a, b) in from_path.frames.iter().zip(&from_bytes.frames) {
            assert_eq!(a.t, b.t);
            let (max, _) = diff(&a.image, &b.image);
            assert_eq!(max, 0, "{} at t={}", spec.name, a.t);
        }
    }
}

#[test]
fn a_video_named_jpg_is_a_video() {
    let path = video(&common::H264_MP4);
    let renamed = common::derived("holiday.jpg", &path, |bytes| bytes);
    let out = sample(
        Source::Path(&renamed),
        Sampling::Frames(4),
        Seek::Accurate,
        &VideoLimits::default(),
    )
    .unwrap();
    assert_eq!(out.frames.len(), 4);
}

#[test]
fn fps_sampling_follows_the_rate() {
    let out = sampled(&common::H264_MKV, Sampling::Fps(2.0), Seek::Accurate);
    // (k + 0.5) / 2 inside 4 s: 0.25 ... 3.75.
    assert_eq!(out.frames.len(), 8);
    for (k, frame) in out.frames.iter().enumerate() {
        let target = (k as f64 + 0.5) / 2.0;
        assert!(
            frame.t >= target - 1e-6 && frame.t < target + 0.04 + 1e-6,
            "{target} {}",
            frame.t
        );
    }
}

#[test]
fn frames_stream_one_at_a_time_and_the_caller_can_stop() {
    let path = video(&common::H264_MP4);
    let mut seen = Vec::new();
    let summary = sample_each(
        Source::Path(&path),
        Sampling::Frames(32),
        Seek::Accurate,
        &VideoLimits::default(),
        |frame| {
            seen.push(frame.t);
            if seen.len() == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )
    .unwrap();
    assert_eq!(seen.len(), 5);
    assert_eq!(summary.frames, 5);
    assert_eq!(summary.targets, 32);
}

#[test]
fn more_frames_than_the_video_has_are_reported_once_each() {
    // 4 s at 25 fps is 100 frames; 200 targets find each at most once, and
    // all but the first (t=0, before the first target at 0.01 s).
    let limits = VideoLimits {
        max_frames: 200,
        ..VideoLimits::default()
    };
    let path = video(&common::H264_MKV);
    let out = sample(
        Source::Path(&path),
        Sampling::Frames(200),
        Seek::Accurate,
        &limits,
    )
    .unwrap();
    assert_eq!(out.frames.len(), 99);
    assert!(
        out.summary
            .warnings
            .iter()
            .any(|w| w.contains("already sampled")),
        "{:?}",
        out.summary.warnings
    );
    // Over the limit: lowered, with a warning.
    let out = sample(
        Source::Path(&path),
        Sampling::Frames(1000),
        Seek::Accurate,
        &limits,
    )
    .unwrap();
    assert_eq!(out.summary.targets, 200);
    assert!(out
        .summary
        .warnings
        .iter()
        .any(|w| w.contains("over the limit")));
}

#[test]
fn rotated_video_is_turned_as_the_cli_turns_it() {
    // A phone's portrait video: landscape frames and a display matrix
    // (FFmpeg 5.1's MP4 muxer writes one from the `rotate` tag when copying).
    let src = video(&common::X264RGB_MKV);
    let rotated = common::make(
        "rotated.mp4",
        &[
            "-i",
            src.to_str().unwrap(),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
        ],
    );
    let video = Video::open(Source::Path(&rotated), &VideoLimits::default()).unwrap();
    assert!(
        [90, 270].contains(&video.info().rotation),
        "{:?}",
        video.info()
    );
    assert_eq!((video.info().width, video.info().height), (240, 320));
    for frame in video
        .sample(Sampling::Frames(3), Seek::Accurate)
        .unwrap()
        .frames
    {
        assert_eq!(frame.image.dimensions(), (240, 320));
        let (max, _) = diff(&frame.image, &cli_frame(&rotated, frame.t));
        assert!(max <= 1, "t={}: {max}", frame.t);
    }
}

#[test]
fn the_budget_counts_decoding_only() {
    // 1.5 s of budget; the caller waits 0.6 s before sampling and spends
    // 0.3 s on each of 4 frames (1.8 s in all), decoding itself a few
    // milliseconds.
    let limits = VideoLimits {
        max_decode_ms: 1_500,
        ..VideoLimits::default()
    };
    let path = video(&common::H264_MKV);
    let video = Video::open(Source::Path(&path), &limits).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(600));
    let summary = video
        .sample_each(Sampling::Frames(4), Seek::Accurate, |_| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((summary.frames, summary.stopped), (4, None));
}
