//! An item's score into and out of its stored result, images and videos
//! alike ([`fill_result`], [`item_score`]); images' own fields are
//! `crate::faces`'s. A result stored before videos existed reads as an
//! image.

use dfscan_core::video::{FrameScore, TrackScore, VideoScore};
use dfscan_core::{ItemScore, Outcome};
use dfscan_proto::v1 as pb;

use crate::faces::{self, face_results, face_scores, prediction, scores};

/// Writes an item's score into its result; `detector` is the face
/// detector's identity, recorded where faces were looked for.
pub fn fill_result(
    result: &mut pb::ItemResult,
    score: ItemScore,
    detector: Option<&pb::ModelIdentity>,
) {
    result.media = score.media().to_string();
    let video = match score {
        ItemScore::Image(image) => return faces::fill_result(result, image, detector),
        ItemScore::Video(video) => video,
    };
    if let Some(p) = &video.prediction {
        result.label.clone_from(&p.label);
        result.scores = scores(p);
        result.fake_score = Some(p.fake_score);
    }
    result.outcome = video.outcome.name().to_string();
    if video.frames.iter().any(|f| f.faces.is_some()) {
        result.face_detector = detector.cloned();
    }
    result.duration_s = video.duration_s;
    result.partial = video.partial.unwrap_or_default();
    result.frames = video
        .frames
        .into_iter()
        .map(|f| pb::FrameResult {
            t: f.t,
            label: f
                .prediction
                .as_ref()
                .map(|p| p.label.clone())
                .unwrap_or_default(),
            scores: f.prediction.as_ref().map(scores).unwrap_or_default(),
            fake_score: f.prediction.as_ref().map(|p| p.fake_score),
            faces: face_results(f.faces.unwrap_or_default()),
            outcome: f.outcome.name().to_string(),
        })
        .collect();
    result.tracks = video
        .tracks
        .into_iter()
        .map(|t| pb::TrackResult {
            id: u32::try_from(t.id).unwrap_or(u32::MAX),
            frames: u32::try_from(t.frames).unwrap_or(u32::MAX),
            start_t: t.start_t,
            end_t: t.end_t,
            fake_score: t.fake_score,
        })
        .collect();
}

/// An item's score from its stored result; `None` for an error.
pub fn item_score(r: &pb::ItemResult) -> Option<ItemScore> {
    if r.media != "video" {
        return faces::image_score(r).map(ItemScore::Image);
    }
    if !r.error.is_empty() {
        return None;
    }
    let outcome = Outcome::from_name(&r.outcome).unwrap_or(Outcome::Scored);
    let looked = r.face_detector.is_some();
    let frames = r
        .frames
        .iter()
        .map(|f| FrameScore {
            t: f.t,
            prediction: f
                .fake_score
                .map(|fake| prediction(&f.label, &f.scores, fake)),
            faces: looked.then(|| face_scores(&f.faces)),
            outcome: Outcome::from_name(&f.outcome).unwrap_or(Outcome::Scored),
        })
        .collect();
    let tracks = r
        .tracks
        .iter()
        .map(|t| TrackScore {
            id: t.id as usize,
            frames: t.frames as usize,
            start_t: t.start_t,
            end_t: t.end_t,
            fake_score: t.fake_score,
        })
        .collect();
    Some(ItemScore::Video(VideoScore {
        duration_s: r.duration_s,
        frames,
        tracks,
        prediction: (outcome != Outcome::NoFace)
            .then(|| prediction(&r.label, &r.scores, r.fake_score.unwrap_or_default())),
        outcome,
        partial: Some(r.partial.clone()).filter(|p| !p.is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use dfscan_core::video::TrackAggregation;
    use dfscan_core::{FaceScore, ImageScore, Prediction};

    use super::*;

    #[test]
    fn a_video_survives_the_stored_result() {
        let labels = ["Real".to_string(), "Fake".to_string()];
        let p = |fake: f32| Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1);
        let face = |x: f32, fake: f32| FaceScore {
            bbox: [x, 2.0, x + 30.0, 41.0],
            detector_score: 0.875,
            landmarks: [[1.0, 2.0]; 5],
            crop: [-4, -3, 35, 36],
            prediction: p(fake),
        };
        let frames = (0..3)
            .map(|i| FrameScore {
                t: 0.5 + i as f64,
                prediction: Some(p(0.25)),
                faces: Some(vec![face(1.0, 0.25 + 0.125 * i as f32)]),
                outcome: Outcome::Scored,
            })
            .collect();
        let video = VideoScore::from_frames(
            3.0,
            frames,
            TrackAggregation::Mean,
            1,
            Some("2 of 3".into()),
        );
        let detector = pb::ModelIdentity {
            name: "centerface".into(),
            sha256: "ab".into(),
        };
        for score in [
            ItemScore::Video(video),
            ItemScore::Image(ImageScore::whole(p(0.5))),
        ] {
            let mut stored = pb::ItemResult::default();
            fill_result(&mut stored, score.clone(), Some(&detector));
            assert_eq!(item_score(&stored).as_ref(), Some(&score));
        }
    }
}
