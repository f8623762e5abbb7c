//! The classifier being trained: built from a base checkpoint, a backbone
//! without a head (`ViTModel` weights, as `google/vit-base-patch16-224-in21k`
//! publishes them: no `vit.` prefix, a pooler, no `id2label`) or a
//! fine-tuned `ViTForImageClassification`; and written back as a complete
//! Hugging Face checkpoint that transformers and `dfscan score` load.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use dfscan_imaging::PreprocessorConfig;
use dfscan_model::checkpoint::{
    load_weights, tensor_names, weight_files, CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE,
};
use dfscan_model::vit::VitClassifier;
use dfscan_model::vit_config::VitConfig;
use safetensors::tensor::{Dtype, View};
use serde_json::{json, Map, Value};
use tch::{nn, Device, Kind, Tensor};

use crate::error::{io_error, TrainError};

/// What the base's head became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// The base had the data's labels: its head goes on training.
    Kept,
    /// A new head, initialised like transformers does (normal, std
    /// `initializer_range`; zero bias); `replaced` names the base's labels
    /// when it had a head for other ones.
    New { replaced: Option<Vec<String>> },
}

pub struct Classifier {
    pub vars: nn::VarStore,
    pub model: VitClassifier,
    /// Class names in class-index order.
    pub labels: Vec<String>,
    pub preprocessor: PreprocessorConfig,
    pub head: Head,
    /// The base's config.json (every field kept for the output's).
    raw_config: Map<String, Value>,
    preprocessor_json: String,
}

impl Classifier {
    /// Loads the base checkpoint in `dir` on `device` (float32) for labels
    /// `data_labels`. `seed` initialises a new head.
    pub fn from_base(
        dir: &Path,
        data_labels: &[String],
        device: Device,
        seed: u64,
    ) -> Result<Self, TrainError> {
        let invalid = |reason: String| {
            TrainError::Model(dfscan_model::ModelError::InvalidCheckpoint {
                path: dir.to_path_buf(),
                reason,
            })
        };
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(io_error(&config_path))?;
        let raw_config: Map<String, Value> =
            serde_json::from_str(&text).map_err(|e| invalid(format!("{CONFIG_FILE}: {e}")))?;
        let pre_path = dir.join(PREPROCESSOR_FILE);
        let preprocessor_json = match std::fs::read_to_string(&pre_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(dir = %dir.display(), "no {PREPROCESSOR_FILE}: using ViTImageProcessor's defaults (224×224, mean 0.5, std 0.5)");
                default_preprocessor_json()
            }
            Err(e) => return Err(io_error(&pre_path)(e)),
        };
        let preprocessor = PreprocessorConfig::from_json(&preprocessor_json)
            .map_err(|e| invalid(format!("{PREPROCESSOR_FILE}: {e}")))?;

        let files = weight_files(dir)?;
        let names = tensor_names(&files)?;
        // A backbone saved on its own has no `vit.` prefix.
        let prefix = if names.contains("vit.embeddings.cls_token") {
            "vit."
        } else if names.contains("embeddings.cls_token") {
            ""
        } else {
            return Err(invalid("no ViT embeddings (vit.embeddings.cls_token or embeddings.cls_token) among the weights".into()));
        };
        let base_labels = if names.contains("classifier.weight") {
            Some(config_labels(&raw_config))
        } else {
            None
        };
        let (labels, head) = match base_labels {
            Some(Some(base)) if same_labels(&base, data_labels) => (base, Head::Kept),
            Some(base) => (
                data_labels.to_vec(),
                Head::New {
                    replaced: Some(base.unwrap_or_default()),
                },
            ),
            None => (data_labels.to_vec(), Head::New { replaced: None }),
        };

