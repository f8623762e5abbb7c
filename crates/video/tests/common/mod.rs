//! Test videos made with the `ffmpeg` CLI (none are downloaded), once per
//! test binary, and the CLI's own view of them (`ffmpeg -ss T` frames as PNG,
//! `ffprobe`'s keyframe times) to compare with.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use dfscan_imaging::RgbImage;

/// A test video: its file name (container by extension) and the `ffmpeg`
/// arguments between `-y` and the output path.
pub struct Spec {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

/// 4 s of testsrc2 (a moving pattern and a counter) at 25 fps, 320x240.
macro_rules! spec {
    ($name:literal, [$($arg:literal),* $(,)?]) => {
        Spec { name: $name, args: &["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4", $($arg),*] }
    };
}

/// H.264 yuv420p with B-frames, a keyframe every 25 frames, MP4.
pub const H264_MP4: Spec = spec!(
    "h264.mp4",
    [
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-preset",
        "veryfast"
    ]
);
/// The same with the index (`moov`) before the data, as streaming sites write it.
pub const H264_FASTSTART: Spec = spec!(
    "h264_faststart.mp4",
    [
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-preset",
        "veryfast",
        "-movflags",
        "+faststart"
    ]
);
/// H.264 in Matroska, keyframes every 50 frames.
pub const H264_MKV: Spec = spec!(
    "h264.mkv",
    [
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-preset",
        "veryfast"
    ]
);
/// Lossless: FFV1 in RGB, so the CLI's PNG and our RGB must agree exactly.
pub const FFV1_MKV: Spec = spec!("ffv1.mkv", ["-c:v", "ffv1", "-pix_fmt", "bgr0", "-g", "10"]);
/// Lossless H.264 in RGB (`libx264rgb -qp 0`).
pub const X264RGB_MKV: Spec = spec!(
    "x264rgb.mkv",
    [
        "-c:v",
        "libx264rgb",
        "-qp",
        "0",
        "-g",
        "20",
        "-keyint_min",
        "20",
        "-sc_threshold",
        "0",
        "-preset",
        "veryfast"
    ]
);
/// MPEG-4 Part 2 in AVI.
pub const MPEG4_AVI: Spec = spec!(
    "mpeg4.avi",
    ["-c:v", "mpeg4", "-q:v", "4", "-g", "12", "-bf", "2"]
);
/// VP9 in WebM.
pub const VP9_WEBM: Spec = spec!(
    "vp9.webm",
    [
        "-c:v",
        "libvpx-vp9",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "30",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "500k"
    ]
);
/// H.265 in MP4.
pub const HEVC_MP4: Spec = spec!(
    "hevc.mp4",
    [
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p",
        "-x265-params",
        "keyint=25:min-keyint=25:scenecut=0:log-level=error",
        "-preset",
        "ultrafast",
        "-tag:v",
        "hvc1"
    ]
);
/// AV1 (SVT-AV1) in MP4.
pub const AV1_MP4: Spec = spec!(
    "av1.mp4",
    [
        "-c:v",
        "libsvtav1",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-preset",
        "12",
        "-svtav1-params",
        "scd=0"
    ]
);
/// BT.709 full-range H.264: the conversion has to follow the stream's tags.
pub const H264_709_FULL: Spec = spec!(
    "h264_709_full.mkv",
    [
        "-vf",
        "scale=out_color_matrix=bt709:out_range=full",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-colorspace",
        "bt709",
        "-color_primaries",
        "bt709",
        "-color_trc",
        "bt709",
        "-color_range",
        "pc",
        "-g",
        "25",
        "-preset",
        "veryfast"
    ]
);

/// H.264 in MPEG-TS: no index, and a timeline that starts at 1.4 s.
pub const H264_TS: Spec = spec!(
    "h264.ts",
    ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", "-preset", "veryfast"]
);
/// VP9 WebM as a browser records it: no duration, no cues.
pub const VP9_LIVE_WEBM: Spec = spec!(
    "vp9_live.webm",
    [
        "-c:v",
        "libvpx-vp9",
        "-pix_fmt",
        "yuv420p",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "500k",
        "-live",
        "1",
        "-f",
        "webm"
    ]
);

/// Every codec and container the sampling tests cover.
pub const ALL: &[&Spec] = &[
    &H264_MP4,
    &H264_FASTSTART,
    &H264_MKV,
    &FFV1_MKV,
    &X264RGB_MKV,
    &MPEG4_AVI,
    &VP9_WEBM,
    &HEVC_MP4,
    &AV1_MP4,
    &H264_709_FULL,
    &H264_TS,
    &VP9_LIVE_WEBM,
];

/// Where the videos go: cargo's scratch directory for integration tests
/// (under `target/`), shared by the test binaries and kept between runs.
/// Names carry a hash of the arguments that make them, so a changed spec
/// is a new file.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dfscan-video");
        std::fs::create_dir_all(&dir).expect("test directory");
        dir
    })
}

