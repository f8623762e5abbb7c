//! Videos: how one is sampled and bounded ([`VideoSettings`], config
//! section `video`, env `DFSCAN_VIDEO__*`), and how its frames' scores
//! become one verdict a moderator can read: faces linked across frames
//! into tracks by box overlap ([`link_tracks`]), each track scored by
//! [`TrackAggregation`] (default: the DFDC winner's confident strategy,
//! [`confident`]), the video as fake as its most fake track. Pure logic,
//! here beside the image types, so that every crate (and the coordinator,
//! without libtorch or FFmpeg) reads the same settings and records.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::faces::{iou, FaceScore, Outcome};
use crate::settings::Section;
use crate::Prediction;

/// How a track's score comes from its faces' fake scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackAggregation {
    /// The DFDC winner's rule ([`confident`]).
    #[default]
    Confident,
    Mean,
    Max,
}

impl TrackAggregation {
    pub const NAMES: &'static [&'static str] = &["confident", "mean", "max"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Confident => "confident",
            Self::Mean => "mean",
            Self::Max => "max",
        }
    }

    /// One track's fake score from its faces' (at least one).
    pub fn apply(self, scores: &[f32]) -> f32 {
        match self {
            Self::Confident => confident(scores),
            Self::Mean => mean(scores),
            Self::Max => scores.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        }
    }
}

impl fmt::Display for TrackAggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TrackAggregation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "confident" => Ok(Self::Confident),
            "mean" => Ok(Self::Mean),
            "max" => Ok(Self::Max),
            _ => Err(format!(
                "unknown track aggregation {s:?}: expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

fn mean(scores: &[f32]) -> f32 {
    (scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len() as f64) as f32
}

/// The DFDC winner's `confident_strategy` (selimsef/dfdc_deepfake_challenge,
/// `kernel_utils.py`, threshold 0.8): when more than 11 faces, and more
/// than `len / 2.5` (integer division, as Python's `//`), score above 0.8,
/// the mean of those; else, when more than 90% score below 0.2, the mean of
/// those; else the mean of all. Confident frames decide, so a few
/// uncertain ones do not dilute a clear verdict.
pub fn confident(scores: &[f32]) -> f32 {
    const T: f32 = 0.8;
    let size = scores.len();
    let fakes: Vec<f32> = scores.iter().copied().filter(|&s| s > T).collect();
    // Python: `sz // 2.5` is floor(sz / 2.5) as a float.
    if fakes.len() as f64 > (size as f64 / 2.5).floor() && fakes.len() > 11 {
        return mean(&fakes);
    }
    let reals: Vec<f32> = scores.iter().copied().filter(|&s| s < 0.2).collect();
    if reals.len() as f64 > 0.9 * size as f64 {
        return mean(&reals);
    }
    mean(scores)
}

/// Faces of consecutive sampled frames whose boxes overlap by at least
/// this IoU are one person's track.
pub const TRACK_IOU: f32 = 0.25;

/// Links each frame's faces (in frame order) into tracks: a face joins the
/// track whose latest box (from an earlier frame) overlaps it most, by at
/// least `min_iou`, each track taking at most one face per frame (pairs
/// taken best overlap first); the others start tracks. A track is its
/// faces as (frame index, face index), in frame order; tracks are ordered
/// by their first face.
pub fn link_tracks(frames: &[&[FaceScore]], min_iou: f32) -> Vec<Vec<(usize, usize)>> {
    let mut tracks: Vec<Vec<(usize, usize)>> = Vec::new();
    for (f, faces) in frames.iter().enumerate() {
        let latest = |track: &Vec<(usize, usize)>| {
            let &(frame, face) = track.last().expect("a track has a face");
            &frames[frame][face].bbox
        };
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in tracks.iter().enumerate() {
            for (i, face) in faces.iter().enumerate() {
                let overlap = iou(latest(track), &face.bbox);
                if overlap >= min_iou {
                    pairs.push((overlap, t, i));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let (mut track_taken, mut face_taken) =
            (vec![false; tracks.len()], vec![false; faces.len()]);
        for (_, t, i) in pairs {
            if !track_taken[t] && !face_taken[i] {
                track_taken[t] = true;
                face_taken[i] = true;
                tracks[t].push((f, i));
            }
        }
        for (i, taken) in face_taken.into_iter().enumerate() {
            if !taken {
                tracks.push(vec![(f, i)]);
            }
        }
    }
    tracks
}

/// How videos are sampled and bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoSettings {
    /// Frames sampled, evenly spaced over the duration (the DFDC winner and
    /// DeepfakeBench use 32); ignored when `fps` is set.
    pub frames: u32,
    /// Sample this many frames per second instead (none: `frames`).
    pub fps: Option<f64>,
    /// Seek to the keyframe before each sample time and take the first
    /// frame decoded there (fast), instead of decoding forward to the exact
    /// frame (accurate).
    pub keyframes_only: bool,
    pub track_aggregation: TrackAggregation,
    /// Largest video accepted, in bytes.
    pub max_bytes: u64,
    /// Longest video accepted, in seconds.
    pub max_duration_s: f64,
    /// Most frames sampled from one video (with `fps`, the rate is lowered
    /// to fit).
    pub max_frames: u32,
    /// Largest frame accepted, in pixels (width × height), checked from the
    /// stream's header before any frame is decoded.
    pub max_frame_pixels: u64,
    /// Longest one video's decoding may run, in milliseconds; past it the
    /// frames sampled so far are scored and the result says so.
    pub max_decode_ms: u64,
}

impl Section for VideoSettings {
    const NAME: &'static str = "video";
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            frames: 32,
            fps: None,
            keyframes_only: false,
            track_aggregation: TrackAggregation::Confident,
            max_bytes: 2 << 30,
            max_duration_s: 3.0 * 3600.0,
            max_frames: 256,
            // The largest frame H.264 and H.265 levels 6.2 allow (8K UHD
            // included).
            max_frame_pixels: 8192 * 4320,
            max_decode_ms: 60_000,
        }
    }
}

impl VideoSettings {
    /// Refuses settings no sampling can honour; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.frames == 0 || self.frames > self.max_frames {
            return Err(format!(
                "video.frames must be 1 to video.max_frames ({}), got {}",
                self.max_frames, self.frames
            ));
        }
        if let Some(fps) = self.fps {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(format!("video.fps must be a positive number, got {fps}"));
            }
        }
        if !(self.max_duration_s.is_finite() && self.max_duration_s > 0.0) {
            return Err(format!(
                "video.max_duration_s must be a positive number of seconds, got {}",
                self.max_duration_s
            ));
        }
        Ok(())
    }
}

