//! One image's score as every output (CLI, gRPC, callbacks) reports it.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// Which weights produced a score: the model's name and the sha256 of its
/// weight files, so a moderation decision can be traced to exact weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub name: String,
    pub sha256: String,
}

/// The classifier's verdict on one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Name of the most probable label.
    pub label: String,
    /// Every label with its softmax probability, in the model's label order.
    #[serde(serialize_with = "as_map")]
    pub scores: Vec<(String, f32)>,
    /// Probability of the label configured as "fake".
    pub fake_score: f32,
}

impl Prediction {
    /// Builds a prediction from per-label probabilities (in label order).
    /// Ties go to the lowest index, as `argmax` does in PyTorch.
    pub fn from_probabilities(labels: &[String], probs: &[f32], fake_index: usize) -> Self {
        assert_eq!(labels.len(), probs.len(), "one probability per label");
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |best, (i, p)| if *p > probs[best] { i } else { best });
        Self {
            label: labels[best].clone(),
            scores: labels.iter().cloned().zip(probs.iter().copied()).collect(),
            fake_score: probs[fake_index],
        }
    }
}

/// Softmax of one row of logits, accumulated in f64 so the result matches
/// PyTorch's fp32 softmax to within f32 rounding.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| (e / sum) as f32).collect()
}

fn as_map<S: Serializer>(scores: &[(String, f32)], s: S) -> Result<S::Ok, S::Error> {
    ScoreMap(scores).serialize(s)
}

/// Label → probability pairs serialized as a JSON object in label order.
pub struct ScoreMap<'a>(pub &'a [(String, f32)]);

impl Serialize for ScoreMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (label, p) in self.0 {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_and_fake_score() {
        let labels = vec!["Real".to_string(), "Fake".to_string()];
        let p = Prediction::from_probabilities(&labels, &[0.25, 0.75], 1);
        assert_eq!(p.label, "Fake");
        assert_eq!(p.fake_score, 0.75);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"label":"Fake","scores":{"Real":0.25,"Fake":0.75},"fake_score":0.75}"#
        );
    }

    #[test]
    fn softmax_is_stable_and_normalized() {
        let p = softmax(&[0.0, 0.0, 2f32.ln()]);
        assert!(
            (p[0] - 0.25).abs() < 1e-7 && (p[2] - 0.5).abs() < 1e-7,
            "{p:?}"
        );
        // Large logits must not overflow exp().
        assert_eq!(softmax(&[1000.0, 1000.0]), [0.5, 0.5]);
    }

    #[test]
    fn ties_go_to_the_first_label() {
        let labels = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            Prediction::from_probabilities(&labels, &[0.5, 0.5], 0).label,
            "a"
        );
    }
}