/// `dir()/NAME` with `key` hashed into it: `h264-1a2b3c4d.mp4`.
fn keyed(name: &str, key: &[&str]) -> PathBuf {
    let mut hash = 0xcbf2_9ce4_8422_2325u64; // FNV-1a
    for byte in key.join("\0").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    dir().join(format!("{stem}-{:08x}.{ext}", hash as u32))
}

/// The video of `spec`, made unless an earlier run made it.
pub fn video(spec: &Spec) -> PathBuf {
    let out = keyed(spec.name, spec.args);
    made(&out, |tmp| ffmpeg(spec.args, tmp));
    out
}

/// `ffmpeg ARGS` into `dir()/NAME` (keyed by the arguments), unless made.
pub fn make(name: &str, args: &[&str]) -> PathBuf {
    let out = keyed(name, args);
    made(&out, |tmp| ffmpeg(args, tmp));
    out
}

/// `dir()/NAME` holding `edit` of `source`'s bytes (a cut, a patched
/// header, a renamed copy), keyed by the source, made once.
pub fn derived(name: &str, source: &Path, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> PathBuf {
    let out = keyed(name, &[&source.to_string_lossy()]);
    made(&out, |tmp| {
        let bytes = std::fs::read(source).expect("the source video");
        std::fs::write(tmp, edit(bytes)).expect("write");
    });
    out
}

/// Runs `make` on a temporary name beside `out` and renames it into place,
/// so that a concurrent or interrupted run never sees half a file.
fn made(out: &Path, make: impl FnOnce(&Path)) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return;
    }
    let name = out.file_name().unwrap().to_string_lossy();
    let tmp = out.with_file_name(format!("partial-{}-{name}", std::process::id()));
    make(&tmp);
    std::fs::rename(&tmp, out).expect("rename into place");
}

/// Runs `ffmpeg -y ARGS OUT`, failing the test with its stderr.
pub fn ffmpeg(args: &[&str], out: &Path) {
    dfscan_testkit::ffmpeg(&[args, &[out.to_str().expect("a UTF-8 path")]].concat());
}

/// The frame `ffmpeg -ss T -i VIDEO -frames:v 1 x.png` writes.
pub fn cli_frame(video: &Path, t: f64) -> RgbImage {
    cli_png(video, t, true)
}

/// The frame `ffmpeg -i VIDEO -ss T -frames:v 1 x.png` writes: decoded from
/// the start, the frames before T dropped. The same frame as [`cli_frame`]
/// where the container lets the CLI seek exactly; in MPEG-TS the CLI's
/// input seek lands on the next keyframe instead.
pub fn cli_frame_decoding_from_the_start(video: &Path, t: f64) -> RgbImage {
    cli_png(video, t, false)
}

fn cli_png(video: &Path, t: f64, seek_input: bool) -> RgbImage {
    let name = format!(
        "{}-{t}-{seek_input}.png",
        video.file_name().unwrap().to_string_lossy()
    );
    let (video_arg, ss) = (video.to_str().unwrap(), format!("{t}"));
    let mut args = vec!["-i", video_arg, "-frames:v", "1", "-f", "image2"];
    args.splice(if seek_input { 0..0 } else { 2..2 }, ["-ss", ss.as_str()]);
    let out = keyed(&name, &args);
    made(&out, |tmp| ffmpeg(&args, tmp));
    image::open(&out).expect("the CLI's PNG").to_rgb8()
}

/// Presentation times (seconds from the container's start, as `t` counts)
/// of the frames `ffprobe` decodes as keyframes.
pub fn keyframe_times(video: &Path) -> Vec<f64> {
    let probe = |args: &[&str]| {
        let output = Command::new("ffprobe")
            .args(["-v", "error"])
            .args(args)
            .arg(video)
            .output()
            .expect("ffprobe runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let start: f64 = probe(&["-show_entries", "format=start_time", "-of", "csv=p=0"])
        .trim()
        .parse()
        .unwrap_or(0.0);
    let frames = probe(&[
        "-select_streams",
        "v:0",
        "-show_entries",
        "frame=key_frame,best_effort_timestamp_time",
        "-of",
        "csv=p=0",
    ]);
    frames
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',');
            let (key, t) = (fields.next()?, fields.next()?);
            (key == "1").then(|| t.parse::<f64>().ok()).flatten()
        })
        .map(|t| t - start)
        .collect()
}

/// Largest and mean absolute difference of two images' samples.
pub fn diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions(), "image sizes");
    let mut max = 0u8;
    let mut sum = 0u64;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        sum += u64::from(d);
    }
    (max, sum as f64 / a.as_raw().len() as f64)
}
