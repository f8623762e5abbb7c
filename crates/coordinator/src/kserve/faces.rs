//! Faces over the Open Inference Protocol: the request `parameters` that
//! set a call's face options, named as `dfscan submit`'s flags (dashes as
//! underscores) and checked as a job's are, and the `FACES` output, one
//! JSON document per item saying what the worker found. Each face in it
//! is `dfscan_core::FaceScore` serialized, and a video's timeline
//! `dfscan_core::video::Timeline`, the one shape every result record
//! gives them.

use std::collections::HashMap;

use dfscan_core::video::Timeline;
use dfscan_core::{FaceAggregation, FaceMode, FaceScore, FaceSettings, ItemScore, ModelIdentity};
use dfscan_proto::inference::infer_parameter::ParameterChoice;
use dfscan_proto::inference::InferParameter;
use dfscan_proto::v1 as pb;
use serde::Serialize;

use crate::error::shown;

/// The face parameters a request may give, as README's KServe section
/// lists them.
const PARAMETERS: &[&str] = &[
    "faces",
    "face_scale",
    "align",
    "face_threshold",
    "min_face_size",
    "max_faces",
    "face_working_size",
    "face_aggregation",
];

/// The job's face options from the request's parameters: `None` when it
/// gives none (the workers' configuration then holds), refused when one
/// has the wrong type or a value no worker could honour. Parameters that
/// are not about faces belong to the protocol (tritonclient's `priority`,
/// `timeout`, `sequence_*`) and are left alone; an unknown one that names
/// faces is refused, since a misspelt option would otherwise score the
/// call silently with the workers' settings.
pub(super) fn face_options(
    parameters: &HashMap<String, InferParameter>,
) -> Result<Option<pb::FaceOptions>, String> {
    let mut given: Vec<(&str, Option<&ParameterChoice>)> = parameters
        .iter()
        .filter(|(name, _)| PARAMETERS.contains(&name.as_str()) || names_faces(name))
        .map(|(name, p)| (name.as_str(), p.parameter_choice.as_ref()))
        .collect();
    if given.is_empty() {
        return Ok(None);
    }
    // The map has no order: the first problem by name is the one reported.
    given.sort_unstable_by_key(|(name, _)| *name);
    let mut options = pb::FaceOptions::default();
    for (name, value) in given {
        match name {
            "faces" => options.mode = word(name, value, FaceMode::NAMES)?,
            "face_scale" => options.scale = Some(number(name, value)?),
            "align" => options.align = Some(boolean(name, value)?),
            "face_threshold" => options.threshold = Some(number(name, value)?),
            "min_face_size" => options.min_size = Some(number(name, value)?),
            "max_faces" => options.max_faces = Some(integer(name, value)?),
            "face_working_size" => options.working_size = Some(integer(name, value)?),
            "face_aggregation" => {
                options.aggregation = word(name, value, FaceAggregation::NAMES)?;
            }
            other => {
                return Err(format!(
                    "unknown parameter {}; the face parameters are {}",
                    shown(other),
                    PARAMETERS.join(", ")
                ))
            }
        }
    }
    // The call's values must hold whatever the workers' own are, as a
    // submitted job's must.
    dfscan_queue::faces::job_faces(&FaceSettings::default(), Some(&options))
        .map_err(|e| format!("face parameters: {e}"))?;
    Ok(Some(options))
}

/// Whether a parameter's name says "face" in any case, without allocating
/// for each of a request's parameters.
fn names_faces(name: &str) -> bool {
    name.as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"face"))
}

fn kind(value: Option<&ParameterChoice>) -> &'static str {
    match value {
        None => "no value",
        Some(ParameterChoice::BoolParam(_)) => "a bool",
        Some(ParameterChoice::Int64Param(_) | ParameterChoice::Uint64Param(_)) => "an integer",
        Some(ParameterChoice::StringParam(_)) => "a string",
        Some(ParameterChoice::DoubleParam(_)) => "a double",
    }
}

