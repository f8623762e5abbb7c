//! Explanations: where in an input the classifier saw what it scored, as
//! a map over the model's patch grid that a moderator can lay over the
//! picture. What is asked for ([`ExplainRequest`]: the method and whose
//! logit is explained) and what comes back ([`Explanation`]) live here,
//! not in the model crate, because jobs, the coordinator and the clients
//! read and write the same options and records.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

/// How a map is computed from a ViT's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExplainMethod {
    /// Chefer, Gur & Wolf (ICCV 2021), the self-attention rule: each
    /// layer's attention weighted by the target logit's gradient, positive
    /// part, averaged over heads and accumulated through the layers. Class
    /// specific; costs a backward pass.
    #[default]
    Relevance,
    /// Abnar & Zuidema (2020): each layer's head-averaged attention mixed
    /// half and half with the identity (the residual), multiplied through
    /// the layers. Class agnostic; a forward pass.
    Rollout,
}

/// Whose logit `relevance` explains (`rollout` ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExplainTarget {
    /// The fake label's: why would this be fake?
    #[default]
    Fake,
    /// The predicted label's: why did the model say what it said?
    Predicted,
}

crate::names::named_values!(ExplainMethod, "explanation method", Relevance => "relevance", Rollout => "rollout");
crate::names::named_values!(ExplainTarget, "explanation target", Fake => "fake", Predicted => "predicted");

/// What an item's explanation is asked to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExplainRequest {
    pub method: ExplainMethod,
    pub target: ExplainTarget,
}

/// One map over the patch grid, row-major, normalised to [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub side: usize,
    pub values: Vec<f32>,
}

impl Grid {
    /// The map of raw relevances `raw` (`side`² of them), min–max
    /// normalised as Chefer's and Abnar's code show them: all zeros when
    /// every patch is equally relevant. `None` when `raw` is not square.
    pub fn normalised(side: usize, raw: &[f32]) -> Option<Self> {
        if side == 0 || raw.len() != side * side {
            return None;
        }
        let lo = raw.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = raw.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = hi - lo;
        let values = if span > 0.0 && span.is_finite() {
            raw.iter().map(|v| (v - lo) / span).collect()
        } else {
            vec![0.0; raw.len()]
        };
        Some(Self { side, values })
    }
}

/// A grid is written as its rows: `[[...], ...]`.
impl Serialize for Grid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut rows = s.serialize_seq(Some(self.side))?;
        for row in self.values.chunks(self.side.max(1)) {
            rows.serialize_element(row)?;
        }
        rows.end()
    }
}

/// One classifier row's map: the whole image or one face's crop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowMap {
    /// The label whose logit was explained (`rollout`: the row's
    /// predicted label, which it does not depend on).
    pub target: String,
    pub grid: Grid,
}

/// An image's explanation: the map of the row that gave the image its
/// score (the whole image, or its most fake face), each face's own map in
/// the order of the result's `faces`, and where the picture of it went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub method: ExplainMethod,
    #[serde(flatten)]
    pub decisive: RowMap,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faces: Vec<RowMap>,
    /// The overlay PNG's path, once written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub png: Option<String>,
    /// The overlay itself, a PNG file: the image with the maps over it and
    /// the face boxes drawn (empty if it could not be encoded). The CLI
    /// writes it to `png`; results sent over the API carry the bytes.
    #[serde(skip)]
    pub png_bytes: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_spans_zero_to_one_and_a_flat_map_is_zero() {
        let g = Grid::normalised(2, &[2.0, 4.0, 3.0, 6.0]).unwrap();
        assert_eq!(g.values, vec![0.0, 0.5, 0.25, 1.0]);
        assert_eq!(Grid::normalised(2, &[1.0; 4]).unwrap().values, vec![0.0; 4]);
        assert!(Grid::normalised(2, &[1.0; 3]).is_none());
        assert_eq!(serde_json::to_string(&g).unwrap(), "[[0.0,0.5],[0.25,1.0]]");
    }

    #[test]
    fn names_parse_as_flags_write_them() {
        assert_eq!(
            "Rollout".parse::<ExplainMethod>(),
            Ok(ExplainMethod::Rollout)
        );
        assert_eq!(
            "predicted".parse::<ExplainTarget>(),
            Ok(ExplainTarget::Predicted)
        );
        assert!("gradcam".parse::<ExplainMethod>().is_err());
    }
}
