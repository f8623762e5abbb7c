//! A Hugging Face checkpoint directory: `config.json`,
//! `preprocessor_config.json` and safetensors weights, single-file or
//! sharded (`model.safetensors.index.json`). Weights are read once: the same
//! bytes are hashed (the model's identity) and turned into tensors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use dfscan_imaging::PreprocessorConfig;
use safetensors::SafeTensors;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tch::Tensor;

use crate::error::{io_error, ModelError};
use crate::vit_config::VitConfig;

pub const CONFIG_FILE: &str = "config.json";
pub const PREPROCESSOR_FILE: &str = "preprocessor_config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";

/// A checkpoint whose metadata has been read and validated; weights are
/// loaded later, on the model thread.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    /// Name reported in results: the hub id, or the directory's name.
    pub name: String,
    pub config: VitConfig,
    pub preprocessor: PreprocessorConfig,
    /// Weight files in load order.
    pub weight_files: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct WeightIndex {
    weight_map: HashMap<String, String>,
}

impl Checkpoint {
    pub fn open(dir: &Path, name: impl Into<String>) -> Result<Self, ModelError> {
        let invalid = |reason: String| ModelError::InvalidCheckpoint {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.is_dir() {
            return Err(invalid("not a directory".into()));
        }
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(invalid(format!(
                "not a checkpoint: it has no {CONFIG_FILE} (a Hugging Face \
                 ViTForImageClassification folder holds {CONFIG_FILE}, {PREPROCESSOR_FILE} \
                 and {WEIGHTS_FILE})"
            )));
        }
        let config = VitConfig::from_file(&config_path)?;
        let pre_path = dir.join(PREPROCESSOR_FILE);
        let pre_text = std::fs::read_to_string(&pre_path).map_err(io_error(&pre_path))?;
        let preprocessor = PreprocessorConfig::from_json(&pre_text)
            .map_err(|e| invalid(format!("{PREPROCESSOR_FILE}: {e}")))?;
        let weight_files = weight_files(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.into(),
            config,
            preprocessor,
            weight_files,
        })
    }
}

/// The safetensors files of the checkpoint in `dir`, in load order: the
/// single `model.safetensors`, or the shards its index names.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, ModelError> {
    let single = dir.join(WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    if !index_path.is_file() {
        return Err(ModelError::InvalidCheckpoint {
            path: dir.to_path_buf(),
            reason: format!("neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} is present (only safetensors weights are loaded)"),
        });
    }
    let text = std::fs::read_to_string(&index_path).map_err(io_error(&index_path))?;
    let shards = shard_names(&text).map_err(|reason| ModelError::InvalidCheckpoint {
        path: index_path.clone(),
        reason,
    })?;
    Ok(shards.into_iter().map(|s| dir.join(s)).collect())
}

/// The distinct shard files named by a `model.safetensors.index.json`.
pub(crate) fn shard_names(index_json: &str) -> Result<Vec<String>, String> {
    let index: WeightIndex = serde_json::from_str(index_json).map_err(|e| e.to_string())?;
    let shards: BTreeSet<String> = index.weight_map.into_values().collect();
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains("..") || s.starts_with('/'))
    {
        return Err(format!(
            "shard name {bad:?} leaves the checkpoint directory"
        ));
    }
    Ok(shards.into_iter().collect())
}

/// The names of the tensors in `files`, read from their headers only.
pub fn tensor_names(files: &[PathBuf]) -> Result<BTreeSet<String>, ModelError> {
    let mut names = BTreeSet::new();
    for file in files {
        let invalid = |reason: String| ModelError::InvalidCheckpoint {
            path: file.clone(),
            reason,
        };
        let mut f = std::fs::File::open(file).map_err(io_error(file))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(io_error(file))?;
        let len = u64::from_le_bytes(len);
        // safetensors caps the header at 100 MB.
        if len > 100_000_000 {
            return Err(invalid(format!("safetensors header of {len} bytes")));
        }
        let mut header = vec![0u8; len as usize];
        f.read_exact(&mut header).map_err(io_error(file))?;
        let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
            .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
        names.extend(header.into_keys().filter(|k| k != "__metadata__"));
    }
    Ok(names)
}

/// What loading the weights found besides the tensors themselves.
pub struct LoadedWeights {
    /// sha256 identifying the weights: of the file itself for a single file
    /// (the hub's LFS hash), else of the shards' hashes in name order.
    pub sha256: String,
    /// Checkpoint tensors the model has no variable for (a pooler, say).
    pub unused: Vec<String>,
}

/// Copies the checkpoint's tensors into the model's variables by name, one
/// file at a time and one tensor at a time, converting to the variables'
/// dtype and device on the way: memory holds the variables plus one file's
/// bytes, never a second copy of the model. The same bytes are hashed.
/// Every variable must be present with its exact shape.
pub fn load_weights(
    files: &[PathBuf],
    variables: &HashMap<String, Tensor>,
) -> Result<LoadedWeights, ModelError> {
    let _no_grad = tch::no_grad_guard();
    let mut missing: BTreeMap<&str, &Tensor> =
        variables.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut unused = Vec::new();
    let mut digests = Vec::with_capacity(files.len());
    for file in files {
        let invalid = |reason: String| ModelError::InvalidCheckpoint {
            path: file.clone(),
            reason,
        };
        let bytes = std::fs::read(file).map_err(io_error(file))?;
        digests.push(hex(&Sha256::digest(&bytes)));
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| invalid(format!("not a safetensors file: {e}")))?;
        let mut tensors = st.tensors();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in tensors {
            let Some(var) = missing.remove(name.as_str()) else {
                unused.push(name);
                continue;
            };
            let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if found != var.size() {
                return Err(ModelError::ShapeMismatch {
                    name,
                    expected: var.size(),
                    found,
                });
            }
            let src =
                Tensor::try_from(view).map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
            var.shallow_clone().f_copy_(&src)?;
        }
    }
    if let Some((name, var)) = missing.pop_first() {
        return Err(ModelError::MissingTensor {
            name: name.to_string(),
            expected: var.size(),
        });
    }
    unused.sort();
    let sha256 = match digests.as_slice() {
        [one] => one.clone(),
        many => hex(&Sha256::digest(many.concat().as_bytes())),
    };
    Ok(LoadedWeights { sha256, unused })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
