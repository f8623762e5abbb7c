//! The picture a moderator looks at: an explanation's maps laid over the
//! image they explain. Each map covers the region its classifier row saw
//! (the whole image, or a face's crop), upsampled bilinearly from the patch
//! grid, coloured with matplotlib's perceptually uniform `inferno` (the
//! `colorous` crate's copy of its table) and blended at partial opacity;
//! face boxes are drawn on top. Where regions overlap (faces close
//! together) the higher value shows.

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

/// Longest side of an overlay: enough to see a face's map, bounded so
/// that a gigapixel input does not make a gigapixel PNG.
pub const OVERLAY_MAX_SIDE: u32 = 1024;

/// How much of the colour shows over the image where a map lies.
const OPACITY: f32 = 0.55;

const BOX_COLOUR: Rgb<u8> = Rgb([0, 255, 128]);

/// One map: a `side` × `side` grid of values in [0, 1] (row-major) over
/// `region`, `[left, top, right, bottom]` in the original image's pixels.
pub struct PlacedMap<'a> {
    pub region: [f32; 4],
    pub side: usize,
    pub values: &'a [f32],
}

/// The image an overlay is drawn on: `image` scaled down to at most
/// [`OVERLAY_MAX_SIDE`], and the factor from original pixels to its own.
pub fn overlay_base(image: &RgbImage) -> (RgbImage, f32) {
    let longest = image.width().max(image.height()).max(1);
    if longest <= OVERLAY_MAX_SIDE {
        return (image.clone(), 1.0);
    }
    let scale = OVERLAY_MAX_SIDE as f32 / longest as f32;
    let w = ((image.width() as f32 * scale).round() as u32).max(1);
    let h = ((image.height() as f32 * scale).round() as u32).max(1);
    (imageops::resize(image, w, h, FilterType::Triangle), scale)
}

/// `base` (from [`overlay_base`], `scale` its factor) with `maps` blended
/// in and `boxes` (`[x0, y0, x1, y1]`, original pixels) outlined.
pub fn render(base: &RgbImage, scale: f32, maps: &[PlacedMap<'_>], boxes: &[[f32; 4]]) -> RgbImage {
    let (w, h) = base.dimensions();
    // The strongest map value at each pixel, NaN where no map lies.
    let mut heat = vec![f32::NAN; (w as usize) * (h as usize)];
    for map in maps {
        if map.side == 0 || map.values.len() != map.side * map.side {
            continue;
        }
        let [l, t, r, b] = map.region.map(|v| v * scale);
        if r <= l || b <= t {
            continue;
        }
        let x0 = l.floor().max(0.0) as u32;
        let y0 = t.floor().max(0.0) as u32;
        let x1 = (r.ceil().max(0.0) as u32).min(w);
        let y1 = (b.ceil().max(0.0) as u32).min(h);
        for y in y0..y1 {
            let fy = (y as f32 + 0.5 - t) / (b - t);
            if !(0.0..=1.0).contains(&fy) {
                continue;
            }
            for x in x0..x1 {
                let fx = (x as f32 + 0.5 - l) / (r - l);
                if !(0.0..=1.0).contains(&fx) {
                    continue;
                }
                let v = sample(map.side, map.values, fx, fy);
                let cell = &mut heat[(y * w + x) as usize];
                if cell.is_nan() || v > *cell {
                    *cell = v;
                }
            }
        }
    }
    let mut out = base.clone();
    for (pixel, v) in out.pixels_mut().zip(&heat) {
        if v.is_nan() {
            continue;
        }
        let c = colorous::INFERNO.eval_continuous(f64::from(v.clamp(0.0, 1.0)));
        for (channel, colour) in pixel.0.iter_mut().zip([c.r, c.g, c.b]) {
            let blended = (1.0 - OPACITY) * f32::from(*channel) + OPACITY * f32::from(colour);
            *channel = blended.round().clamp(0.0, 255.0) as u8;
        }
    }
    for bbox in boxes {
        outline(&mut out, bbox.map(|v| v * scale));
    }
    out
}

/// The value at fractional position (`x`, `y`) ∈ [0, 1]² of a grid, as a
/// bilinear upsampling reads it (cell centres at (i + 0.5) / side, edges
/// clamped), like `torch.nn.functional.interpolate(mode="bilinear")`.
fn sample(side: usize, values: &[f32], x: f32, y: f32) -> f32 {
    let n = side as f32;
    let fx = (x * n - 0.5).clamp(0.0, n - 1.0);
    let fy = (y * n - 0.5).clamp(0.0, n - 1.0);
    let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
    let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
    let at = |x: usize, y: usize| values[y * side + x];
    let top = at(x0, y0) * (1.0 - ax) + at(x1, y0) * ax;
    let bottom = at(x0, y1) * (1.0 - ax) + at(x1, y1) * ax;
    top * (1.0 - ay) + bottom * ay
}

/// A two-pixel rectangle, clipped to the image.
fn outline(img: &mut RgbImage, [x0, y0, x1, y1]: [f32; 4]) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0, x1, y1) = (
        x0.round() as i64,
        y0.round() as i64,
        x1.round() as i64,
        y1.round() as i64,
    );
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, BOX_COLOUR);
        }
    };
    for d in 0..2 {
        for x in x0..=x1 {
            put(x, y0 + d);
            put(x, y1 - d);
        }
        for y in y0..=y1 {
            put(x0 + d, y);
            put(x1 - d, y);
        }
    }
}

/// The PNG file of an image.
pub fn png_bytes(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_hits_cell_centres_and_interpolates_between() {
        let v = [0.0, 1.0, 0.0, 1.0];
        assert_eq!(sample(2, &v, 0.25, 0.25), 0.0);
        assert_eq!(sample(2, &v, 0.75, 0.75), 1.0);
        assert!((sample(2, &v, 0.5, 0.1) - 0.5).abs() < 1e-6);
        assert_eq!(sample(2, &v, 0.0, 0.0), 0.0);
        assert_eq!(sample(2, &v, 1.0, 1.0), 1.0);
    }

    #[test]
    fn a_map_colours_only_its_region_and_hot_differs_from_cold() {
        let base = RgbImage::from_pixel(100, 50, Rgb([128, 128, 128]));
        // Left half of the region cold, right half hot.
        let values = [0.0, 1.0, 0.0, 1.0];
        let map = PlacedMap {
            region: [10.0, 10.0, 50.0, 50.0],
            side: 2,
            values: &values,
        };
        let out = render(&base, 1.0, &[map], &[]);
        assert_eq!(
            out.get_pixel(80, 20),
            base.get_pixel(80, 20),
            "outside the region"
        );
        let (cold, hot) = (out.get_pixel(12, 30), out.get_pixel(48, 30));
        assert_ne!(cold, base.get_pixel(12, 30));
        assert!(
            hot.0.iter().map(|&c| u32::from(c)).sum::<u32>()
                > cold.0.iter().map(|&c| u32::from(c)).sum::<u32>()
        );
    }

    #[test]
    fn large_images_are_scaled_down_and_boxes_follow() {
        let big = RgbImage::new(4096, 2048);
        let (base, scale) = overlay_base(&big);
        assert_eq!(base.dimensions(), (1024, 512));
        assert_eq!(scale, 0.25);
        let out = render(&base, scale, &[], &[[400.0, 400.0, 800.0, 800.0]]);
        assert_eq!(*out.get_pixel(100, 150), BOX_COLOUR);
        assert_eq!(*out.get_pixel(150, 150), Rgb([0, 0, 0]));
    }
}
