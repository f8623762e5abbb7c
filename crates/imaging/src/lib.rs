//! Turns image files into the `pixel_values` a Hugging Face ViT classifier
//! expects, reproducing `pipeline("image-classification")` on its PIL path
//! (transformers 5.24 `ViTImageProcessorPil`, Pillow 13) exactly:
//!
//! 1. `load_image`: `Image.open`, `ImageOps.exif_transpose`, `convert("RGB")`
//!    ([`decode_rgb`]; JPEG is decoded by libjpeg-turbo, the codec Pillow
//!    uses, with Pillow's settings, so its samples are exact; lossy WebP comes
//!    from image-webp rather than libwebp; everything Pillow itself decides is
//!    reproduced exactly),
//! 2. `Image.resize((w, h), resample)` ([`resize`], bit-exact),
//! 3. rescale in float64, normalize in float32, channels first
//!    ([`pixel_values_into`], bit-exact).
//!
//! Face crops are cut here too: [`face_square`] + [`crop`] (the square
//! around a detected face, as `PIL.Image.crop` cuts it) or [`align_face`]
//! (five-point alignment), each then preprocessed as above.
//!
//! No libtorch here: the model crate copies these `f32`s into its tensors.

mod align;
mod config;
mod crop;
mod decode;
mod error;
mod exif;
mod files;
mod format;
mod limits;
mod normalize;
mod orient;
pub mod overlay;
mod resample;

pub use align::{align_face, aligned_region, face_template, similarity, Affine};
pub use config::PreprocessorConfig;
pub use crop::{crop, face_square, CropRegion};
pub use decode::{decode, decode_rgb, Decoded};
pub use error::ImagingError;
pub use files::{
    files_under, images_under, label_folders, read_file_limited, read_limited, IMAGE_EXTENSIONS,
};
/// The image type every function here takes and returns, so that callers
/// need no `image` dependency of their own.
pub use image::{Rgb, RgbImage};
pub use limits::DecodeLimits;
pub use normalize::{normalization_tables, pixel_values_into};
pub use resample::{resize, Resample};

/// Decode, resize, rescale and normalize one encoded image: the CHW `f32`
/// values (`3 * height * width` of them) the pipeline feeds the model.
pub fn preprocess(
    bytes: &[u8],
    cfg: &PreprocessorConfig,
    limits: &DecodeLimits,
) -> Result<Vec<f32>, ImagingError> {
    let rgb = decode(bytes, limits)?.into_processor_input(cfg.do_convert_rgb);
    let mut out = vec![0.0; cfg.pixel_values_len()];
    pixel_values_into(&rgb, cfg, &mut out);
    Ok(out)
}
