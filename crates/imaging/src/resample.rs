//! Pillow's `Image.resize` for 8-bit RGB, reproduced bit for bit.
//!
//! The model was trained and is evaluated on tensors that Pillow produced, so
//! a "close enough" resampler would shift scores. This is a transcription of
//! `libImaging/Resample.c` (separable fixed-point convolution, 22 fractional
//! bits, horizontal pass first over only the rows the vertical pass reads) and
//! of `ImagingScaleAffine` in `Geometry.c` for nearest neighbour, keeping the
//! C evaluation order and float widths so that rounding matches exactly.

use image::RgbImage;

use crate::error::ImagingError;

/// Resampling filter, numbered as `PIL.Image.Resampling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resample {
    /// `NEAREST` (0).
    Nearest,
    /// `BOX` (4).
    Box,
    /// `BILINEAR` (2), the ViT default.
    Bilinear,
    /// `HAMMING` (5).
    Hamming,
    /// `BICUBIC` (3).
    Bicubic,
    /// `LANCZOS` (1).
    Lanczos,
    /// `MKS2013` (6), Magic Kernel Sharp 2013, new in Pillow 13.
    Mks2013,
    /// `MKS2021` (7), Magic Kernel Sharp 2021, new in Pillow 13.
    Mks2021,
}

impl Resample {
    /// Every filter, for exhaustive tests.
    pub const ALL: [Resample; 8] = [
        Resample::Nearest,
        Resample::Box,
        Resample::Bilinear,
        Resample::Hamming,
        Resample::Bicubic,
        Resample::Lanczos,
        Resample::Mks2013,
        Resample::Mks2021,
    ];

    /// Maps a `PIL.Image.Resampling` code (as stored in `"resample"`).
    pub fn from_pil(code: i64) -> Result<Self, ImagingError> {
        Ok(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            6 => Resample::Mks2013,
            7 => Resample::Mks2021,
            _ => {
                return Err(ImagingError::InvalidConfig(format!(
                    "resample must be a PIL filter code 0..=7, got {code}"
                )))
            }
        })
    }

    /// The `PIL.Image.Resampling` code.
    pub fn pil_code(self) -> i64 {
        match self {
            Resample::Nearest => 0,
            Resample::Lanczos => 1,
            Resample::Bilinear => 2,
            Resample::Bicubic => 3,
            Resample::Box => 4,
            Resample::Hamming => 5,
            Resample::Mks2013 => 6,
            Resample::Mks2021 => 7,
        }
    }
}

/// Fractional bits of the fixed-point coefficients: `32 - 8 - 2` in Pillow,
/// leaving room for 8-bit samples and filters whose lobes overshoot.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A convolution kernel with its support radius at scale 1.
struct Filter {
    support: f64,
    weight: fn(f64) -> f64,
}