/// A string naming one of `names` (its spelling is checked with the rest
/// of the options).
fn word(name: &str, value: Option<&ParameterChoice>, names: &[&str]) -> Result<String, String> {
    match value {
        Some(ParameterChoice::StringParam(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!(
            "parameter {name} must be a string, one of {}; got {}",
            names.join(", "),
            match value {
                Some(ParameterChoice::StringParam(_)) => "an empty string",
                other => kind(other),
            }
        )),
    }
}

fn number(name: &str, value: Option<&ParameterChoice>) -> Result<f32, String> {
    match value {
        Some(ParameterChoice::DoubleParam(v)) => Ok(*v as f32),
        Some(ParameterChoice::Int64Param(v)) => Ok(*v as f32),
        Some(ParameterChoice::Uint64Param(v)) => Ok(*v as f32),
        other => Err(format!(
            "parameter {name} must be a number; got {}",
            kind(other)
        )),
    }
}

fn integer(name: &str, value: Option<&ParameterChoice>) -> Result<u32, String> {
    let out_of_range = |v: &dyn std::fmt::Display| {
        format!(
            "parameter {name} must be an integer from 0 to {}; got {v}",
            u32::MAX
        )
    };
    match value {
        Some(ParameterChoice::Int64Param(v)) => u32::try_from(*v).map_err(|_| out_of_range(v)),
        Some(ParameterChoice::Uint64Param(v)) => u32::try_from(*v).map_err(|_| out_of_range(v)),
        other => Err(format!(
            "parameter {name} must be an integer; got {}",
            kind(other)
        )),
    }
}

fn boolean(name: &str, value: Option<&ParameterChoice>) -> Result<bool, String> {
    match value {
        Some(ParameterChoice::BoolParam(v)) => Ok(*v),
        other => Err(format!(
            "parameter {name} must be a bool; got {}",
            kind(other)
        )),
    }
}

/// One item's `FACES` element: an image's faces, or a video's timeline
/// with the keys its JSON line gives it.
#[derive(Serialize)]
struct FacesDocument<'a> {
    media: &'static str,
    outcome: &'static str,
    /// `None` (null) when faces were not looked for.
    face_detector: Option<ModelIdentity>,
    /// An image's, largest first; empty when none was found or faces were
    /// not looked for. None for a video, whose faces are its frames'.
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<&'a [FaceScore]>,
    /// A video's `duration_s`, `frames`, `tracks` and `partial`.
    #[serde(flatten)]
    timeline: Option<Timeline<'a>>,
}

/// The `FACES` document of an item: `score` as read from its result,
/// `detector` the result's face detector.
pub(super) fn document(score: &ItemScore, detector: Option<&pb::ModelIdentity>) -> String {
    let (faces, timeline, looked) = match score {
        ItemScore::Image(image) => (
            Some(image.faces.as_deref().unwrap_or_default()),
            None,
            image.faces.is_some(),
        ),
        ItemScore::Video(video) => (
            None,
            Some(video.timeline()),
            video.frames.iter().any(|f| f.faces.is_some()),
        ),
    };
    let document = FacesDocument {
        media: score.media(),
        outcome: score.outcome().name(),
        face_detector: detector.filter(|_| looked).map(|d| ModelIdentity {
            name: d.name.clone(),
            sha256: d.sha256.clone(),
        }),
        faces,
        timeline,
    };
    // Strings, numbers and string-keyed maps: nothing serde_json refuses
    // (a NaN would become null).
    serde_json::to_string(&document).expect("a FACES document serializes")
}

#[cfg(test)]
mod tests {
    use dfscan_core::video::{FrameScore, TrackAggregation, VideoScore};
    use dfscan_core::{ImageScore, Outcome, Prediction};

    use super::*;

