//! From decoded 8-bit batches to model input on the device. Training
//! images are augmented as the model card's recipe does with torchvision
//! (random resized crop, random rotation with black corners, random
//! sharpness; optionally a horizontal flip), batched on the device: crop,
//! rotation and flip compose into one affine resampling per image.
//! Evaluation images are normalised through the preprocessor's lookup
//! tables, so they are bit-identical to what `dfscan score` feeds the model.

use dfscan_imaging::PreprocessorConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

use crate::TrainSettings;

/// The augmentations in force (all off when `no_augment`).
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    rotation_deg: f64,
    sharpness_p: f64,
    sharpness_factor: f64,
    crop_scale: f64,
    hflip_p: f64,
}

/// One image's draw of the random augmentations.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Draw {
    /// Crop box `(top, left, height, width)` in input pixels.
    crop: (f64, f64, f64, f64),
    angle_rad: f64,
    flip: bool,
    sharpen: bool,
}

impl Augment {
    pub fn from_settings(s: &TrainSettings) -> Self {
        let off = s.no_augment;
        Self {
            rotation_deg: if off { 0.0 } else { s.rotation },
            sharpness_p: if off { 0.0 } else { s.sharpness_p },
            sharpness_factor: s.sharpness_factor,
            crop_scale: if off { 1.0 } else { s.crop_scale },
            hflip_p: if off { 0.0 } else { s.hflip_p },
        }
    }

    /// The draw for the image at `position` of `epoch`'s order: a function
    /// of the seed and those two alone, so a resumed run draws the same.
    fn draw(&self, seed: u64, epoch: usize, position: usize, height: f64, width: f64) -> Draw {
        let mut rng =
            StdRng::seed_from_u64(mix(&[seed, 0xa06_3e47, epoch as u64, position as u64]));
        let crop = if self.crop_scale < 1.0 {
            random_resized_crop(&mut rng, height, width, self.crop_scale)
        } else {
            (0.0, 0.0, height, width)
        };
        let angle = if self.rotation_deg > 0.0 {
            rng.random_range(-self.rotation_deg..=self.rotation_deg)
        } else {
            0.0
        };
        Draw {
            crop,
            angle_rad: angle.to_radians(),
            flip: self.hflip_p > 0.0 && rng.random_bool(self.hflip_p),
            sharpen: self.sharpness_p > 0.0 && rng.random_bool(self.sharpness_p),
        }
    }

    /// Augmented pixel values in `[0, 255]`, `[n, 3, H, W]` float.
    fn apply(&self, x: Tensor, draws: &[Draw]) -> Tensor {
        let (n, c, h, w) = x.size4().expect("a batch of images");
        let device = x.device();
        let geometric = draws
            .iter()
            .any(|d| d.angle_rad != 0.0 || d.flip || d.crop != (0.0, 0.0, h as f64, w as f64));
        let x = if geometric {
            // Output coordinates o (normalised, align_corners=false) map to
            // the cropped image's c = R·F·o, which maps to the input's
            // A·c + t. Where |c| > 1 the rotation uncovered a corner: black.
            let (mut full, mut rotation) = (Vec::new(), Vec::new());
            for d in draws {
                let (top, left, ch, cw) = d.crop;
                let (sin, cos) = d.angle_rad.sin_cos();
                let f = if d.flip { -1.0 } else { 1.0 };
                let r = [cos * f, -sin, sin * f, cos];
                let (ax, ay) = (cw / w as f64, ch / h as f64);
                let (tx, ty) = (
                    (2.0 * left + cw) / w as f64 - 1.0,
                    (2.0 * top + ch) / h as f64 - 1.0,
                );
                full.extend([ax * r[0], ax * r[1], tx, ay * r[2], ay * r[3], ty]);
                rotation.extend([r[0], r[1], 0.0, r[2], r[3], 0.0]);
            }
            let theta = |v: Vec<f64>| {
                Tensor::from_slice(&v)
                    .view([n, 2, 3])
                    .to_kind(Kind::Float)
                    .to_device(device)
            };
            let size = [n, c, h, w];
            let grid = Tensor::affine_grid_generator(&theta(full), size, false);
            let sampled = x.grid_sampler(&grid, 0, 0, false);
            let inside = Tensor::affine_grid_generator(&theta(rotation), size, false)
                .abs()
                .le(1.0)
                .all_dim(-1, false)
                .unsqueeze(1);
            sampled * inside
        } else {
            x
        };
        let sharpen: Vec<bool> = draws.iter().map(|d| d.sharpen).collect();
        if !sharpen.iter().any(|&s| s) || h < 3 || w < 3 {
            return x;
        }
        // PIL's ImageEnhance.Sharpness: blend with the SMOOTH-filtered
        // image (its one-pixel border left as is) by the factor.
        let kernel = Tensor::from_slice(&[1f32, 1., 1., 1., 5., 1., 1., 1., 1.])
            .view([1, 1, 3, 3])
            .to_device(device)
            / 13.0;
        let blurred = x.conv2d(
            &kernel.expand([c, 1, 3, 3], false),
            None::<Tensor>,
            [1, 1],
            [0, 0],
            [1, 1],
            c,
        );
        let degenerate = x.copy();
        degenerate
            .narrow(2, 1, h - 2)
            .narrow(3, 1, w - 2)
            .copy_(&blurred);
        let factor = self.sharpness_factor;
        let sharp = (&x * factor + degenerate * (1.0 - factor)).clamp(0.0, 255.0);
        let mask = Tensor::from_slice(&sharpen)
            .view([n, 1, 1, 1])
            .to_device(device);
        sharp.where_self(&mask, &x)
    }
}

