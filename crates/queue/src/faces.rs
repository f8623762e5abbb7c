//! Faces between the API and dfscan's own types: a job's face options over
//! the workers' configuration ([`job_faces`], which the coordinator uses to
//! refuse a job no worker could honour and the worker to score it), and an
//! image's score into and out of the stored result ([`fill_result`],
//! [`image_score`]), so that every reader of results (the CLI, callbacks,
//! KServe) sees what the worker saw.

use dfscan_core::{
    FaceAggregation, FaceMode, FaceScore, FaceSettings, ImageScore, Outcome, Prediction,
};
use dfscan_proto::v1 as pb;

/// The settings a job's images get: `base` (the workers' configuration)
/// with the job's options over it, checked.
pub fn job_faces(
    base: &FaceSettings,
    job: Option<&pb::FaceOptions>,
) -> Result<FaceSettings, String> {
    let mut s = base.clone();
    if let Some(o) = job {
        if !o.mode.is_empty() {
            s.mode = o.mode.parse::<FaceMode>()?;
        }
        if !o.aggregation.is_empty() {
            s.aggregation = o.aggregation.parse::<FaceAggregation>()?;
        }
        if let Some(v) = o.scale {
            s.scale = f64::from(v);
        }
        if let Some(v) = o.align {
            s.align = v;
        }
        if let Some(v) = o.threshold {
            s.threshold = v;
        }
        if let Some(v) = o.min_size {
            s.min_size = v;
        }
        if let Some(v) = o.max_faces {
            s.max_faces = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(v) = o.working_size {
            s.working_size = v;
        }
    }
    s.validate()?;
    Ok(s)
}

pub(crate) fn scores(p: &Prediction) -> Vec<pb::LabelScore> {
    p.scores
        .iter()
        .map(|(label, score)| pb::LabelScore {
            label: label.clone(),
            score: *score,
        })
        .collect()
}

pub(crate) fn prediction(label: &str, scores: &[pb::LabelScore], fake_score: f32) -> Prediction {
    Prediction {
        label: label.to_string(),
        scores: scores.iter().map(|s| (s.label.clone(), s.score)).collect(),
        fake_score,
    }
}

/// Writes an image's score into its result: the image's prediction, its
/// faces and outcome, and the detector's identity when faces were looked
/// for.
pub fn fill_result(
    result: &mut pb::ItemResult,
    score: ImageScore,
    detector: Option<&pb::ModelIdentity>,
) {
    if let Some(p) = &score.prediction {
        result.label.clone_from(&p.label);
        result.scores = scores(p);
        result.fake_score = Some(p.fake_score);
    }
    result.outcome = score.outcome.name().to_string();
    if let Some(faces) = score.faces {
        result.face_detector = detector.cloned();
        result.faces = face_results(faces);
    }
}

/// Faces as the proto carries them.
pub(crate) fn face_results(faces: Vec<FaceScore>) -> Vec<pb::FaceResult> {
    faces
        .into_iter()
        .map(|f| pb::FaceResult {
            r#box: f.bbox.to_vec(),
            detector_score: f.detector_score,
            landmarks: f.landmarks.iter().flatten().copied().collect(),
            crop: f.crop.to_vec(),
            scores: scores(&f.prediction),
            label: f.prediction.label,
            fake_score: f.prediction.fake_score,
        })
        .collect()
}

/// Faces from the proto.
pub(crate) fn face_scores(faces: &[pb::FaceResult]) -> Vec<FaceScore> {
    faces
        .iter()
        .map(|f| FaceScore {
            bbox: array(&f.r#box),
            detector_score: f.detector_score,
            landmarks: {
                let flat: [f32; 10] = array(&f.landmarks);
                std::array::from_fn(|i| [flat[2 * i], flat[2 * i + 1]])
            },
            crop: array(&f.crop),
            prediction: prediction(&f.label, &f.scores, f.fake_score),
        })
        .collect()
}

/// An image's score from its stored result; `None` for an error. Results
/// stored before faces existed read as scored whole.
pub fn image_score(r: &pb::ItemResult) -> Option<ImageScore> {
    if !r.error.is_empty() {
        return None;
    }
    let outcome = Outcome::from_name(&r.outcome).unwrap_or(Outcome::Scored);
    if outcome == Outcome::Error {
        return None;
    }
    let faces = r.face_detector.as_ref().map(|_| face_scores(&r.faces));
    let scored = outcome != Outcome::NoFace;
    Some(ImageScore {
        prediction: scored
            .then(|| prediction(&r.label, &r.scores, r.fake_score.unwrap_or_default())),
        faces,
        outcome,
        explanation: None,
    })
}

/// A fixed-size array from a repeated field, zero-padded or cut (a result
/// written by another producer may hold any number of values).
fn array<T: Copy + Default, const N: usize>(values: &[T]) -> [T; N] {
    std::array::from_fn(|i| values.get(i).copied().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_options_override_the_workers_and_bad_ones_are_refused() {
        let base = FaceSettings::default();
        assert_eq!(job_faces(&base, None).unwrap(), base);
        let job = pb::FaceOptions {
            mode: "require".into(),
            max_faces: Some(3),
            aggregation: "mean".into(),
            ..Default::default()
        };
        let s = job_faces(&base, Some(&job)).unwrap();
        assert_eq!(
            (s.mode, s.max_faces, s.aggregation),
            (FaceMode::Require, 3, FaceAggregation::Mean)
        );
        assert_eq!(s.scale, base.scale);
        let bad = |o: pb::FaceOptions| job_faces(&base, Some(&o)).unwrap_err();
        assert!(bad(pb::FaceOptions {
            mode: "maybe".into(),
            ..Default::default()
        })
        .contains("face mode"));
        assert!(bad(pb::FaceOptions {
            max_faces: Some(u32::MAX),
            ..Default::default()
        })
        .contains("max_faces"));
        assert!(bad(pb::FaceOptions {
            scale: Some(f32::NAN),
            ..Default::default()
        })
        .contains("scale"));
        assert!(bad(pb::FaceOptions {
            working_size: Some(0),
            ..Default::default()
        })
        .contains("working_size"));
    }

    #[test]
    fn a_score_survives_the_stored_result() {
        let labels = ["Real".to_string(), "Fake".to_string()];
        let p = |fake: f32| Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1);
        let face = FaceScore {
            bbox: [1.5, 2.0, 30.0, 41.0],
            detector_score: 0.875,
            landmarks: [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
            crop: [-4, -3, 35, 36],
            prediction: p(0.75),
        };
        let detector = pb::ModelIdentity {
            name: "centerface".into(),
            sha256: "ab".into(),
        };
        for score in [
            ImageScore::from_faces(vec![face.clone()], None, FaceAggregation::Max, 1),
            ImageScore::from_faces(Vec::new(), Some(p(0.25)), FaceAggregation::Max, 1),
            ImageScore::from_faces(Vec::new(), None, FaceAggregation::Max, 1),
            ImageScore::whole(p(0.5)),
        ] {
            let mut stored = pb::ItemResult::default();
            fill_result(&mut stored, score.clone(), Some(&detector));
            assert_eq!(image_score(&stored).as_ref(), Some(&score));
            assert_eq!(stored.face_detector.is_some(), score.faces.is_some());
        }
        let old = pb::ItemResult {
            label: "Real".into(),
            fake_score: Some(0.1),
            ..Default::default()
        };
        assert_eq!(image_score(&old).unwrap().outcome, Outcome::Scored);
        let failed = pb::ItemResult {
            error: "bad".into(),
            ..Default::default()
        };
        assert!(image_score(&failed).is_none());
    }
}
