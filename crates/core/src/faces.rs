//! Faces: how an image is turned into the face crops its classifier was
//! trained on ([`FaceSettings`], config section `faces`, env
//! `DFSCAN_FACES__*`, and per job through the API), and what an image's
//! result says about its faces ([`ImageScore`], [`FaceScore`],
//! [`Outcome`]), with the one rule that makes an image's score from its
//! faces' ([`FaceAggregation`]). Here, not in the model crate, because the
//! coordinator (no libtorch) and the clients read and check the same
//! options and records.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::explain::Explanation;
use crate::settings::Section;
use crate::Prediction;

/// Whether faces are looked for, and what an image without one gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaceMode {
    /// Score each face found; an image without one is scored whole, and
    /// its outcome says so (`whole_image`).
    #[default]
    Auto,
    /// Score each face found; an image without one gets the outcome
    /// `no_face` and no score.
    Require,
    /// Score the whole image, as the classifier's own pipeline does.
    Off,
}

/// How an image's score comes from its faces' scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaceAggregation {
    /// The most fake face's prediction: one manipulated face makes the
    /// image as fake as that face (what a moderator needs to see).
    #[default]
    Max,
    /// Each label's probability averaged over the faces.
    Mean,
}

crate::names::named_values!(FaceMode, "face mode", Auto => "auto", Require => "require", Off => "off");
crate::names::named_values!(FaceAggregation, "face aggregation", Max => "max", Mean => "mean");

/// The detector's working sizes accepted: from one network cell block to a
/// bound on its activations' memory (a 2048² input needs about 2 GB in f32).
pub const WORKING_SIZES: RangeInclusive<u32> = 32..=2048;

/// The most faces an image may be asked to have scored: each is one row of
/// a classifier batch.
pub const MAX_FACES_LIMIT: usize = 64;

/// Crop scales accepted: from the box itself to four times its size.
pub const FACE_SCALES: RangeInclusive<f64> = 1.0..=4.0;

/// Which faces are found and how they are cut and combined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaceSettings {
    pub mode: FaceMode,
    /// A converted detector's directory (`graph.json`, `model.safetensors`);
    /// none: the one setup converts, under the dfscan cache.
    pub detector: Option<PathBuf>,
    /// The crop is the square of this many times the box's longer side,
    /// around its centre (FaceForensics++ and DeepfakeBench: 1.3).
    pub scale: f64,
    /// Cut an aligned crop (five-point similarity, DeepfakeBench's
    /// template) instead of the axis-aligned square.
    pub align: bool,
    /// A face's centre must score above this (CenterFace's own 0.5).
    pub threshold: f32,
    /// Faces whose longer side is under this many pixels of the image are
    /// dropped: below 20 px a face holds too little for the classifier.
    pub min_size: f32,
    /// At most this many faces per image are scored, the largest.
    pub max_faces: usize,
    /// The detector sees the image with its longer side at most this many
    /// pixels; larger finds smaller faces at a cost growing with its square.
    pub working_size: u32,
    pub aggregation: FaceAggregation,
}

impl Section for FaceSettings {
    const NAME: &'static str = "faces";
}

impl Default for FaceSettings {
    fn default() -> Self {
        Self {
            mode: FaceMode::Auto,
            detector: None,
            scale: 1.3,
            align: false,
            threshold: 0.5,
            min_size: 20.0,
            max_faces: 16,
            working_size: 640,
            aggregation: FaceAggregation::Max,
        }
    }
}

