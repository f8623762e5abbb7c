//! The flags every model-running subcommand shares, and `--batch-size` of
//! those that score in their own process (a worker's batch is
//! `worker.max_batch`). Each one is optional so that an absent flag leaves
//! the config file or environment value in force.

use std::path::{Path, PathBuf};

use clap::Args;
use dfscan_core::settings::ModelSettings;
use dfscan_core::video::VideoSettings;
use dfscan_core::FaceSettings;
use dfscan_process::settings::{self, FlagKeys};
use serde::{Deserialize, Serialize};

#[derive(Args, Debug, Default, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct ModelArgs {
    /// Hugging Face hub id or local checkpoint directory
    #[arg(long)]
    model: Option<String>,
    #[command(flatten)]
    #[serde(skip)]
    runtime: RuntimeArgs,
    #[command(flatten)]
    #[serde(skip)]
    faces: FaceArgs,
    #[command(flatten)]
    #[serde(skip)]
    video: VideoArgs,
    /// auto (the default: bf16 on CUDA, on CPU the faster of f32 and bf16 here), f32, bf16 or f16
    #[arg(long)]
    dtype: Option<String>,
    /// Comma-separated label names in class order, replacing the checkpoint's id2label
    #[arg(long)]
    labels: Option<String>,
    /// Largest image file accepted, in bytes
    #[arg(long)]
    max_image_bytes: Option<u64>,
    /// Largest decoded image accepted, in pixels
    #[arg(long)]
    max_image_pixels: Option<u64>,
}

impl ModelArgs {
    const KEYS: FlagKeys = &[
        ("model", "model"),
        ("dtype", "dtype"),
        ("labels", "labels"),
        ("max_image_bytes", "max_image_bytes"),
        ("max_image_pixels", "max_image_pixels"),
    ];

    /// The flags given, as (settings key, value) overrides.
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        let mut overrides = settings::flag_overrides(self, Self::KEYS);
        overrides.extend(self.runtime.overrides());
        overrides.extend(settings::flag_overrides(&self.faces, FaceArgs::KEYS));
        overrides.extend(settings::flag_overrides(&self.video, VideoArgs::KEYS));
        overrides
    }

    /// List-valued flags, which the key/value overrides cannot carry.
    pub fn apply_lists(&self, settings: &mut ModelSettings) {
        if let Some(labels) = &self.labels {
            settings.labels = Some(labels.split(',').map(|l| l.trim().to_string()).collect());
        }
    }
}

/// The flags of `score` and `eval`, which batch the images themselves.
#[derive(Args, Debug, Default, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct LocalModelArgs {
    #[command(flatten)]
    #[serde(skip)]
    model: ModelArgs,
    /// Images per forward pass
    #[arg(long)]
    batch_size: Option<usize>,
}

impl LocalModelArgs {
    const KEYS: FlagKeys = &[("batch_size", "batch_size")];

    /// Settings from defaults ← `config` file ← `DFSCAN_*` ← these flags:
    /// the model's, the faces' and the videos'.
    pub fn settings(&self, config: Option<&Path>) -> anyhow::Result<LocalSettings> {
        let mut overrides = self.model.overrides();
        overrides.extend(settings::flag_overrides(self, Self::KEYS));
        let mut model: ModelSettings = settings::load(config, &overrides)?;
        self.model.apply_lists(&mut model);
        let sections: Sections = settings::load(config, &overrides)?;
        Ok(LocalSettings {
            model,
            faces: sections.faces,
            video: sections.video,
        })
    }
}

/// What `score` and `eval` run with.
pub struct LocalSettings {
    pub model: ModelSettings,
    pub faces: FaceSettings,
    pub video: VideoSettings,
}

/// The `faces` and `video` sections, as [`settings::load`] reads sections.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Sections {
    faces: FaceSettings,
    video: VideoSettings,
}

/// How videos are sampled (section `video`), for every subcommand that runs
/// the model.
#[derive(Args, Debug, Default, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct VideoArgs {
    /// Frames sampled from each video, evenly spaced over its duration
    #[arg(long)]
    frames: Option<u32>,
    /// Sample this many frames per second instead of --frames
    #[arg(long)]
    fps: Option<f64>,
    /// Take the keyframe before each sample time (fast) instead of the exact frame
    #[arg(long)]
    keyframes_only: bool,
    /// How a face track's score comes from its faces': confident (the DFDC winner's), mean or max
    #[arg(long)]
    track_aggregation: Option<String>,
}

impl VideoArgs {
    const KEYS: FlagKeys = &[
        ("frames", "video.frames"),
        ("fps", "video.fps"),
        ("keyframes_only", "video.keyframes_only"),
        ("track_aggregation", "video.track_aggregation"),
    ];
}

/// How faces are found, cut and combined (section `faces`), for every
/// subcommand that runs the model.
#[derive(Args, Debug, Default, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct FaceArgs {
    /// auto (score each face; none: the whole image), require (none: outcome no_face) or off (the whole image)
    #[arg(long = "faces", value_name = "MODE")]
    faces: Option<String>,
    /// A converted face detector's directory; none: the one setup converts
    #[arg(long, value_name = "DIR")]
    face_detector: Option<PathBuf>,
    /// Crop side as a multiple of the face box's longer side
    #[arg(long)]
    face_scale: Option<f64>,
    /// Five-point aligned crops instead of squares
    #[arg(long)]
    align: bool,
    /// Detector score a face must pass
    #[arg(long)]
    face_threshold: Option<f32>,
    /// Faces with a longer side under this many pixels are dropped
    #[arg(long)]
    min_face_size: Option<f32>,
    /// Most faces scored per image, the largest
    #[arg(long)]
    max_faces: Option<usize>,
    /// Longest side of the image as the detector sees it, in pixels
    #[arg(long)]
    face_working_size: Option<u32>,
    /// How an image's score comes from its faces': max (the most fake face) or mean
    #[arg(long)]
    face_aggregation: Option<String>,
}

impl FaceArgs {
    const KEYS: FlagKeys = &[
        ("faces", "faces.mode"),
        ("face_detector", "faces.detector"),
        ("face_scale", "faces.scale"),
        ("align", "faces.align"),
        ("face_threshold", "faces.threshold"),
        ("min_face_size", "faces.min_size"),
        ("max_faces", "faces.max_faces"),
        ("face_working_size", "faces.working_size"),
        ("face_aggregation", "faces.aggregation"),
    ];
}

/// Where a model comes from and runs, shared by scoring and training.
#[derive(Args, Debug, Default, Serialize)]
#[command(mut_args(settings::show_defaults(Self::KEYS)))]
pub struct RuntimeArgs {
    /// Hub revision (branch, tag or commit)
    #[arg(long)]
    revision: Option<String>,
    /// cpu, cuda, cuda:N or auto (CUDA when present)
    #[arg(long)]
    device: Option<String>,
    /// libtorch threads, 0 = one per core
    #[arg(long)]
    threads: Option<usize>,
    /// Image decoding threads, 0 = one per core
    #[arg(long)]
    decode_threads: Option<usize>,
    /// Label whose probability is fake_score; none: the label named fake or deepfake
    #[arg(long)]
    fake_label: Option<String>,
}

impl RuntimeArgs {
    const KEYS: FlagKeys = &[
        ("revision", "revision"),
        ("device", "device"),
        ("threads", "threads"),
        ("decode_threads", "decode_threads"),
        ("fake_label", "fake_label"),
    ];

    /// The flags given, as (settings key, value) overrides.
    pub fn overrides(&self) -> Vec<(&'static str, Option<String>)> {
        settings::flag_overrides(self, Self::KEYS)
    }
}
