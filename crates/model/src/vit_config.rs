//! `config.json` of a `ViTForImageClassification` checkpoint: the dimensions
//! the model is built from and the class names.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::error::{io_error, ModelError};

/// Activation between the two MLP projections, by its transformers name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact erf GELU (`gelu`).
    Gelu,
    /// tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    fn from_hf(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Self::GeluTanh),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: i64,
    num_hidden_layers: i64,
    num_attention_heads: i64,
    intermediate_size: i64,
    image_size: i64,
    patch_size: i64,
    #[serde(default = "three")]
    num_channels: i64,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "yes")]
    qkv_bias: bool,
    #[serde(default)]
    id2label: BTreeMap<String, String>,
}

fn three() -> i64 {
    3
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn yes() -> bool {
    true
}

/// Validated model dimensions and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    pub hidden_size: i64,
    pub num_layers: i64,
    pub num_heads: i64,
    pub intermediate_size: i64,
    pub image_size: i64,
    pub patch_size: i64,
    pub num_channels: i64,
    pub layer_norm_eps: f64,
    pub activation: Activation,
    pub qkv_bias: bool,
    /// Class names in class-index order.
    pub labels: Vec<String>,
}

impl VitConfig {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(io_error(path))?;
        Self::from_json(&text).map_err(|reason| ModelError::InvalidCheckpoint {
            path: path.to_path_buf(),
            reason,
        })
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(t) = raw.model_type.as_deref().filter(|t| *t != "vit") {
            return Err(format!("model_type is {t:?}, dfscan runs \"vit\" models"));
        }
        let positive = [
            ("hidden_size", raw.hidden_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("intermediate_size", raw.intermediate_size),
            ("image_size", raw.image_size),
            ("patch_size", raw.patch_size),
            ("num_channels", raw.num_channels),
        ];
        if let Some((name, v)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Err(format!("{name} must be positive, got {v}"));
        }
        if raw.hidden_size % raw.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            ));
        }
        if raw.image_size % raw.patch_size != 0 {
            return Err(format!(
                "image_size {} is not a multiple of patch_size {}",
                raw.image_size, raw.patch_size
            ));
        }
        let activation = Activation::from_hf(&raw.hidden_act)
            .ok_or_else(|| format!("unsupported hidden_act {:?}", raw.hidden_act))?;
        Ok(Self {
            hidden_size: raw.hidden_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            image_size: raw.image_size,
            patch_size: raw.patch_size,
            num_channels: raw.num_channels,
            layer_norm_eps: raw.layer_norm_eps,
            activation,
            qkv_bias: raw.qkv_bias,
            labels: labels_in_order(raw.id2label)?,
        })
    }

    /// Patches per image side.
    pub fn grid(&self) -> i64 {
        self.image_size / self.patch_size
    }
}

/// `id2label` keys are strings ("0", "1", ...) that must cover 0..n exactly.
fn labels_in_order(id2label: BTreeMap<String, String>) -> Result<Vec<String>, String> {
    if id2label.is_empty() {
        return Err("id2label is missing: the checkpoint has no classification head labels".into());
    }
    let mut labels = vec![None; id2label.len()];
    for (key, name) in id2label {
        let slot = key
            .parse::<usize>()
            .ok()
            .and_then(|i| labels.get_mut(i))
            .ok_or_else(|| {
                format!("id2label key {key:?} is not a class index below the label count")
            })?;
        *slot = Some(name);
    }
    labels
        .into_iter()
        .map(|l| l.ok_or_else(|| "id2label has gaps".to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{"model_type":"vit","hidden_size":768,"num_hidden_layers":12,
        "num_attention_heads":12,"intermediate_size":3072,"image_size":224,"patch_size":16,
        "id2label":{"1":"Real","0":"Fake"}}"#;

    #[test]
    fn parses_with_hf_defaults() {
        let c = VitConfig::from_json(BASE).unwrap();
        assert_eq!(c.labels, ["Fake", "Real"]);
        assert_eq!(c.grid(), 14);
        assert_eq!(c.num_channels, 3);
        assert_eq!(c.activation, Activation::Gelu);
        assert!(c.qkv_bias);
        assert_eq!(c.layer_norm_eps, 1e-12);
    }

    #[test]
    fn rejects_inconsistent_dimensions() {
        let bad = BASE.replace("\"num_attention_heads\":12", "\"num_attention_heads\":7");
        assert!(VitConfig::from_json(&bad).unwrap_err().contains("multiple"));
        let bad = BASE.replace("\"patch_size\":16", "\"patch_size\":15");
        assert!(VitConfig::from_json(&bad)
            .unwrap_err()
            .contains("patch_size"));
        let bad = BASE.replace("\"1\":\"Real\"", "\"2\":\"Real\"");
        assert!(VitConfig::from_json(&bad).unwrap_err().contains("id2label"));
        let bad = BASE.replace("\"model_type\":\"vit\"", "\"model_type\":\"bert\"");
        assert!(VitConfig::from_json(&bad).unwrap_err().contains("bert"));
    }
}