    fn parameters(entries: &[(&str, ParameterChoice)]) -> HashMap<String, InferParameter> {
        entries
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    InferParameter {
                        parameter_choice: Some(value.clone()),
                    },
                )
            })
            .collect()
    }

    use ParameterChoice::{BoolParam, DoubleParam, Int64Param, StringParam, Uint64Param};

    #[test]
    fn face_parameters_become_the_jobs_options() {
        assert_eq!(face_options(&HashMap::new()).unwrap(), None);
        // The protocol's own parameters are not ours.
        let protocol = parameters(&[("priority", Uint64Param(1)), ("timeout", Int64Param(5))]);
        assert_eq!(face_options(&protocol).unwrap(), None);
        let all = parameters(&[
            ("faces", StringParam("require".into())),
            ("face_scale", DoubleParam(1.5)),
            ("align", BoolParam(true)),
            ("face_threshold", DoubleParam(0.25)),
            ("min_face_size", Int64Param(30)),
            ("max_faces", Int64Param(3)),
            ("face_working_size", Uint64Param(320)),
            ("face_aggregation", StringParam("mean".into())),
            ("priority", Uint64Param(1)),
        ]);
        assert_eq!(
            face_options(&all).unwrap(),
            Some(pb::FaceOptions {
                mode: "require".into(),
                scale: Some(1.5),
                align: Some(true),
                threshold: Some(0.25),
                min_size: Some(30.0),
                max_faces: Some(3),
                working_size: Some(320),
                aggregation: "mean".into(),
            })
        );
    }

    #[test]
    fn bad_face_parameters_are_refused_by_name() {
        let refused =
            |entries: &[(&str, ParameterChoice)]| face_options(&parameters(entries)).unwrap_err();
        let cases = [
            (
                refused(&[("faces", StringParam("sometimes".into()))]),
                "unknown face mode \"sometimes\": expected one of auto, require, off",
            ),
            (
                refused(&[("faces", StringParam(String::new()))]),
                "parameter faces must be a string, one of auto, require, off; got an empty string",
            ),
            (
                refused(&[("faces", BoolParam(false))]),
                "parameter faces must be a string, one of auto, require, off; got a bool",
            ),
            (
                refused(&[("face_aggregation", StringParam("median".into()))]),
                "unknown face aggregation",
            ),
            (
                refused(&[("max_faces", Int64Param(0))]),
                "face parameters: faces.max_faces must be 1 to 64, got 0",
            ),
            (
                refused(&[("max_faces", Int64Param(-1))]),
                "parameter max_faces must be an integer from 0 to 4294967295; got -1",
            ),
            (
                refused(&[("max_faces", DoubleParam(3.0))]),
                "parameter max_faces must be an integer; got a double",
            ),
            (
                refused(&[("face_scale", DoubleParam(f64::NAN))]),
                "faces.scale must be 1 to 4",
            ),
            (
                refused(&[("face_scale", StringParam("big".into()))]),
                "parameter face_scale must be a number; got a string",
            ),
            (
                refused(&[("align", Int64Param(1))]),
                "parameter align must be a bool; got an integer",
            ),
            (
                refused(&[("face_working_size", Int64Param(4096))]),
                "faces.working_size must be 32 to 2048",
            ),
            (
                refused(&[("Face", StringParam("off".into()))]),
                "unknown parameter \"Face\"; the face parameters are faces, face_scale",
            ),
            // Of two problems, the first by name.
            (
                refused(&[
                    ("max_faces", Int64Param(-1)),
                    ("face_scale", BoolParam(true)),
                ]),
                "parameter face_scale",
            ),
        ];
        for (error, expected) in cases {
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        let empty = HashMap::from([("faces".to_string(), InferParameter::default())]);
        assert!(face_options(&empty).unwrap_err().contains("got no value"));
    }

    fn prediction(fake: f32) -> Prediction {
        let labels = ["Real".to_string(), "Fake".to_string()];
        Prediction::from_probabilities(&labels, &[1.0 - fake, fake], 1)
    }

    fn detector() -> pb::ModelIdentity {
        pb::ModelIdentity {
            name: "centerface".into(),
            sha256: "ab".into(),
        }
    }

    fn face() -> FaceScore {
        FaceScore {
            bbox: [1.5, 2.0, 30.0, 41.0],
            detector_score: 0.875,
            landmarks: [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
            crop: [-4, -3, 35, 36],
            prediction: prediction(0.75),
        }
    }

    #[test]
    fn documents_say_what_became_of_the_image() {
        let detector = detector();
        let face = face();
        let image = |s: ImageScore| document(&ItemScore::Image(s), Some(&detector));
        let scored = ImageScore::from_faces(vec![face.clone()], None, FaceAggregation::Max, 1);
        let parsed: serde_json::Value = serde_json::from_str(&image(scored)).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "media": "image",
                "outcome": "scored",
                "face_detector": {"name": "centerface", "sha256": "ab"},
                "faces": [serde_json::to_value(&face).unwrap()],
            })
        );
        let no_face = ImageScore::from_faces(Vec::new(), None, FaceAggregation::Max, 1);
        assert_eq!(no_face.outcome, Outcome::NoFace);
        assert_eq!(
            image(no_face),
            r#"{"media":"image","outcome":"no_face","face_detector":{"name":"centerface","sha256":"ab"},"faces":[]}"#
        );
        // Faces not looked for: no detector is named.
        assert_eq!(
            image(ImageScore::whole(prediction(0.5))),
            r#"{"media":"image","outcome":"scored","face_detector":null,"faces":[]}"#
        );
    }

    #[test]
    fn a_videos_document_is_its_timeline() {
        let detector = detector();
        let face = face();
        let frames = [0.25, 0.75]
            .map(|t| FrameScore {
                t,
                prediction: Some(prediction(0.5)),
                faces: Some(vec![face.clone()]),
                outcome: Outcome::Scored,
            })
            .to_vec();
        let video = VideoScore::from_frames(1.0, frames, TrackAggregation::Mean, 1, None);
        let parsed: serde_json::Value =
            serde_json::from_str(&document(&ItemScore::Video(video.clone()), Some(&detector)))
                .unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "media": "video",
                "outcome": "scored",
                "face_detector": {"name": "centerface", "sha256": "ab"},
                "duration_s": 1.0,
                "frames": serde_json::to_value(&video.frames).unwrap(),
                "tracks": [{"id": 0, "frames": 2, "start_t": 0.25, "end_t": 0.75, "fake_score": 0.75}],
            })
        );
        assert!(
            parsed["frames"][1]["faces"][0]["box"].is_array(),
            "{parsed}"
        );
        // Cut short: partial says why; faces off: no detector.
        let whole = VideoScore::from_frames(
            1.0,
            vec![FrameScore {
                t: 0.25,
                prediction: Some(prediction(0.5)),
                faces: None,
                outcome: Outcome::Scored,
            }],
            TrackAggregation::Mean,
            1,
            Some("1 of 2 frames".into()),
        );
        let parsed: serde_json::Value =
            serde_json::from_str(&document(&ItemScore::Video(whole), Some(&detector))).unwrap();
        assert_eq!(parsed["partial"], "1 of 2 frames");
        assert!(parsed["face_detector"].is_null(), "{parsed}");
        assert!(parsed.get("faces").is_none(), "{parsed}");
    }
}