        let mut config = raw_config.clone();
        set_labels(&mut config, &labels);
        let vit_config =
            VitConfig::from_json(&Value::Object(config).to_string()).map_err(invalid)?;
        let vars = nn::VarStore::new(device);
        let model = VitClassifier::new(&vars.root(), &vit_config);
        let to_load: HashMap<String, Tensor> = vars
            .variables()
            .into_iter()
            .filter(|(name, _)| head == Head::Kept || !name.starts_with("classifier."))
            .map(|(name, var)| {
                let key = match name.strip_prefix("vit.") {
                    Some(rest) => format!("{prefix}{rest}"),
                    None => name,
                };
                (key, var)
            })
            .collect();
        let loaded = load_weights(&files, &to_load)?;
        if !loaded.unused.is_empty() {
            tracing::info!(tensors = %loaded.unused.join(", "), "base tensors the classifier does not use");
        }
        if head != Head::Kept {
            let std = raw_config
                .get("initializer_range")
                .and_then(Value::as_f64)
                .unwrap_or(0.02);
            tch::manual_seed(seed as i64);
            let _no_grad = tch::no_grad_guard();
            let vars_map = vars.variables();
            let weight = &vars_map["classifier.weight"];
            weight.shallow_clone().copy_(&(weight.randn_like() * std));
            let _ = vars_map["classifier.bias"].shallow_clone().zero_();
        }
        Ok(Self {
            vars,
            model,
            labels,
            preprocessor,
            head,
            raw_config,
            preprocessor_json,
        })
    }

    /// Writes a complete Hugging Face checkpoint (config.json with the
    /// labels, model.safetensors in float32, preprocessor_config.json) into
    /// the existing directory `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let mut config = self.raw_config.clone();
        set_labels(&mut config, &self.labels);
        config.remove("_name_or_path");
        config.insert("architectures".into(), json!(["ViTForImageClassification"]));
        config.insert("problem_type".into(), json!("single_label_classification"));
        let text = serde_json::to_string_pretty(&config).expect("json");
        write(&dir.join(CONFIG_FILE), text.as_bytes())?;
        write(
            &dir.join(PREPROCESSOR_FILE),
            self.preprocessor_json.as_bytes(),
        )?;
        let mut named: Vec<(String, Tensor)> = self.vars.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        write_safetensors(&dir.join(WEIGHTS_FILE), named)
    }
}

/// The config's `id2label` in index order, if it has a complete one.
fn config_labels(config: &Map<String, Value>) -> Option<Vec<String>> {
    let id2label = config.get("id2label")?.as_object()?;
    (0..id2label.len())
        .map(|i| id2label.get(&i.to_string())?.as_str().map(str::to_string))
        .collect()
}

fn same_labels(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

fn set_labels(config: &mut Map<String, Value>, labels: &[String]) {
    let id2label: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    let label2id: Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    config.insert("id2label".into(), Value::Object(id2label));
    config.insert("label2id".into(), Value::Object(label2id));
}

fn default_preprocessor_json() -> String {
    serde_json::to_string_pretty(&json!({
        "do_normalize": true,
        "do_rescale": true,
        "do_resize": true,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1.0 / 255.0,
        "size": {"height": 224, "width": 224}
    }))
    .expect("json")
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::write(path, bytes).map_err(io_error(path))
}

/// A float32 tensor copied to host memory, as safetensors serialises it.
struct HostTensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &HostTensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes float32 copies of `tensors` with the `{"format": "pt"}` metadata
/// transformers checks for.
pub fn write_safetensors(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<(), TrainError> {
    let host: Vec<(String, HostTensor)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = t
                .detach()
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .contiguous();
            let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            let shape = t.size().iter().map(|&d| d as usize).collect();
            Ok((name, HostTensor { shape, bytes }))
        })
        .collect::<Result<_, TrainError>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::tensor::serialize_to_file(
        host.iter().map(|(n, t)| (n.as_str(), t)),
        &metadata,
        path,
    )
    .map_err(|e| TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Tensors of a safetensors file, by name.
pub fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    Ok(Tensor::read_safetensors(path)?.into_iter().collect())
}
