//! The `[train]` section of the configuration: the model card's recipe
//! (AdamW at 1e-6, batch 32, cross-entropy, random rotation ±90°, random
//! sharpness, random resized crop) as defaults, every part adjustable.
//! Defined here, not in `dfscan-train`, so that processes built without
//! libtorch (the coordinator) know its keys and refuse misspelt ones in a
//! configuration file they share with `dfscan train`.

use serde::{Deserialize, Serialize};

use super::Section;

/// The checkpoint `dfscan train` starts from when none is given: the
/// backbone the model card fine-tunes.
pub const DEFAULT_BASE: &str = "google/vit-base-patch16-224-in21k";

/// How the learning rate moves after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Linear decay to zero at the last step (the transformers Trainer's default).
    Linear,
    /// Half-cosine decay to zero.
    Cosine,
    Constant,
}

/// Which validation number picks the best checkpoint and drives early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BestMetric {
    Accuracy,
    MacroF1,
    RocAuc,
    /// Validation cross-entropy (lower is better).
    Loss,
}

impl BestMetric {
    pub fn higher_is_better(self) -> bool {
        self != Self::Loss
    }
}

/// How classes are weighted in the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    /// Every sample counts the same.
    None,
    /// `n_samples / (n_classes · n_class)`, as scikit-learn's "balanced".
    Balanced,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    /// Hugging Face hub id or local checkpoint directory to start from:
    /// a backbone without a head, or a fine-tuned classifier.
    pub base: String,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per forward pass (training and evaluation).
    pub batch_size: usize,
    /// Forward passes whose gradients are summed before each optimizer step.
    pub grad_accum: usize,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay (not applied to biases and LayerNorms).
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    /// Optimizer steps of linear warmup from 0 to `lr`.
    pub warmup_steps: usize,
    pub schedule: Schedule,
    /// Gradients are rescaled to at most this global L2 norm; 0 disables.
    pub max_grad_norm: f64,
    /// Largest random rotation in degrees (uniform in ±this); 0 disables.
    pub rotation: f64,
    /// Probability of sharpening an image by `sharpness_factor`.
    pub sharpness_p: f64,
    /// PIL/torchvision sharpness factor (1 = unchanged, 2 = sharper).
    pub sharpness_factor: f64,
    /// Smallest area fraction a random resized crop keeps; 1 disables cropping.
    pub crop_scale: f64,
    /// Probability of a horizontal flip.
    pub hflip_p: f64,
    /// Turns every augmentation off at once.
    pub no_augment: bool,
    pub class_weights: ClassWeights,
    /// Cross-entropy label smoothing.
    pub label_smoothing: f64,
    /// Fraction of the training images held out for validation when the
    /// data has no `val` split; none or 0 = no validation. An option, so
    /// that a value given next to a `val` split is refused rather than
    /// silently unused.
    pub val_fraction: Option<f64>,
    pub best_metric: BestMetric,
    /// Stop after this many evaluations without improvement; 0 = never.
    pub patience: usize,
    /// Seeds the head's initialisation, the data order, the augmentations
    /// and the validation split.
    pub seed: u64,
    /// Save resumable state every this many optimizer steps (as well as at
    /// every epoch's end); 0 = epochs only.
    pub save_steps: usize,
    /// Log a progress line every this many optimizer steps when stderr is
    /// not a terminal.
    pub log_steps: usize,
}

impl Section for TrainSettings {
    const NAME: &'static str = "train";
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            base: DEFAULT_BASE.to_string(),
            epochs: 100,
            batch_size: 32,
            grad_accum: 1,
            lr: 1e-6,
            weight_decay: 0.01,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            warmup_steps: 0,
            schedule: Schedule::Linear,
            max_grad_norm: 1.0,
            rotation: 90.0,
            sharpness_p: 0.5,
            sharpness_factor: 2.0,
            crop_scale: 0.5,
            hflip_p: 0.0,
            no_augment: false,
            class_weights: ClassWeights::None,
            label_smoothing: 0.0,
            val_fraction: None,
            best_metric: BestMetric::Accuracy,
            patience: 5,
            seed: 42,
            save_steps: 0,
            log_steps: 50,
        }
    }
}

impl TrainSettings {
    /// Rejects values no training could run with.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str); 11] = [
            (self.epochs > 0, "epochs must be at least 1"),
            (self.batch_size > 0, "batch_size must be at least 1"),
            (self.grad_accum > 0, "grad_accum must be at least 1"),
            (self.lr > 0.0, "lr must be positive"),
            (
                self.weight_decay >= 0.0,
                "weight_decay must not be negative",
            ),
            (
                (0.0..1.0).contains(&self.adam_beta1) && (0.0..1.0).contains(&self.adam_beta2),
                "adam betas must be in [0, 1)",
            ),
            (
                (0.0..=1.0).contains(&self.sharpness_p) && (0.0..=1.0).contains(&self.hflip_p),
                "probabilities must be in [0, 1]",
            ),
            (
                self.crop_scale > 0.0 && self.crop_scale <= 1.0,
                "crop_scale must be in (0, 1]",
            ),
            (
                self.val_fraction.is_none_or(|f| (0.0..1.0).contains(&f)),
                "val_fraction must be in [0, 1)",
            ),
            (
                (0.0..1.0).contains(&self.label_smoothing),
                "label_smoothing must be in [0, 1)",
            ),
            (
                self.rotation >= 0.0 && self.sharpness_factor >= 0.0 && self.max_grad_norm >= 0.0,
                "rotation, sharpness_factor and max_grad_norm must not be negative",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(why.to_string()),
            None => Ok(()),
        }
    }

    /// The settings that change what training computes, so a resumed run
    /// can refuse to continue a different one. `epochs`, `patience` and the
    /// logging and saving cadence may change between runs.
    pub fn fingerprint(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("settings serialize");
        let map = value.as_object_mut().expect("an object");
        for key in ["epochs", "patience", "save_steps", "log_steps"] {
            map.remove(key);
        }
        // No hold-out, whether said with 0 or by leaving it out.
        map.insert(
            "val_fraction".into(),
            self.val_fraction.unwrap_or(0.0).into(),
        );
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_the_fingerprint_ignores_cadence() {
        let s = TrainSettings::default();
        s.validate().unwrap();
        let longer = TrainSettings {
            epochs: 3,
            patience: 0,
            save_steps: 10,
            log_steps: 1,
            ..s.clone()
        };
        assert_eq!(s.fingerprint(), longer.fingerprint());
        let other = TrainSettings {
            lr: 1e-4,
            ..s.clone()
        };
        assert_ne!(s.fingerprint(), other.fingerprint());
        let no_hold_out = TrainSettings {
            val_fraction: Some(0.0),
            ..s.clone()
        };
        assert_eq!(s.fingerprint(), no_hold_out.fingerprint());
        let bad = TrainSettings {
            crop_scale: 0.0,
            ..s
        };
        assert!(bad.validate().unwrap_err().contains("crop_scale"));
    }
}
