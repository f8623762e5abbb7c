//! A seeded fuzzer for the demuxer path: small videos of four containers
//! with their headers mutated (`dfscan-testkit`'s byte mutator, aimed at the
//! first kilobytes, where MP4's `moov`, Matroska's tracks and AVI's `hdrl`
//! are), sampled from memory under tight limits. Every input must end in a
//! result or an error, within the limits: no panic, no frame over the pixel
//! limit, no more frames than asked for, finite times.
//!
//! `DFSCAN_VIDEO_FUZZ_ITERATIONS` (default 500 per container) runs longer;
//! `DFSCAN_VIDEO_FUZZ_SEED` picks another seed. A failing input is written
//! to the test directory and named in the failure.

mod common;

use common::make;
use dfscan_testkit::mutate::mutate;
use dfscan_video::{sample, Sampling, Seek, Source, VideoLimits};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The region mutations go to: the headers of these small files.
const HEAD: usize = 4096;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_headers_end_in_a_result_or_an_error() {
    // FFmpeg reports every damaged header on stderr; thousands of them say nothing here.
    ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Quiet);
    let source = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10:duration=1",
    ];
    let with = |codec: &[&'static str]| -> Vec<&'static str> {
        source.iter().chain(codec).copied().collect()
    };
    let seeds: Vec<(&str, Vec<u8>)> = [
        (
            "seed.mp4",
            with(&[
                "-c:v",
                "libx264",
                "-g",
                "4",
                "-preset",
                "veryfast",
                "-movflags",
                "+faststart",
            ]),
        ),
        (
            "seed.mkv",
            with(&["-c:v", "libx264", "-g", "4", "-preset", "veryfast"]),
        ),
        (
            "seed.webm",
            with(&[
                "-c:v",
                "libvpx-vp9",
                "-g",
                "4",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ]),
        ),
        ("seed.avi", with(&["-c:v", "mpeg4", "-g", "4"])),
    ]
    .into_iter()
    .map(|(name, args)| (name, std::fs::read(make(name, &args)).unwrap()))
    .collect();
    let limits = VideoLimits {
        max_bytes: 1 << 20,
        max_duration_s: 60.0,
        max_frames: 4,
        max_pixels_per_frame: 1 << 20,
        max_decode_ms: 5_000,
        max_decode_threads: 1,
    };
    let iterations = env_u64("DFSCAN_VIDEO_FUZZ_ITERATIONS", 500);
    let mut rng = StdRng::seed_from_u64(env_u64("DFSCAN_VIDEO_FUZZ_SEED", 16));
    let (mut ok, mut failed) = (0usize, 0usize);
    for (name, seed) in &seeds {
        for i in 0..iterations {
            let other = &seeds[rng.random_range(0..seeds.len())].1;
            let mut head = seed[..seed.len().min(HEAD)].to_vec();
            for _ in 0..rng.random_range(1..=3) {
                mutate(&mut head, other, &mut rng);
            }
            let mut data = head;
            data.extend_from_slice(&seed[seed.len().min(HEAD)..]);
            let seek = if i % 2 == 0 {
                Seek::Accurate
            } else {
                Seek::Keyframes
            };
            let sampling = if i % 3 == 0 {
                Sampling::Fps(3.0)
            } else {
                Sampling::Frames(4)
            };
            let keep = || {
                let path = common::dir().join(format!("fuzz-failure-{name}-{i}"));
                std::fs::write(&path, &data).unwrap();
                path
            };
            let outcome =
                std::panic::catch_unwind(|| sample(Source::Bytes(&data), sampling, seek, &limits));
            match outcome {
                Err(_) => panic!("{name} #{i} panicked: input kept as {}", keep().display()),
                Ok(Err(_)) => failed += 1,
                Ok(Ok(out)) => {
                    ok += 1;
                    let sound = out.frames.len() <= limits.max_frames
                        && out.frames.iter().all(|f| {
                            let (w, h) = f.image.dimensions();
                            f.t.is_finite()
                                && u64::from(w) * u64::from(h) <= limits.max_pixels_per_frame
                        });
                    assert!(
                        sound,
                        "{name} #{i} broke a limit: input kept as {}",
                        keep().display()
                    );
                }
            }
        }
    }
    // The mutations must not all be fatal (then the decode path is untested)
    // nor all harmless (then they miss the headers).
    assert!(ok > 0 && failed > 0, "{ok} sampled, {failed} refused");
}
