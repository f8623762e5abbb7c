//! Layered configuration: built-in defaults ← config file ← `DFSCAN_*`
//! environment ← command-line flags. Every knob is documented once, with its
//! default, in the README's configuration table.

use std::path::Path;

use config::{Config, Environment, File};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CoreError, DType, DeviceRequest};

/// The hub model scored when none is configured.
pub const DEFAULT_MODEL: &str = "prithivMLmods/Deep-Fake-Detector-Model";

/// How a model is found, placed and fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// Hugging Face hub id or local checkpoint directory.
    pub model: String,
    /// Hub revision (branch, tag or commit) when `model` is a hub id.
    pub revision: String,
    pub device: DeviceRequest,
    pub dtype: DType,
    /// Images per forward pass.
    pub batch_size: usize,
    /// libtorch intra-op threads on CPU; 0 = one per core.
    pub threads: usize,
    /// Image decoding threads; 0 = one per core.
    pub decode_threads: usize,
    /// Label whose probability is `fake_score`; default: the label named
    /// fake or deepfake (case-insensitive).
    pub fake_label: Option<String>,
    /// Replacement label names in class-index order, for checkpoints whose
    /// `id2label` is wrong.
    pub labels: Option<Vec<String>>,
    /// Largest encoded image accepted, in bytes.
    pub max_image_bytes: u64,
    /// Largest decoded image accepted, in pixels (width × height).
    pub max_image_pixels: u64,
    /// Most scans a JPEG may have (each progressive scan costs a pass over
    /// the whole image).
    pub max_jpeg_scans: u32,
    /// Longest a TIFF, WebP or BMP decode may run, in milliseconds (the
    /// other decoders' work is bounded by the file and pixel limits).
    pub max_decode_ms: u64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.to_string(),
            revision: "main".to_string(),
            device: DeviceRequest::Auto,
            dtype: DType::F32,
            batch_size: 32,
            threads: 0,
            decode_threads: 0,
            fake_label: None,
            labels: None,
            max_image_bytes: 64 << 20,
            // Pillow's MAX_IMAGE_PIXELS: the bound past which it warns of a
            // decompression bomb.
            max_image_pixels: 89_478_485,
            // libjpeg-turbo's own TJFLAG_LIMITSCANS value.
            max_jpeg_scans: 500,
            max_decode_ms: 10_000,
        }
    }
}

/// A secret from the configuration (a key, a token): never printed,
/// `Debug` shows its length only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// Loads settings of type `T` from the optional `file`, then `DFSCAN_*`
/// variables, then `overrides` (flag name → value, for the flags that were
/// given). Keys are the serde field names (`section.key` inside sections,
/// `DFSCAN_SECTION__KEY` in the environment); the list-valued keys
/// (`labels`, `coordinator.models`, `coordinator.callback_hosts`, `worker.uri_roots`) are comma-separated
/// in the environment.
pub fn load<T>(file: Option<&Path>, overrides: &[(&str, Option<String>)]) -> Result<T, CoreError>
where
    T: DeserializeOwned,
{
    let mut builder = Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(File::from(file));
    }
    builder = builder.add_source(
        Environment::with_prefix("DFSCAN")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("labels")
            .with_list_parse_key("coordinator.models")
            .with_list_parse_key("coordinator.callback_hosts")
            .with_list_parse_key("worker.uri_roots")
            .try_parsing(true),
    );
    for (key, value) in overrides {
        if let Some(value) = value {
            builder = builder.set_override(*key, value.as_str())?;
        }
    }
    Ok(builder.build()?.try_deserialize()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_in_the_readme_table() {
        let readme = include_str!("../../../README.md");
        let value = serde_json::to_value(ModelSettings::default()).unwrap();
        let missing: Vec<&String> = value
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !readme.contains(&format!("| `{k}` |")))
            .collect();
        assert!(missing.is_empty(), "keys missing from README: {missing:?}");
    }

    #[test]
    fn defaults_without_sources() {
        let s: ModelSettings = load(None, &[]).unwrap();
        assert_eq!(s.model, DEFAULT_MODEL);
        assert_eq!(s.batch_size, 32);
    }

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("dfscan-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dfscan.toml");
        std::fs::write(
            &file,
            "model = \"/models/vit\"\nbatch_size = 8\ndtype = \"bf16\"\nlabels = [\"Real\", \"Fake\"]\n",
        )
        .unwrap();
        let s: ModelSettings = load(
            Some(&file),
            &[("batch_size", Some("4".into())), ("device", None)],
        )
        .unwrap();
        assert_eq!(s.model, "/models/vit");
        assert_eq!(s.batch_size, 4);
        assert_eq!(s.dtype, DType::BF16);
        assert_eq!(s.device, DeviceRequest::Auto);
        assert_eq!(
            s.labels.as_deref(),
            Some(&["Real".to_string(), "Fake".to_string()][..])
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_values_are_errors() {
        let err = load::<ModelSettings>(None, &[("dtype", Some("int4".into()))]).unwrap_err();
        assert!(err.to_string().contains("int4"), "{err}");
    }
}
