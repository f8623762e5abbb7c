//! Rescale and normalize to the model's CHW float32 input.
//!
//! transformers does `image.astype(float64) * rescale_factor`, casts to
//! float32, then `(x - mean) / std` with mean and std cast to float32. The
//! same operations in the same widths give bit-identical values, which a
//! lookup table per channel computes once instead of per pixel.

use image::RgbImage;

use crate::config::PreprocessorConfig;
use crate::resample::resize;

/// The 256 possible outputs of rescale + normalize for one channel.
fn channel_table(cfg: &PreprocessorConfig, channel: usize) -> [f32; 256] {
    let mean = cfg.image_mean[channel] as f32;
    let std = cfg.image_std[channel] as f32;
    std::array::from_fn(|v| {
        let x = if cfg.do_rescale {
            (v as f64 * cfg.rescale_factor) as f32
        } else {
            v as f32
        };
        if cfg.do_normalize {
            (x - mean) / std
        } else {
            x
        }
    })
}

/// Rescale + normalize as lookup tables, one per RGB channel: a resized
/// 8-bit sample `v` of channel `c` becomes `tables[c][v]`.
pub fn normalization_tables(cfg: &PreprocessorConfig) -> [[f32; 256]; 3] {
    std::array::from_fn(|c| channel_table(cfg, c))
}

/// Resizes `img` to `cfg.output_size()` with Pillow's filter, then writes its
/// rescaled, normalized values channel-first into `out`.
///
/// # Panics
/// If `out.len() != cfg.pixel_values_len()`; the caller sizes the batch.
pub fn pixel_values_into(img: &RgbImage, cfg: &PreprocessorConfig, out: &mut [f32]) {
    assert_eq!(
        out.len(),
        cfg.pixel_values_len(),
        "output slice must hold 3 * height * width values"
    );
    let (height, width) = cfg.output_size();
    let resized = resize(img, width, height, cfg.resample);
    let plane = height as usize * width as usize;
    let tables = normalization_tables(cfg);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in resized.as_raw().chunks_exact(3).enumerate() {
        r[i] = tables[0][usize::from(px[0])];
        g[i] = tables[1][usize::from(px[1])];
        b[i] = tables[2][usize::from(px[2])];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_float32_semantics() {
        let cfg = PreprocessorConfig {
            image_mean: [0.485, 0.456, 0.406],
            image_std: [0.229, 0.224, 0.225],
            ..PreprocessorConfig::default()
        };
        let t = channel_table(&cfg, 0);
        // numpy: ((np.float64(200) * (1/255)).astype(np.float32) - np.float32(0.485)) / np.float32(0.229)
        let expected = ((200f64 * (1.0 / 255.0)) as f32 - 0.485f32) / 0.229f32;
        assert_eq!(t[200].to_bits(), expected.to_bits());
        assert_eq!(channel_table(&PreprocessorConfig::default(), 1)[255], 1.0);
        assert_eq!(channel_table(&PreprocessorConfig::default(), 2)[0], -1.0);
    }

    #[test]
    fn flags_skip_steps() {
        let cfg = PreprocessorConfig {
            do_rescale: false,
            do_normalize: false,
            ..PreprocessorConfig::default()
        };
        assert_eq!(channel_table(&cfg, 0)[17], 17.0);
        let cfg = PreprocessorConfig {
            do_rescale: false,
            ..PreprocessorConfig::default()
        };
        assert_eq!(channel_table(&cfg, 0)[17], (17.0f32 - 0.5) / 0.5);
    }

    #[test]
    fn writes_planes_channel_first() {
        let cfg = PreprocessorConfig {
            height: 1,
            width: 2,
            do_normalize: false,
            do_rescale: false,
            ..PreprocessorConfig::default()
        };
        let img = RgbImage::from_raw(2, 1, vec![1, 2, 3, 4, 5, 6]).unwrap();
        let mut out = vec![0.0; 6];
        pixel_values_into(&img, &cfg, &mut out);
        assert_eq!(out, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
