//! The region of an image a detected face is scored on, cut as Pillow cuts.
//!
//! The classifiers were fine-tuned on face crops (FaceForensics++: a square
//! of 1.3 × the face box around its centre), so a face is handed to the
//! classifier as that square, zero-filled where it leaves the image, and
//! then through the classifier's own preprocessing. The region is reported
//! as integers so that `PIL.Image.crop(region)` reproduces the crop exactly.

use image::RgbImage;

/// A region of an image as `PIL.Image.crop` takes it: `[left, top, right,
/// bottom]` in pixels, right and bottom exclusive; it may extend past the
/// image on any side.
pub type CropRegion = [i64; 4];

/// The square of `scale` × max(width, height) of `face` (`[x0, y0, x1, y1]`
/// in pixels) around the face's centre.
///
/// Rounding, as Python's `round` (half to even): side = max(1, round(scale ×
/// max(x1 − x0, y1 − y0))), left = round(cx − side / 2), top = round(cy −
/// side / 2) with (cx, cy) the box's centre, all in f64; right = left + side
/// and bottom = top + side, so the region is always square (Pillow given
/// the float box would round each corner on its own: (29, 14.5, 38, 23.5)
/// becomes 9 × 10).
/// Non-finite coordinates give a 1×1 region at the origin.
pub fn face_square(face: [f32; 4], scale: f64) -> CropRegion {
    let [x0, y0, x1, y1] = face.map(f64::from);
    let side = (scale * (x1 - x0).max(y1 - y0)).round_ties_even().max(1.0);
    let left = ((x0 + x1) / 2.0 - side / 2.0).round_ties_even();
    let top = ((y0 + y1) / 2.0 - side / 2.0).round_ties_even();
    if !(side.is_finite() && left.is_finite() && top.is_finite()) {
        return [0, 0, 1, 1];
    }
    // Saturating casts: a box far outside the image stays far outside.
    let (side, left, top) = (side as i64, left as i64, top as i64);
    [
        left,
        top,
        left.saturating_add(side),
        top.saturating_add(side),
    ]
}

/// `PIL.Image.crop(region)` on an RGB image: pixels outside the image are
/// zero. An empty or inverted region gives an empty image (Pillow raises for
/// an inverted one; [`face_square`] never makes one).
///
/// The result has (right − left) × (bottom − top) pixels, so the caller
/// bounds the region: a detected face lies inside the image, so its
/// [`face_square`] is at most `scale` times the image's longer side.
pub fn crop(img: &RgbImage, region: CropRegion) -> RgbImage {
    let [left, top, right, bottom] = region;
    let width = u32::try_from(right.saturating_sub(left)).unwrap_or(0);
    let height = u32::try_from(bottom.saturating_sub(top)).unwrap_or(0);
    let mut out = RgbImage::new(width, height);
    let (img_w, img_h) = (i64::from(img.width()), i64::from(img.height()));
    // The part of the region that lies inside the image, in image pixels.
    let (x_from, x_to) = (left.clamp(0, img_w), right.clamp(0, img_w));
    let (y_from, y_to) = (top.clamp(0, img_h), bottom.clamp(0, img_h));
    if x_from >= x_to || y_from >= y_to {
        return out;
    }
    let row_bytes = 3 * (x_to - x_from) as usize;
    let src = img.as_raw();
    let dst: &mut [u8] = &mut out;
    for y in y_from..y_to {
        let src_at = 3 * (y * img_w + x_from) as usize;
        let dst_at = 3 * ((y - top) * i64::from(width) + (x_from - left)) as usize;
        dst[dst_at..dst_at + row_bytes].copy_from_slice(&src[src_at..src_at + row_bytes]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]))
    }

    #[test]
    fn face_square_is_scale_times_the_longer_side_around_the_centre() {
        // 40 × 60 box centred on (120, 230): side 78, corner 120 − 39.
        assert_eq!(
            face_square([100.0, 200.0, 140.0, 260.0], 1.3),
            [81, 191, 159, 269]
        );
        // Side 1.0 × 5 = 5, centre 2.5: left = round(0.0) = 0.
        assert_eq!(face_square([0.0, 0.0, 5.0, 5.0], 1.0), [0, 0, 5, 5]);
    }

    #[test]
    fn face_square_rounds_half_to_even_like_python() {
        // Side 4; cx − side/2 = 2.5 → 2 and cy − side/2 = 3.5 → 4.
        assert_eq!(face_square([2.5, 3.5, 6.5, 7.5], 1.0), [2, 4, 6, 8]);
        // Side round(2.5) = 2.
        assert_eq!(face_square([0.0, 0.0, 2.5, 1.0], 1.0), [0, 0, 2, 2]);
    }

    #[test]
    fn face_square_never_empty_and_survives_garbage() {
        let r = face_square([10.0, 10.0, 10.0, 10.0], 1.3);
        assert_eq!((r[2] - r[0], r[3] - r[1]), (1, 1));
        assert_eq!(face_square([f32::NAN, 0.0, 1.0, 1.0], 1.3), [0, 0, 1, 1]);
        assert_eq!(
            face_square([0.0, 0.0, f32::INFINITY, 1.0], 1.3),
            [0, 0, 1, 1]
        );
        let far = face_square([-3e38, -3e38, 3e38, 3e38], 1.3);
        assert!(far[0] <= far[2] && far[1] <= far[3]);
    }

    #[test]
    fn crop_inside_copies_pixels() {
        let img = numbered(10, 8);
        let c = crop(&img, [2, 3, 5, 7]);
        assert_eq!(c.dimensions(), (3, 4));
        assert_eq!(c.get_pixel(0, 0).0, [2, 3, 7]);
        assert_eq!(c.get_pixel(2, 3).0, [4, 6, 7]);
    }

    #[test]
    fn crop_outside_is_zero() {
        let img = numbered(4, 4);
        let c = crop(&img, [-2, -1, 3, 2]);
        assert_eq!(c.dimensions(), (5, 3));
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 1).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(2, 1).0, [0, 0, 7]);
        assert_eq!(c.get_pixel(4, 2).0, [2, 1, 7]);
        let away = crop(&img, [10, 10, 13, 12]);
        assert_eq!(away.dimensions(), (3, 2));
        assert!(away.as_raw().iter().all(|&v| v == 0));
        assert_eq!(crop(&img, [3, 3, 1, 1]).dimensions(), (0, 0));
    }

    #[test]
    fn crop_of_a_one_pixel_image() {
        let img = numbered(1, 1);
        let c = crop(&img, face_square([0.0, 0.0, 1.0, 1.0], 1.3));
        assert_eq!(c.dimensions(), (1, 1));
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 7]);
    }
}