/// One sampled frame's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameScore {
    /// The decoded frame's presentation time, in seconds from the start.
    pub t: f64,
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub prediction: Option<Prediction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<Vec<FaceScore>>,
    pub outcome: Outcome,
}

/// One person's faces across frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackScore {
    pub id: usize,
    /// Sampled frames the track has a face in.
    pub frames: usize,
    /// First and last of those frames' times, in seconds.
    pub start_t: f64,
    pub end_t: f64,
    pub fake_score: f32,
}

/// A video's result: its frames' results in time order, its faces' tracks,
/// and its own score (none for `no_face`).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoScore {
    /// The container's duration, in seconds.
    pub duration_s: f64,
    pub frames: Vec<FrameScore>,
    pub tracks: Vec<TrackScore>,
    pub prediction: Option<Prediction>,
    pub outcome: Outcome,
    /// Why fewer frames than asked for were scored (a truncated file, a
    /// corrupt stretch, the decode budget); `None` when all were.
    pub partial: Option<String>,
}

/// A video's own keys in a result record, as every output writes them:
/// `duration_s`, `frames`, `tracks`, and `partial` when set. CSV's `video`
/// cell is this object; a callback's item and a KServe `FACES` document
/// carry its keys beside their others (a JSON line spreads them among its
/// own, so it names each one in its place).
#[derive(Debug, Serialize)]
pub struct Timeline<'a> {
    pub duration_s: f64,
    pub frames: &'a [FrameScore],
    pub tracks: &'a [TrackScore],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<&'a str>,
}

