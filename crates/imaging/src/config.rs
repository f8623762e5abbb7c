//! `preprocessor_config.json` as transformers' `ViTImageProcessor` reads it.
//!
//! Only the fields that change the pixels are kept. Absent or `null` fields
//! take the class defaults of transformers 5.24 `ViTImageProcessorPil`, so a
//! config saved by any transformers version gives the same tensor here as in
//! Python. Settings that would make Python do something this crate does not
//! reproduce (center crop, aspect-preserving sizes) are rejected instead of
//! being silently ignored.

use serde::Deserialize;

use crate::error::ImagingError;
use crate::resample::Resample;

/// The pixel-relevant part of a Hugging Face `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct PreprocessorConfig {
    /// Always true once parsed: `from_json` rejects `do_resize: false`
    /// because a batch needs one fixed input size.
    pub do_resize: bool,
    /// Target height in pixels.
    pub height: u32,
    /// Target width in pixels.
    pub width: u32,
    /// Filter used by `PIL.Image.resize`.
    pub resample: Resample,
    /// Multiply by `rescale_factor` (in float64, then cast to float32).
    pub do_rescale: bool,
    /// Usually `1/255`.
    pub rescale_factor: f64,
    /// Apply `(x - mean) / std` per channel in float32.
    pub do_normalize: bool,
    /// Per-channel mean, R, G, B.
    pub image_mean: [f64; 3],
    /// Per-channel standard deviation, R, G, B.
    pub image_std: [f64; 3],
    /// When true, the processor's `convert_to_rgb` runs on the already-RGB
    /// image and paints pixels matching a `transparency` colour key white
    /// (see [`crate::Decoded::transparency`]). transformers leaves it `None`
    /// (= off) unless the config sets it.
    pub do_convert_rgb: bool,
}

impl Default for PreprocessorConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            height: 224,
            width: 224,
            resample: Resample::Bilinear,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_convert_rgb: false,
        }
    }
}

impl PreprocessorConfig {
    /// Parses the JSON text of a `preprocessor_config.json`.
    pub fn from_json(text: &str) -> Result<Self, ImagingError> {
        serde_json::from_str(text).map_err(|e| ImagingError::InvalidConfig(e.to_string()))
    }

    /// `(height, width)` of every preprocessed image.
    pub fn output_size(&self) -> (u32, u32) {
        (self.height, self.width)
    }

    /// Number of `f32` values one image occupies: `3 * height * width`.
    pub fn pixel_values_len(&self) -> usize {
        3 * self.height as usize * self.width as usize
    }
}

/// Mirrors the JSON with every field optional, so `null` and absence both
/// mean "class default", as in transformers' `_set_attributes`.
#[derive(Deserialize)]
struct RawConfig {
    do_resize: Option<bool>,
    size: Option<SizeSpec>,
    resample: Option<i64>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<ChannelSpec>,
    image_std: Option<ChannelSpec>,
    do_convert_rgb: Option<bool>,
    do_center_crop: Option<bool>,
}

/// `size` may be an int (square, as `get_size_dict(default_to_square=True)`
/// makes it), a `[height, width]` pair, or a dict.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "size as an integer, [height, width] or {\"height\": H, \"width\": W}"
)]
enum SizeSpec {
    Square(u32),
    Pair(Vec<u32>),
    Dict(SizeDict),
}

#[derive(Deserialize)]
struct SizeDict {
    height: Option<u32>,
    width: Option<u32>,
    shortest_edge: Option<u32>,
    longest_edge: Option<u32>,
    max_height: Option<u32>,
    max_width: Option<u32>,
}

/// `image_mean` / `image_std` may be one number for all channels or a list.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a number or a list of 3 numbers")]
enum ChannelSpec {
    Scalar(f64),
    List(Vec<f64>),
}

impl ChannelSpec {
    fn into_rgb(self, name: &str) -> Result<[f64; 3], ImagingError> {
        let values = match self {
            ChannelSpec::Scalar(v) => [v; 3],
            ChannelSpec::List(list) => <[f64; 3]>::try_from(list.as_slice()).map_err(|_| {
                ImagingError::InvalidConfig(format!(
                    "{name} must have 3 values (one per RGB channel), got {}",
                    list.len()
                ))
            })?,
        };
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ImagingError::InvalidConfig(format!(
                "{name} must be finite, got {values:?}"
            )));
        }
        Ok(values)
    }
}

impl SizeSpec {
    /// Resolves to `(height, width)`, or explains why this size rule needs
    /// per-image arithmetic that this crate does not implement.
    fn into_height_width(self) -> Result<(u32, u32), ImagingError> {
        let (height, width) = match self {
            SizeSpec::Square(n) => (n, n),
            SizeSpec::Pair(pair) => match pair.as_slice() {
                [h, w] => (*h, *w),
                _ => {
                    return Err(ImagingError::InvalidConfig(format!(
                        "size list must be [height, width], got {} values",
                        pair.len()
                    )))
                }
            },
            SizeSpec::Dict(d) => {
                // transformers' PilBackend.resize checks shortest_edge and
                // max_height/max_width before height/width, so those keys win.
                if d.shortest_edge.is_some() || d.longest_edge.is_some() {
                    return Err(ImagingError::InvalidConfig(
                        "size with shortest_edge/longest_edge (aspect-preserving resize) is not \
                         supported; use {\"height\": H, \"width\": W}"
                            .into(),
                    ));
                }
                if d.max_height.is_some() && d.max_width.is_some() {
                    return Err(ImagingError::InvalidConfig(
                        "size with max_height/max_width is not supported; use \
                         {\"height\": H, \"width\": W}"
                            .into(),
                    ));
                }
                match (d.height, d.width) {
                    (Some(h), Some(w)) => (h, w),
                    _ => {
                        return Err(ImagingError::InvalidConfig(
                            "size must contain both \"height\" and \"width\"".into(),
                        ))
                    }
                }
            }
        };
        if height == 0 || width == 0 {
            return Err(ImagingError::InvalidConfig(format!(
                "size must be positive, got height {height} width {width}"
            )));
        }
        Ok((height, width))
    }
}