fn box_filter(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_filter(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_filter(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let x = x * std::f64::consts::PI;
    // The C source writes `0.54f + 0.46f * cos(x)`: float literals widened to
    // double, which differ from the double literals in the last bits.
    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
}

fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc_filter(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos_filter(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc_filter(x) * sinc_filter(x / 3.0)
    } else {
        0.0
    }
}

// Magic Kernel Sharp (John Costella), added in Pillow 13. Its C source was
// not at hand; these piecewise quadratics, written in this order, reproduce
// Pillow 13's output byte for byte in every parity case.
fn mks2013_filter(x: f64) -> f64 {
    let x = x.abs();
    if x >= 2.5 {
        0.0
    } else if x >= 1.5 {
        -0.125 * (x - 2.5) * (x - 2.5)
    } else if x >= 0.5 {
        0.25 * (4.0 * x * x - 11.0 * x + 7.0)
    } else {
        1.0625 - 1.75 * x * x
    }
}

fn mks2021_filter(x: f64) -> f64 {
    let x = x.abs();
    if x >= 4.5 {
        0.0
    } else if x >= 3.5 {
        -1.0 / 288.0 * (x - 4.5) * (x - 4.5)
    } else if x >= 2.5 {
        1.0 / 144.0 * (4.0 * x * x - 27.0 * x + 45.0)
    } else if x >= 1.5 {
        -1.0 / 144.0 * (24.0 * x * x - 113.0 * x + 130.0)
    } else if x >= 0.5 {
        1.0 / 144.0 * (140.0 * x * x - 379.0 * x + 239.0)
    } else {
        577.0 / 576.0 - 239.0 / 144.0 * x * x
    }
}

impl Resample {
    /// The convolution kernel; `None` for nearest, which is not a convolution
    /// in Pillow but an affine lookup.
    fn filter(self) -> Option<Filter> {
        let (support, weight): (f64, fn(f64) -> f64) = match self {
            Resample::Nearest => return None,
            Resample::Box => (0.5, box_filter),
            Resample::Bilinear => (1.0, bilinear_filter),
            Resample::Hamming => (1.0, hamming_filter),
            Resample::Bicubic => (2.0, bicubic_filter),
            Resample::Lanczos => (3.0, lanczos_filter),
            Resample::Mks2013 => (2.5, mks2013_filter),
            Resample::Mks2021 => (4.5, mks2021_filter),
        };
        Some(Filter { support, weight })
    }
}

/// Per-output-sample source window and fixed-point weights along one axis.
struct Coeffs {
    /// Weight slots per output sample in `weights` (Pillow's `ksize`); only
    /// the first `bounds[i].1` of each are used.
    ksize: usize,
    /// `(first source index, number of source samples)` per output sample.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

impl Coeffs {
    /// `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
    fn new(in_size: u32, out_size: u32, filter: &Filter) -> Self {
        // Pillow passes the box edges as C floats; `in1 - in0` is a float
        // subtraction widened to double.
        let in0 = 0.0f32;
        let in1 = in_size as f32;
        let scale = f64::from(in1 - in0) / f64::from(out_size);
        let filterscale = scale.max(1.0);
        let support = filter.support * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;

        let out_len = out_size as usize;
        let mut bounds = Vec::with_capacity(out_len);
        let mut weights = vec![0i32; out_len * ksize];
        let mut row = vec![0.0f64; ksize];
        for (xx, kk) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
            // `(int)` truncates toward zero; both ends are clamped into range.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
            let count = xmax.max(0) as usize;
            let mut ww = 0.0;
            for (x, w) in row[..count].iter_mut().enumerate() {
                *w = (filter.weight)(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                ww += *w;
            }
            for (k, w) in kk.iter_mut().zip(&row[..count]) {
                let w = if ww != 0.0 { w / ww } else { *w };
                let fixed = w * f64::from(1u32 << PRECISION_BITS);
                *k = if w < 0.0 {
                    (-0.5 + fixed) as i32
                } else {
                    (0.5 + fixed) as i32
                };
            }
            bounds.push((xmin as usize, count));
        }
        Coeffs {
            ksize,
            bounds,
            weights,
        }
    }

    /// Source samples any output reads: from the first window's start to
    /// the last window's end (`ybox_first..ybox_last` in Pillow).
    fn source_span(&self) -> std::ops::Range<usize> {
        let first = self.bounds.first().map_or(0, |b| b.0);
        let last = self.bounds.last().map_or(0, |b| b.0 + b.1);
        first..last
    }

    fn kernel(&self, index: usize) -> (usize, &[i32]) {
        let (start, len) = self.bounds[index];
        let offset = index * self.ksize;
        (start, &self.weights[offset..offset + len])
    }
}

/// `clip8`: drop the fraction (arithmetic shift, so negatives floor) and
/// saturate to a byte, which is what Pillow's lookup table encodes.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset the accumulators start from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// `PIL.Image.resize((width, height), resample=filter, reducing_gap=None)` on
/// an RGB image.
///
/// # Panics
/// If `width` or `height` is zero (Pillow raises for that too).
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Resample) -> RgbImage {
    assert!(width > 0 && height > 0, "resize target must be non-empty");
    if img.dimensions() == (width, height) {
        return img.clone();
    }
    match filter.filter() {
        None => resize_nearest(img, width, height),
        Some(f) => resize_convolve(img, width, height, &f),
    }
}

/// `ImagingResampleInner` for an RGB image and a box covering all of it.
///
/// Each 1-D pass rounds to 8 bits, so the pass order changes the result.
/// Pillow 13 runs the vertical pass first when the height shrinks by more
/// than twice as many pixels as the width (python-pillow/Pillow#9549; the
/// rule was recovered from Pillow 13's output, and the parity tests check
/// it on both sides of the boundary), otherwise horizontal first. Either way
/// the first pass only covers the rows or columns the second pass reads.
fn resize_convolve(img: &RgbImage, width: u32, height: u32, filter: &Filter) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    let src = Plane {
        data: img.as_raw(),
        width: in_w as usize,
        height: in_h as usize,
    };
    let horiz = (width != in_w).then(|| Coeffs::new(in_w, width, filter));
    let vert = (height != in_h).then(|| Coeffs::new(in_h, height, filter));
    let out = match (horiz, vert) {
        (Some(h), None) => horizontal_pass(&src, 0..src.height, &h, 0),
        (None, Some(v)) => vertical_pass(&src, 0..src.width, &v, 0),
        (Some(h), Some(v)) => {
            let vertical_first = height < in_h
                && i64::from(in_h - height) > 2 * (i64::from(in_w) - i64::from(width));
            if vertical_first {
                let cols = h.source_span();
                let tmp = vertical_pass(&src, cols.clone(), &v, 0);
                let tmp = Plane {
                    data: &tmp,
                    width: cols.len(),
                    height: height as usize,
                };
                horizontal_pass(&tmp, 0..tmp.height, &h, cols.start)
            } else {
                let rows = v.source_span();
                let tmp = horizontal_pass(&src, rows.clone(), &h, 0);
                let tmp = Plane {
                    data: &tmp,
                    width: width as usize,
                    height: rows.len(),
                };
                vertical_pass(&tmp, 0..tmp.width, &v, rows.start)
            }
        }
        (None, None) => img.as_raw().clone(),
    };
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// A borrowed interleaved RGB buffer.
struct Plane<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
}

/// Convolves along x, for source rows `rows`; `col_offset` is the source
/// column that index 0 of `src` stands for.
fn horizontal_pass(
    src: &Plane<'_>,
    rows: std::ops::Range<usize>,
    coeffs: &Coeffs,
    col_offset: usize,
) -> Vec<u8> {
    let out_w = coeffs.bounds.len();
    let stride = src.width * 3;
    let mut out = vec![0u8; rows.len() * out_w * 3];
    for (out_row, y) in out.chunks_exact_mut(out_w * 3).zip(rows) {
        let row = &src.data[y * stride..][..stride];
        for (xx, px_out) in out_row.chunks_exact_mut(3).enumerate() {
            let (xmin, k) = coeffs.kernel(xx);
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (px, &w) in row[(xmin - col_offset) * 3..].chunks_exact(3).zip(k) {
                s0 += i32::from(px[0]) * w;
                s1 += i32::from(px[1]) * w;
                s2 += i32::from(px[2]) * w;
            }
            px_out.copy_from_slice(&[clip8(s0), clip8(s1), clip8(s2)]);
        }
    }
    out
}

/// Convolves along y, for source columns `cols`; `row_offset` is the source
/// row that row 0 of `src` stands for.
fn vertical_pass(
    src: &Plane<'_>,
    cols: std::ops::Range<usize>,
    coeffs: &Coeffs,
    row_offset: usize,
) -> Vec<u8> {
    let stride = src.width * 3;
    let out_w = cols.len();
    let mut out = vec![0u8; coeffs.bounds.len() * out_w * 3];
    for (yy, out_row) in out.chunks_exact_mut(out_w * 3).enumerate() {
        let (ymin, k) = coeffs.kernel(yy);
        let ymin = ymin - row_offset;
        for (px_out, x) in out_row.chunks_exact_mut(3).zip(cols.clone()) {
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (y, &w) in k.iter().enumerate() {
                let px = &src.data[(ymin + y) * stride + x * 3..][..3];
                s0 += i32::from(px[0]) * w;
                s1 += i32::from(px[1]) * w;
                s2 += i32::from(px[2]) * w;
            }
            px_out.copy_from_slice(&[clip8(s0), clip8(s1), clip8(s2)]);
        }
    }
    out
}

/// `ImagingScaleAffine`: source positions are accumulated by repeated
/// addition of the step, not multiplied, and rounding follows from that.
fn resize_nearest(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    let coord = |v: f64| -> i64 {
        if v < 0.0 {
            -1
        } else {
            v as i64
        }
    };
    let positions = |in_size: u32, out_size: u32| -> Vec<Option<usize>> {
        let step = f64::from(in_size as f32) / f64::from(out_size);
        let mut pos = step * 0.5;
        (0..out_size)
            .map(|_| {
                let i = coord(pos);
                pos += step;
                (0..i64::from(in_size)).contains(&i).then_some(i as usize)
            })
            .collect()
    };
    let xs = positions(in_w, width);
    let ys = positions(in_h, height);
    let src = img.as_raw();
    let src_stride = in_w as usize * 3;
    let mut out = vec![0u8; width as usize * height as usize * 3];
    for (out_row, y) in out.chunks_exact_mut(width as usize * 3).zip(&ys) {
        // Pillow fills positions that map outside the source with zeros.
        let Some(y) = y else { continue };
        let row = &src[y * src_stride..][..src_stride];
        for (px, x) in out_row.chunks_exact_mut(3).zip(&xs) {
            if let Some(x) = x {
                px.copy_from_slice(&row[x * 3..x * 3 + 3]);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 13) as u8, ((x ^ y) * 3) as u8])
        })
    }

    #[test]
    fn pil_codes_round_trip() {
        for f in Resample::ALL {
            assert_eq!(Resample::from_pil(f.pil_code()).unwrap(), f);
        }
        assert!(Resample::from_pil(-1).is_err());
        assert!(Resample::from_pil(8).is_err());
    }

    #[test]
    fn same_size_is_a_copy() {
        let img = gradient(5, 3);
        for f in Resample::ALL {
            assert_eq!(resize(&img, 5, 3, f), img);
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(17, 9, image::Rgb([10, 128, 250]));
        for f in Resample::ALL {
            for (w, h) in [(1, 1), (4, 30), (40, 3), (17, 20)] {
                let out = resize(&img, w, h, f);
                assert_eq!(out.dimensions(), (w, h));
                assert!(out.pixels().all(|p| p.0 == [10, 128, 250]), "{f:?} {w}x{h}");
            }
        }
    }

    #[test]
    fn box_downscale_by_two_averages_pairs() {
        let img = RgbImage::from_fn(4, 1, |x, _| image::Rgb([(x * 10) as u8, 0, 255]));
        let out = resize(&img, 2, 1, Resample::Box);
        assert_eq!(out.get_pixel(0, 0).0, [5, 0, 255]);
        assert_eq!(out.get_pixel(1, 0).0, [25, 0, 255]);
    }

    #[test]
    fn nearest_upscale_repeats_pixels() {
        let img = gradient(2, 2);
        let out = resize(&img, 4, 4, Resample::Nearest);
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(out.get_pixel(x, y), img.get_pixel(x / 2, y / 2));
            }
        }
    }

    #[test]
    fn clip8_floors_then_saturates() {
        assert_eq!(clip8(-1), 0);
        assert_eq!(clip8(HALF), 0);
        assert_eq!(clip8(255 << PRECISION_BITS), 255);
        assert_eq!(clip8(300 << PRECISION_BITS), 255);
        assert_eq!(clip8((7 << PRECISION_BITS) + HALF), 7);
    }
}
