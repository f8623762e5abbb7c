//! Face crops against Pillow 13: `crop` cuts what `Image.crop` cuts (zero
//! outside the image), byte for byte, and `face_square` is the square that
//! Python's rounding gives. References come from
//! `crop_reference.py`, run with the project's virtualenv.

use std::path::Path;
use std::process::Command;

use dfscan_imaging::{crop, face_square};
use image::RgbImage;
use serde_json::Value;

#[test]
fn crops_match_pillow_byte_for_byte() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (the reference virtualenv with Pillow)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crop_reference.py"))
        .arg(dir.path())
        .output()
        .expect("run crop_reference.py");
    assert!(
        out.status.success(),
        "crop_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let manifest: Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let dim = |key: &str| manifest[key].as_u64().unwrap() as u32;
    let img = RgbImage::from_raw(dim("width"), dim("height"), read("image.bin")).unwrap();
    let int4 = |v: &Value| -> [i64; 4] {
        let a: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        a.try_into().unwrap()
    };
    let cases = manifest["cases"].as_array().unwrap();
    let mut faces = 0;
    for case in cases {
        let region = int4(&case["region"]);
        if let Some(face) = case["face"].as_array() {
            let face: Vec<f32> = face.iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let ours = face_square(face.try_into().unwrap(), case["scale"].as_f64().unwrap());
            assert_eq!(ours, region, "face square of {case}");
            faces += 1;
        }
        let cut = crop(&img, region);
        let size = [&case["size"][0], &case["size"][1]].map(|v| v.as_u64().unwrap());
        assert_eq!(
            [u64::from(cut.width()), u64::from(cut.height())],
            size,
            "size of {case}"
        );
        assert!(
            cut.as_raw() == &read(case["file"].as_str().unwrap()),
            "pixels of {case}"
        );
    }
    assert_eq!((cases.len(), faces), (16, 6));
}