impl TryFrom<RawConfig> for PreprocessorConfig {
    type Error = ImagingError;

    fn try_from(raw: RawConfig) -> Result<Self, ImagingError> {
        let defaults = PreprocessorConfig::default();
        if raw.do_resize == Some(false) {
            return Err(ImagingError::InvalidConfig(
                "do_resize=false is not supported: batched inference needs one fixed input size"
                    .into(),
            ));
        }
        if raw.do_center_crop == Some(true) {
            return Err(ImagingError::InvalidConfig(
                "do_center_crop=true is not supported by the ViT preprocessing path".into(),
            ));
        }
        let (height, width) = match raw.size {
            Some(size) => size.into_height_width()?,
            None => (defaults.height, defaults.width),
        };
        let resample = match raw.resample {
            Some(code) => Resample::from_pil(code)?,
            None => defaults.resample,
        };
        let rescale_factor = raw.rescale_factor.unwrap_or(defaults.rescale_factor);
        if !rescale_factor.is_finite() {
            return Err(ImagingError::InvalidConfig(format!(
                "rescale_factor must be finite, got {rescale_factor}"
            )));
        }
        let image_mean = match raw.image_mean {
            Some(spec) => spec.into_rgb("image_mean")?,
            None => defaults.image_mean,
        };
        let image_std = match raw.image_std {
            Some(spec) => spec.into_rgb("image_std")?,
            None => defaults.image_std,
        };
        if image_std.contains(&0.0) {
            return Err(ImagingError::InvalidConfig(format!(
                "image_std must not contain 0, got {image_std:?}"
            )));
        }
        Ok(Self {
            do_resize: true,
            height,
            width,
            resample,
            do_rescale: raw.do_rescale.unwrap_or(defaults.do_rescale),
            rescale_factor,
            do_normalize: raw.do_normalize.unwrap_or(defaults.do_normalize),
            image_mean,
            image_std,
            do_convert_rgb: raw.do_convert_rgb.unwrap_or(defaults.do_convert_rgb),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_transformers_defaults() {
        let cfg = PreprocessorConfig::from_json("{}").unwrap();
        assert_eq!(cfg, PreprocessorConfig::default());
        assert_eq!(cfg.output_size(), (224, 224));
        assert_eq!(cfg.pixel_values_len(), 3 * 224 * 224);
    }

    #[test]
    fn typical_vit_config_parses_and_ignores_unknown_fields() {
        let text = r#"{
            "_valid_processor_keys": ["images"],
            "do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
            "image_processor_type": "ViTImageProcessor", "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 320}
        }"#;
        let cfg = PreprocessorConfig::from_json(text).unwrap();
        assert_eq!(cfg.output_size(), (384, 320));
        assert_eq!(cfg.resample, Resample::Bicubic);
        assert_eq!(cfg.image_mean, [0.485, 0.456, 0.406]);
        assert_eq!(cfg.image_std, [0.229, 0.224, 0.225]);
        assert!(!cfg.do_convert_rgb);
    }

    #[test]
    fn nulls_mean_defaults_and_scalars_broadcast() {
        let text = r#"{"do_convert_rgb": null, "resample": null, "size": 96,
                       "image_mean": 0.25, "image_std": [1, 2, 4], "do_rescale": false}"#;
        let cfg = PreprocessorConfig::from_json(text).unwrap();
        assert_eq!(cfg.output_size(), (96, 96));
        assert_eq!(cfg.resample, Resample::Bilinear);
        assert_eq!(cfg.image_mean, [0.25; 3]);
        assert_eq!(cfg.image_std, [1.0, 2.0, 4.0]);
        assert!(!cfg.do_rescale);
        let pair = PreprocessorConfig::from_json(r#"{"size": [30, 40]}"#).unwrap();
        assert_eq!(pair.output_size(), (30, 40));
    }

    #[test]
    fn unsupported_settings_are_rejected_with_reasons() {
        for (text, needle) in [
            (r#"{"size": {"shortest_edge": 224}}"#, "shortest_edge"),
            (r#"{"size": {"height": 224}}"#, "both"),
            (r#"{"size": {"height": 0, "width": 4}}"#, "positive"),
            (r#"{"do_resize": false}"#, "do_resize"),
            (r#"{"do_center_crop": true}"#, "center_crop"),
            (r#"{"resample": 8}"#, "resample"),
            (r#"{"image_mean": [0.5, 0.5]}"#, "3 values"),
            (r#"{"image_std": [0.5, 0, 0.5]}"#, "must not contain 0"),
            (r#"{"size": "big"}"#, "size as an integer"),
            (r#"{"image_mean": "x"}"#, "list of 3 numbers"),
            ("not json", "expected"),
        ] {
            let err = PreprocessorConfig::from_json(text).unwrap_err();
            assert!(
                matches!(err, ImagingError::InvalidConfig(_)),
                "{text}: {err:?}"
            );
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }
}