impl FaceSettings {
    /// Refuses settings no detection can honour; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.threshold) {
            return Err(format!(
                "faces.threshold must be in [0, 1), got {}",
                self.threshold
            ));
        }
        if !(self.min_size.is_finite() && self.min_size >= 0.0) {
            return Err(format!(
                "faces.min_size must be a number of pixels, at least 0, got {}",
                self.min_size
            ));
        }
        if !(1..=MAX_FACES_LIMIT).contains(&self.max_faces) {
            return Err(format!(
                "faces.max_faces must be 1 to {MAX_FACES_LIMIT}, got {}",
                self.max_faces
            ));
        }
        if !WORKING_SIZES.contains(&self.working_size) {
            return Err(format!(
                "faces.working_size must be {} to {} pixels, got {}",
                WORKING_SIZES.start(),
                WORKING_SIZES.end(),
                self.working_size
            ));
        }
        if !FACE_SCALES.contains(&self.scale) {
            return Err(format!(
                "faces.scale must be {} to {}, got {}",
                FACE_SCALES.start(),
                FACE_SCALES.end(),
                self.scale
            ));
        }
        Ok(())
    }
}

/// What became of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Scored: from its faces, or whole with faces off.
    Scored,
    /// No face was found (mode `auto`): the whole image was scored.
    WholeImage,
    /// No face was found (mode `require`): no score.
    NoFace,
    /// The item could not be scored; its error says why.
    Error,
}

impl Outcome {
    pub const NAMES: &'static [&'static str] = &["scored", "whole_image", "no_face", "error"];

    pub fn name(self) -> &'static str {
        match self {
            Self::Scored => "scored",
            Self::WholeImage => "whole_image",
            Self::NoFace => "no_face",
            Self::Error => "error",
        }
    }

    /// The outcome of a name from [`Outcome::NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "scored" => Self::Scored,
            "whole_image" => Self::WholeImage,
            "no_face" => Self::NoFace,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// One scored face. Coordinates are pixels of the EXIF-oriented image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceScore {
    /// `[x0, y0, x1, y1]` as the detector found it.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub detector_score: f32,
    /// Left eye, right eye, nose, left and right mouth corner, `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
    /// `[left, top, right, bottom]`: exactly the region handed to the
    /// classifier, as `PIL.Image.crop` cuts it (zero outside the image);
    /// with alignment, the bounding square of the aligned crop.
    pub crop: [i64; 4],
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// An image's result: its score (none for `no_face`), its faces when they
/// were looked for, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageScore {
    pub prediction: Option<Prediction>,
    /// `None` with faces off; empty when none was found.
    pub faces: Option<Vec<FaceScore>>,
    pub outcome: Outcome,
    /// Where the classifier saw it, when asked for.
    pub explanation: Option<Explanation>,
}

impl ImageScore {
    /// The whole image scored, faces not looked for.
    pub fn whole(prediction: Prediction) -> Self {
        Self {
            prediction: Some(prediction),
            faces: None,
            outcome: Outcome::Scored,
            explanation: None,
        }
    }

    /// An image whose faces were looked for: scored from `faces` by
    /// `aggregation`, or, with none, from `whole` (the whole image scored,
    /// mode `auto`) or not at all (mode `require`).
    pub fn from_faces(
        faces: Vec<FaceScore>,
        whole: Option<Prediction>,
        aggregation: FaceAggregation,
        fake_index: usize,
    ) -> Self {
        if faces.is_empty() {
            let outcome = if whole.is_some() {
                Outcome::WholeImage
            } else {
                Outcome::NoFace
            };
            return Self {
                prediction: whole,
                faces: Some(faces),
                outcome,
                explanation: None,
            };
        }
        let prediction = aggregate(&faces, aggregation, fake_index);
        Self {
            prediction: Some(prediction),
            faces: Some(faces),
            outcome: Outcome::Scored,
            explanation: None,
        }
    }
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes, as
/// CenterFace's `nms` computes it: NaN for two empty boxes (which then
/// overlap nothing, as in numpy's comparisons).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / (area(a) + area(b) - inter)
}

