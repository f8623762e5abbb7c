//! What one item's result is: an image's or a video's, the one type every
//! output (JSON Lines, CSV, the proto, callbacks) writes from.

use crate::faces::{ImageScore, Outcome};
use crate::video::VideoScore;
use crate::Prediction;

#[derive(Debug, Clone, PartialEq)]
pub enum ItemScore {
    Image(ImageScore),
    Video(VideoScore),
}

impl ItemScore {
    /// The item's own score: none for `no_face`.
    pub fn prediction(&self) -> Option<&Prediction> {
        match self {
            Self::Image(s) => s.prediction.as_ref(),
            Self::Video(s) => s.prediction.as_ref(),
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Image(s) => s.outcome,
            Self::Video(s) => s.outcome,
        }
    }

    /// `image` or `video`, as results name it.
    pub fn media(&self) -> &'static str {
        match self {
            Self::Image(_) => "image",
            Self::Video(_) => "video",
        }
    }
}