impl VideoScore {
    /// Its own keys in a result record.
    pub fn timeline(&self) -> Timeline<'_> {
        Timeline {
            duration_s: self.duration_s,
            frames: &self.frames,
            tracks: &self.tracks,
            partial: self.partial.as_deref(),
        }
    }

    /// The video's verdict from its frames: with faces, the most fake track
    /// (each scored by `aggregation`); with none in any frame, the frames
    /// scored whole, aggregated the same way (outcome `whole_image`, or
    /// `scored` with faces off); with none and no whole frames (mode
    /// `require`), `no_face`.
    pub fn from_frames(
        duration_s: f64,
        frames: Vec<FrameScore>,
        aggregation: TrackAggregation,
        fake_index: usize,
        partial: Option<String>,
    ) -> Self {
        let with_faces: Vec<&[FaceScore]> = frames
            .iter()
            .map(|f| f.faces.as_deref().unwrap_or_default())
            .collect();
        let linked = link_tracks(&with_faces, TRACK_IOU);
        let mut tracks = Vec::with_capacity(linked.len());
        let mut best: Option<(f32, Prediction)> = None;
        for (id, members) in linked.iter().enumerate() {
            let faces: Vec<&Prediction> = members
                .iter()
                .map(|&(f, i)| &with_faces[f][i].prediction)
                .collect();
            let prediction = combine(&faces, aggregation, fake_index);
            tracks.push(TrackScore {
                id,
                frames: members.len(),
                start_t: frames[members[0].0].t,
                end_t: frames[members[members.len() - 1].0].t,
                fake_score: prediction.fake_score,
            });
            if best
                .as_ref()
                .is_none_or(|(s, _)| prediction.fake_score > *s)
            {
                best = Some((prediction.fake_score, prediction));
            }
        }
        let (prediction, outcome) = match best {
            Some((_, p)) => (Some(p), Outcome::Scored),
            None => {
                let whole: Vec<&Prediction> = frames
                    .iter()
                    .filter_map(|f| f.prediction.as_ref())
                    .collect();
                if whole.is_empty() {
                    (None, Outcome::NoFace)
                } else {
                    let looked = frames.iter().any(|f| f.faces.is_some());
                    let outcome = if looked {
                        Outcome::WholeImage
                    } else {
                        Outcome::Scored
                    };
                    (Some(combine(&whole, aggregation, fake_index)), outcome)
                }
            }
        };
        Self {
            duration_s,
            frames,
            tracks,
            prediction,
            outcome,
            partial,
        }
    }
}