/// An image's prediction from its faces' (at least one).
pub fn aggregate(
    faces: &[FaceScore],
    aggregation: FaceAggregation,
    fake_index: usize,
) -> Prediction {
    match aggregation {
        // Ties go to the first (largest) face.
        FaceAggregation::Max => faces
            .iter()
            .fold(&faces[0], |best, f| {
                if f.prediction.fake_score > best.prediction.fake_score {
                    f
                } else {
                    best
                }
            })
            .prediction
            .clone(),
        FaceAggregation::Mean => {
            let first = &faces[0].prediction.scores;
            let labels: Vec<String> = first.iter().map(|(l, _)| l.clone()).collect();
            let means: Vec<f32> = (0..labels.len())
                .map(|i| {
                    let sum: f64 = faces
                        .iter()
                        .map(|f| f64::from(f.prediction.scores[i].1))
                        .sum();
                    (sum / faces.len() as f64) as f32
                })
                .collect();
            Prediction::from_probabilities(&labels, &means, fake_index)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(fake: f32) -> FaceScore {
        let labels = ["Real".to_string(), "Fake".to_string()];
        FaceScore {
            bbox: [1.0, 2.0, 30.0, 40.0],
            detector_score: 0.9,
            landmarks: [[5.0, 6.0]; 5],
            crop: [-3, -4, 35, 34],
            prediction: Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1),
        }
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for name in FaceMode::NAMES {
            assert_eq!(name.parse::<FaceMode>().unwrap().name(), *name);
        }
        for name in FaceAggregation::NAMES {
            assert_eq!(name.parse::<FaceAggregation>().unwrap().name(), *name);
        }
        for name in Outcome::NAMES {
            assert_eq!(Outcome::from_name(name).unwrap().name(), *name);
        }
        let e = "sometimes".parse::<FaceMode>().unwrap_err();
        assert!(e.contains("auto, require, off"), "{e}");
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused_by_key() {
        FaceSettings::default().validate().unwrap();
        let with = |f: fn(&mut FaceSettings)| {
            let mut s = FaceSettings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(with(|s| s.threshold = 1.0).contains("faces.threshold"));
        assert!(with(|s| s.threshold = f32::NAN).contains("faces.threshold"));
        assert!(with(|s| s.min_size = -1.0).contains("faces.min_size"));
        assert!(with(|s| s.max_faces = 0).contains("faces.max_faces"));
        assert!(with(|s| s.max_faces = 1000).contains("faces.max_faces"));
        assert!(with(|s| s.working_size = 16).contains("faces.working_size"));
        assert!(with(|s| s.scale = f64::NAN).contains("faces.scale"));
        assert!(with(|s| s.scale = 0.5).contains("faces.scale"));
    }

    #[test]
    fn a_face_serializes_in_the_documented_shape() {
        let json = serde_json::to_value(face(0.75)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "box": [1.0, 2.0, 30.0, 40.0], "detector_score": 0.9f32,
                "landmarks": [[5.0, 6.0], [5.0, 6.0], [5.0, 6.0], [5.0, 6.0], [5.0, 6.0]],
                "crop": [-3, -4, 35, 34],
                "label": "Fake", "scores": {"Real": 0.25, "Fake": 0.75}, "fake_score": 0.75
            })
        );
    }

    #[test]
    fn the_image_takes_the_most_fake_face_or_the_mean() {
        let faces = vec![face(0.25), face(0.75), face(0.5)];
        let max = ImageScore::from_faces(faces.clone(), None, FaceAggregation::Max, 1);
        assert_eq!(max.outcome, Outcome::Scored);
        assert_eq!(max.prediction.unwrap().fake_score, 0.75);
        let mean = ImageScore::from_faces(faces, None, FaceAggregation::Mean, 1);
        let p = mean.prediction.unwrap();
        assert!(
            (p.fake_score - 0.5).abs() < 1e-6 && p.label == "Real",
            "{p:?}"
        );
    }

    #[test]
    fn no_face_is_whole_image_in_auto_and_unscored_in_require() {
        let whole = face(0.5).prediction;
        let auto = ImageScore::from_faces(Vec::new(), Some(whole), FaceAggregation::Max, 1);
        assert_eq!(auto.outcome, Outcome::WholeImage);
        assert!(auto.prediction.is_some());
        let require = ImageScore::from_faces(Vec::new(), None, FaceAggregation::Max, 1);
        assert_eq!(require.outcome, Outcome::NoFace);
        assert!(require.prediction.is_none() && require.faces == Some(Vec::new()));
    }
}
