//! One image's rows: the whole image (faces off, or none found in mode
//! `auto`), or each face's crop (the square of `scale` × the box, as
//! `PIL.Image.crop` cuts it, or the aligned face), each through the
//! classifier's own preprocessing; and the image's score from its rows'
//! predictions. Videos reuse it for every sampled frame.

use dfscan_core::{FaceMode, FaceScore, FaceSettings, ImageScore, Prediction};
use dfscan_imaging::{
    align_face, aligned_region, crop, face_square, pixel_values_into, CropRegion, RgbImage,
};

use super::Analysis;
use crate::faces::{self, Face};

/// What an image's rows are.
#[derive(Debug, Clone)]
pub enum ImagePlan {
    /// One row: the whole image, faces not looked for.
    Whole,
    /// One row per face, then, with `whole`, one for the whole image (no
    /// face found in mode `auto`).
    Faces {
        faces: Vec<(Face, CropRegion)>,
        whole: bool,
        settings: FaceSettings,
    },
}

impl ImagePlan {
    pub fn rows(&self) -> usize {
        match self {
            Self::Whole => 1,
            Self::Faces { faces, whole, .. } => faces.len() + usize::from(*whole),
        }
    }

    /// The image's score from its rows' predictions (as many as its rows).
    pub(super) fn score(
        self,
        rows: Vec<Prediction>,
        fake_index: usize,
    ) -> Result<ImageScore, String> {
        let mut rows = rows.into_iter();
        match self {
            Self::Whole => rows
                .next()
                .map(ImageScore::whole)
                .ok_or_else(|| "inference failed: no prediction for the image".to_string()),
            Self::Faces {
                faces,
                whole,
                settings,
            } => {
                let scored: Vec<FaceScore> = faces
                    .into_iter()
                    .zip(rows.by_ref())
                    .map(|((face, crop), prediction)| FaceScore {
                        bbox: face.bbox,
                        detector_score: face.score,
                        landmarks: face.landmarks,
                        crop,
                        prediction,
                    })
                    .collect();
                let whole = if whole { rows.next() } else { None };
                Ok(ImageScore::from_faces(
                    scored,
                    whole,
                    settings.aggregation,
                    fake_index,
                ))
            }
        }
    }
}

/// Appends the image's rows to `pixels` and says what they are.
pub(super) fn prepare(
    analysis: &Analysis,
    image: &RgbImage,
    faces: &FaceSettings,
    pixels: &mut Vec<f32>,
) -> Result<ImagePlan, String> {
    if faces.mode == FaceMode::Off {
        push_row(analysis, image, pixels);
        return Ok(ImagePlan::Whole);
    }
    let found = find_faces(analysis, image, faces)?;
    let mut rows = Vec::with_capacity(found.len());
    for face in found {
        let (region, cut) = cut(analysis, image, &face, faces);
        push_row(analysis, &cut, pixels);
        rows.push((face, region));
    }
    let whole = rows.is_empty() && faces.mode == FaceMode::Auto;
    if whole {
        push_row(analysis, image, pixels);
    }
    Ok(ImagePlan::Faces {
        faces: rows,
        whole,
        settings: faces.clone(),
    })
}

fn push_row(analysis: &Analysis, image: &RgbImage, pixels: &mut Vec<f32>) {
    let info = analysis.info();
    let at = pixels.len();
    pixels.resize(at + info.pixels_per_image(), 0.0);
    pixel_values_into(image, &info.preprocessor, &mut pixels[at..]);
}

fn find_faces(
    analysis: &Analysis,
    image: &RgbImage,
    settings: &FaceSettings,
) -> Result<Vec<Face>, String> {
    settings.validate()?;
    let input = faces::prepare(image, settings);
    let geometry = faces::Geometry::of(&input);
    let maps = analysis
        .engine()
        .detect_blocking(input)
        .map_err(|e| format!("face detection failed: {e}"))?;
    Ok(faces::faces(&geometry, &maps, settings))
}

/// The face's crop as the classifier sees it, and the region reported for
/// it.
fn cut(
    analysis: &Analysis,
    image: &RgbImage,
    face: &Face,
    settings: &FaceSettings,
) -> (CropRegion, RgbImage) {
    if settings.align {
        let size = analysis.info().input_shape[1] as u32;
        let aligned = align_face(image, &face.landmarks, size, settings.scale);
        if let (Some(cut), Some(region)) = (
            aligned,
            aligned_region(&face.landmarks, size, settings.scale),
        ) {
            return (region, cut);
        }
        // Landmarks that define no transform: the square crop instead.
    }
    let region = face_square(face.bbox, settings.scale);
    (region, crop(image, region))
}