/// One prediction from several (a track's faces, a video's whole frames):
/// the fake label's probability by `aggregation` over theirs; the other
/// labels share the rest in proportion to their mean probabilities; the
/// label is the most probable.
fn combine(
    predictions: &[&Prediction],
    aggregation: TrackAggregation,
    fake_index: usize,
) -> Prediction {
    let fakes: Vec<f32> = predictions.iter().map(|p| p.fake_score).collect();
    let fake = aggregation.apply(&fakes);
    let labels: Vec<String> = predictions[0]
        .scores
        .iter()
        .map(|(l, _)| l.clone())
        .collect();
    let means: Vec<f64> = (0..labels.len())
        .map(|i| {
            predictions
                .iter()
                .map(|p| f64::from(p.scores[i].1))
                .sum::<f64>()
                / predictions.len() as f64
        })
        .collect();
    let others: f64 = means
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != fake_index)
        .map(|(_, m)| m)
        .sum();
    let rest = 1.0 - f64::from(fake);
    let probs: Vec<f32> = means
        .iter()
        .enumerate()
        .map(|(i, &m)| {
            if i == fake_index {
                fake
            } else if others > 0.0 {
                (m / others * rest) as f32
            } else {
                (rest / (labels.len() - 1).max(1) as f64) as f32
            }
        })
        .collect();
    Prediction::from_probabilities(&labels, &probs, fake_index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32) -> FaceScore {
        let labels = ["Real".to_string(), "Fake".to_string()];
        FaceScore {
            bbox: [x, 10.0, x + 40.0, 60.0],
            detector_score: 0.9,
            landmarks: [[0.0; 2]; 5],
            crop: [0, 0, 1, 1],
            prediction: Prediction::from_probabilities(&labels, &[0.5, 0.5], 1),
        }
    }

    /// The DFDC winner's `confident_strategy`, transcribed:
    ///
    /// ```python
    /// def confident_strategy(pred, t=0.8):
    ///     pred = np.array(pred)
    ///     sz = len(pred)
    ///     fakes = np.count_nonzero(pred > t)
    ///     if fakes > sz // 2.5 and fakes > 11:
    ///         return np.mean(pred[pred > t])
    ///     elif np.count_nonzero(pred < 0.2) > 0.9 * sz:
    ///         return np.mean(pred[pred < 0.2])
    ///     else:
    ///         return np.mean(pred)
    /// ```
    #[test]
    fn the_confident_strategy_follows_the_published_rule() {
        // 12 confident fakes of 30 (> 30 // 2.5 = 12? no: 12 is not > 12).
        let mut s = vec![0.9f32; 12];
        s.extend(vec![0.5; 18]);
        assert!((confident(&s) - mean(&s)).abs() < 1e-6);
        // 13 of 30: the mean of the confident ones.
        let mut s = vec![0.9f32; 13];
        s.extend(vec![0.5; 17]);
        assert!((confident(&s) - 0.9).abs() < 1e-6);
        // 11 confident of 12 is not enough (more than 11 are needed): the
        // mean of all.
        let mut s = vec![0.95f32; 11];
        s.push(0.5);
        assert!((confident(&s) - 0.9125).abs() < 1e-6, "{}", confident(&s));
        // More than 90% confident reals: their mean.
        let mut s = vec![0.1f32; 29];
        s.push(0.7);
        assert!((confident(&s) - 0.1).abs() < 1e-6);
        // Exactly 90% is not more than 90%.
        let mut s = vec![0.1f32; 9];
        s.push(0.7);
        assert!((confident(&s) - mean(&s)).abs() < 1e-6);
        assert_eq!(TrackAggregation::Max.apply(&[0.2, 0.7, 0.4]), 0.7);
    }

    #[test]
    fn two_faces_crossing_keep_their_tracks() {
        // Two faces walk towards each other 20 px a frame, cross (their
        // boxes overlap) and go on: the better overlap keeps each its own.
        let frames: Vec<Vec<FaceScore>> = (0..7)
            .map(|i| {
                let step = 20.0 * i as f32;
                vec![face(step), face(240.0 - step)]
            })
            .collect();
        let views: Vec<&[FaceScore]> = frames.iter().map(Vec::as_slice).collect();
        let tracks = link_tracks(&views, TRACK_IOU);
        assert_eq!(tracks.len(), 2, "{tracks:?}");
        for track in &tracks {
            assert_eq!(track.len(), 7);
            let xs: Vec<f32> = track.iter().map(|&(f, i)| frames[f][i].bbox[0]).collect();
            let monotone = xs.windows(2).all(|w| w[1] > w[0]) || xs.windows(2).all(|w| w[1] < w[0]);
            assert!(monotone, "a track jumped between faces: {xs:?}");
        }
    }

    #[test]
    fn a_face_that_leaves_and_another_that_appears_are_different_tracks() {
        let frames = [
            vec![face(0.0)],
            vec![],
            vec![face(400.0)],
            vec![face(405.0)],
        ];
        let views: Vec<&[FaceScore]> = frames.iter().map(Vec::as_slice).collect();
        let tracks = link_tracks(&views, TRACK_IOU);
        assert_eq!(tracks, vec![vec![(0, 0)], vec![(2, 0), (3, 0)]]);
    }

    fn frame(t: f64, faces: Vec<FaceScore>) -> FrameScore {
        FrameScore {
            t,
            prediction: None,
            faces: Some(faces),
            outcome: Outcome::Scored,
        }
    }

    fn with_fake(mut f: FaceScore, fake: f32) -> FaceScore {
        let labels = ["Real".to_string(), "Fake".to_string()];
        f.prediction = Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1);
        f
    }

    #[test]
    fn the_video_is_as_fake_as_its_most_fake_track() {
        let frames: Vec<FrameScore> = (0..4)
            .map(|i| {
                frame(
                    i as f64,
                    vec![
                        with_fake(face(0.0), 0.1),
                        with_fake(face(300.0), 0.6 + 0.1 * i as f32),
                    ],
                )
            })
            .collect();
        let v = VideoScore::from_frames(4.0, frames, TrackAggregation::Mean, 1, None);
        assert_eq!(v.outcome, Outcome::Scored);
        assert_eq!(v.tracks.len(), 2);
        assert_eq!(
            (v.tracks[1].frames, v.tracks[1].start_t, v.tracks[1].end_t),
            (4, 0.0, 3.0)
        );
        let p = v.prediction.unwrap();
        assert!((p.fake_score - 0.75).abs() < 1e-6, "{p:?}");
        assert!(
            (p.scores[0].1 - 0.25).abs() < 1e-6 && p.label == "Fake",
            "{p:?}"
        );
    }

    #[test]
    fn frames_without_faces_are_whole_images_or_no_face() {
        let labels = ["Real".to_string(), "Fake".to_string()];
        let whole = |t: f64, fake: f32| FrameScore {
            t,
            prediction: Some(Prediction::from_probabilities(
                &labels,
                &[1.0 - fake, fake],
                1,
            )),
            faces: Some(Vec::new()),
            outcome: Outcome::WholeImage,
        };
        let v = VideoScore::from_frames(
            2.0,
            vec![whole(0.0, 0.2), whole(1.0, 0.4)],
            TrackAggregation::Mean,
            1,
            None,
        );
        assert_eq!(v.outcome, Outcome::WholeImage);
        assert!((v.prediction.unwrap().fake_score - 0.3).abs() < 1e-6);
        let none = VideoScore::from_frames(
            2.0,
            vec![frame(0.0, Vec::new())],
            TrackAggregation::Mean,
            1,
            None,
        );
        assert_eq!((none.outcome, none.prediction), (Outcome::NoFace, None));
    }

    #[test]
    fn settings_are_checked_by_key() {
        VideoSettings::default().validate().unwrap();
        let bad = VideoSettings {
            frames: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("video.frames"));
        let bad = VideoSettings {
            fps: Some(f64::NAN),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("video.fps"));
        assert_eq!(
            "Confident".parse::<TrackAggregation>(),
            Ok(TrackAggregation::Confident)
        );
    }
}
