//! A video's rows: its sampled frames (`dfscan-video`: evenly spaced or at
//! a rate, accurate or keyframe seeking, bounded by `[video]`'s limits),
//! each frame through the image path ([`super::image`]: faces, crops,
//! preprocessing) as it is decoded, so that no more than one decoded frame
//! exists at a time; and the video's score from its frames' (faces linked
//! into tracks, `dfscan_core::video`). A video whose rows would pass
//! [`MAX_VIDEO_ROWS`] is sampled up to there and says so.

use std::io::Read;
use std::ops::ControlFlow;

use dfscan_core::video::{FrameScore, TrackAggregation, VideoScore, VideoSettings};
use dfscan_core::{FaceSettings, Prediction};
use dfscan_video::{Sampling, Seek, Source, VideoLimits, PROBE_BYTES};

use super::image::{self, ImagePlan};
use super::{Analysis, Input, Plan, Prepared, Rows};

/// The most classifier rows one video may take (its frames' faces, or
/// whole frames): 32 frames of 16 faces, about 300 MB of pixel values.
pub const MAX_VIDEO_ROWS: usize = 512;

/// What a video's rows are: each sampled frame's time and image plan.
#[derive(Debug, Clone)]
pub struct VideoPlan {
    duration_s: f64,
    frames: Vec<(f64, ImagePlan)>,
    partial: Option<String>,
    aggregation: TrackAggregation,
}

impl VideoPlan {
    pub fn rows(&self) -> usize {
        self.frames.iter().map(|(_, plan)| plan.rows()).sum()
    }

    /// The video's score from its rows' predictions (as many as its rows).
    pub(super) fn score(
        self,
        rows: Vec<Prediction>,
        fake_index: usize,
    ) -> Result<VideoScore, String> {
        let mut rows = rows.into_iter();
        let mut frames = Vec::with_capacity(self.frames.len());
        for (t, plan) in self.frames {
            let own: Vec<Prediction> = rows.by_ref().take(plan.rows()).collect();
            let image = plan.score(own, fake_index)?;
            frames.push(FrameScore {
                t,
                prediction: image.prediction,
                faces: image.faces,
                outcome: image.outcome,
            });
        }
        Ok(VideoScore::from_frames(
            self.duration_s,
            frames,
            self.aggregation,
            fake_index,
            self.partial,
        ))
    }
}

/// Whether the item is a video, from its first bytes.
pub(super) fn is_video(input: Input<'_>) -> Result<bool, String> {
    match input {
        Input::Bytes(bytes) => Ok(dfscan_video::is_video(
            &bytes[..bytes.len().min(PROBE_BYTES)],
        )),
        Input::File(path) => {
            let mut head = Vec::with_capacity(PROBE_BYTES.min(64 << 10));
            std::fs::File::open(path)
                .and_then(|f| f.take(PROBE_BYTES as u64).read_to_end(&mut head))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(dfscan_video::is_video(&head))
        }
    }
}

/// The decoder's limits from the settings.
pub fn limits(settings: &VideoSettings) -> VideoLimits {
    VideoLimits {
        max_bytes: settings.max_bytes,
        max_duration_s: settings.max_duration_s,
        max_frames: settings.max_frames as usize,
        max_pixels_per_frame: settings.max_frame_pixels,
        max_decode_ms: settings.max_decode_ms,
        ..VideoLimits::default()
    }
}

/// Samples the video and prepares each frame's rows as it is decoded.
pub(super) fn prepare(
    analysis: &Analysis,
    input: Input<'_>,
    faces: &FaceSettings,
) -> Result<Prepared, String> {
    let settings = analysis.video();
    let sampling = match settings.fps {
        Some(fps) => Sampling::Fps(fps),
        None => Sampling::Frames(settings.frames as usize),
    };
    let seek = if settings.keyframes_only {
        Seek::Keyframes
    } else {
        Seek::Accurate
    };
    let source = match input {
        Input::Bytes(bytes) => Source::Bytes(bytes),
        Input::File(path) => Source::Path(path),
    };
    let mut pixels = Vec::new();
    let mut frames: Vec<(f64, ImagePlan)> = Vec::new();
    let (mut rows, mut full, mut failed) = (0, false, None);
    let summary = dfscan_video::sample_each(source, sampling, seek, &limits(settings), |frame| {
        let before = pixels.len();
        match image::prepare(analysis, &frame.image, faces, &mut pixels) {
            Ok(plan) if rows + plan.rows() > MAX_VIDEO_ROWS => {
                pixels.truncate(before);
                full = true;
                ControlFlow::Break(())
            }
            Ok(plan) => {
                rows += plan.rows();
                frames.push((frame.t, plan));
                ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(format!("the frame at {:.3} s: {e}", frame.t));
                ControlFlow::Break(())
            }
        }
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = failed {
        return Err(e);
    }
    if frames.is_empty() {
        return Err(match summary.stopped {
            Some(e) => format!("no frame could be sampled: {e}"),
            None => "no frame could be sampled".into(),
        });
    }
    let sampled = frames.len();
    let partial = match (summary.stopped, full) {
        (Some(e), _) => Some(format!("{sampled} of {} frames sampled: {e}", summary.targets)),
        (None, true) => Some(format!(
            "{sampled} of {} frames sampled: their faces fill the {MAX_VIDEO_ROWS} rows one video may take",
            summary.targets
        )),
        (None, false) => None,
    };
    Ok(Prepared {
        pixels,
        plan: Plan {
            rows: Rows::Video(VideoPlan {
                duration_s: summary.info.duration_s,
                frames,
                partial,
                aggregation: settings.track_aggregation,
            }),
            explain: None,
        },
    })
}