/// torchvision's `RandomResizedCrop.get_params` with `scale=(min_scale, 1)`
/// and `ratio=(3/4, 4/3)`: ten tries at a box of random area and aspect,
/// then the whole image.
fn random_resized_crop(
    rng: &mut StdRng,
    height: f64,
    width: f64,
    min_scale: f64,
) -> (f64, f64, f64, f64) {
    let area = height * width;
    let (lo, hi) = ((3f64 / 4.0).ln(), (4f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.random_range(min_scale..=1.0);
        let aspect = rng.random_range(lo..=hi).exp();
        let w = (target * aspect).sqrt().round();
        let h = (target / aspect).sqrt().round();
        if w > 0.0 && w <= width && h > 0.0 && h <= height {
            let top = rng.random_range(0..=(height - h) as u64) as f64;
            let left = rng.random_range(0..=(width - w) as u64) as f64;
            return (top, left, h, w);
        }
    }
    (0.0, 0.0, height, width)
}

/// A 64-bit hash of a few words (splitmix64 steps), for per-item seeds.
pub(crate) fn mix(words: &[u64]) -> u64 {
    words.iter().fold(0x9e37_79b9_7f4a_7c15, |acc, &w| {
        let mut z = acc ^ w.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// Turns decoded batches into normalised model input on one device.
pub struct PixelPipeline {
    device: Device,
    height: i64,
    width: i64,
    /// `[3 · 256]` exact rescale + normalise tables.
    tables: Tensor,
    /// Per-channel `(scale, mean, std)` for augmented (non-integer) values.
    scale: f64,
    mean: Tensor,
    std: Tensor,
    augment: Augment,
    seed: u64,
}

impl PixelPipeline {
    pub fn new(cfg: &PreprocessorConfig, device: Device, augment: Augment, seed: u64) -> Self {
        let tables = dfscan_imaging::normalization_tables(cfg);
        let flat: Vec<f32> = tables.iter().flatten().copied().collect();
        let channel = |v: [f64; 3], on: bool, off: f64| {
            let v: Vec<f32> = v
                .iter()
                .map(|&x| if on { x as f32 } else { off as f32 })
                .collect();
            Tensor::from_slice(&v).view([1, 3, 1, 1]).to_device(device)
        };
        let (height, width) = cfg.output_size();
        Self {
            device,
            height: height.into(),
            width: width.into(),
            tables: Tensor::from_slice(&flat).to_device(device),
            scale: if cfg.do_rescale {
                cfg.rescale_factor
            } else {
                1.0
            },
            mean: channel(cfg.image_mean, cfg.do_normalize, 0.0),
            std: channel(cfg.image_std, cfg.do_normalize, 1.0),
            augment,
            seed,
        }
    }

    /// `[n, H, W, 3]` bytes → `[n, 3, H, W]` on the device, as integers.
    fn upload(&self, pixels: &[u8], n: usize) -> Tensor {
        Tensor::from_slice(pixels)
            .view([n as i64, self.height, self.width, 3])
            .to_device(self.device)
            .permute([0, 3, 1, 2])
    }

    /// Evaluation input: exactly the preprocessing of `dfscan score`.
    pub fn eval_input(&self, pixels: &[u8], n: usize) -> Tensor {
        let offsets = Tensor::from_slice(&[0i64, 256, 512])
            .view([1, 3, 1, 1])
            .to_device(self.device);
        let index = self.upload(pixels, n).to_kind(Kind::Int64) + offsets;
        self.tables.take(&index)
    }

    /// Training input: the images at `positions` of `epoch`, augmented.
    pub fn train_input(&self, pixels: &[u8], positions: &[usize], epoch: usize) -> Tensor {
        let (h, w) = (self.height as f64, self.width as f64);
        let draws: Vec<Draw> = positions
            .iter()
            .map(|&p| self.augment.draw(self.seed, epoch, p, h, w))
            .collect();
        let x = self.upload(pixels, positions.len()).to_kind(Kind::Float);
        let x = self.augment.apply(x, &draws);
        (x * self.scale - &self.mean) / &self.std
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(s: &TrainSettings) -> PixelPipeline {
        let cfg = PreprocessorConfig {
            height: 8,
            width: 8,
            ..Default::default()
        };
        PixelPipeline::new(&cfg, Device::Cpu, Augment::from_settings(s), 3)
    }

    fn ramp(n: usize) -> Vec<u8> {
        (0..n * 8 * 8 * 3).map(|i| (i * 7 % 256) as u8).collect()
    }

    #[test]
    fn without_augmentation_train_and_eval_agree() {
        let s = TrainSettings {
            no_augment: true,
            ..Default::default()
        };
        let p = pipeline(&s);
        let px = ramp(2);
        let eval = p.eval_input(&px, 2);
        let train = p.train_input(&px, &[0, 1], 0);
        assert_eq!(eval.size(), [2, 3, 8, 8]);
        let diff = f64::try_from((eval - train).abs().max()).unwrap();
        assert!(diff < 1e-6, "{diff}");
    }

    #[test]
    fn draws_depend_on_seed_epoch_and_position_only() {
        let a = Augment::from_settings(&TrainSettings::default());
        let d = |seed, epoch, pos| a.draw(seed, epoch, pos, 224.0, 224.0);
        assert_eq!(d(1, 2, 3), d(1, 2, 3));
        assert_ne!(d(1, 2, 3), d(1, 2, 4));
        assert_ne!(d(1, 2, 3), d(1, 3, 3));
        for pos in 0..200 {
            let draw = d(5, 0, pos);
            let (top, left, h, w) = draw.crop;
            assert!(top + h <= 224.0 && left + w <= 224.0);
            assert!(h * w >= 0.5 * 224.0 * 224.0 * 0.99, "{:?}", draw.crop);
            assert!(draw.angle_rad.abs() <= std::f64::consts::FRAC_PI_2 + 1e-12);
        }
    }

    #[test]
    fn a_half_turn_rotates_and_blackens_corners() {
        let aug = Augment::from_settings(&TrainSettings::default());
        let img = Tensor::arange(3 * 8 * 8, (Kind::Float, Device::Cpu)).view([1, 3, 8, 8]);
        let full = (0.0, 0.0, 8.0, 8.0);
        let quarter = Draw {
            crop: full,
            angle_rad: std::f64::consts::FRAC_PI_2,
            flip: false,
            sharpen: false,
        };
        let out = aug.apply(img.shallow_clone(), &[quarter]);
        // A quarter turn of a square maps pixels onto pixels exactly.
        let expected = img.rot90(1, [2, 3]);
        let same = out.allclose(&expected, 1e-4, 1e-3, false)
            || out.allclose(&img.rot90(-1, [2, 3]), 1e-4, 1e-3, false);
        assert!(same, "{out}");
        let eighth = Draw {
            angle_rad: std::f64::consts::FRAC_PI_4,
            ..quarter
        };
        let out = aug.apply(img.ones_like() * 100.0, &[eighth]);
        assert_eq!(f64::try_from(out.get(0).get(0).get(0).get(0)).unwrap(), 0.0);
        assert!(f64::try_from(out.get(0).get(0).get(4).get(4)).unwrap() > 99.0);
    }

    #[test]
    fn sharpening_leaves_flat_images_and_borders_alone() {
        let aug = Augment::from_settings(&TrainSettings::default());
        let draw = Draw {
            crop: (0.0, 0.0, 8.0, 8.0),
            angle_rad: 0.0,
            flip: false,
            sharpen: true,
        };
        let flat = Tensor::ones([1, 3, 8, 8], (Kind::Float, Device::Cpu)) * 77.0;
        assert!(aug
            .apply(flat.shallow_clone(), &[draw])
            .allclose(&flat, 1e-5, 1e-4, false));
        let spot = flat.copy();
        let _ = spot.get(0).get(0).get(4).get(4).fill_(200.0);
        let out = aug.apply(spot.shallow_clone(), &[draw]);
        // factor 2: 2·200 - (5·200 + 8·77)/13 ≈ 276 → clamped to 255.
        assert_eq!(
            f64::try_from(out.get(0).get(0).get(4).get(4)).unwrap(),
            255.0
        );
        assert_eq!(
            f64::try_from(out.get(0).get(0).get(0).get(0)).unwrap(),
            77.0
        );
    }
}
