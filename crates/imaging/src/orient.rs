//! Lossless transpositions for EXIF orientations 2..=8.
//!
//! Mirrors the `Image.Transpose` methods `exif_transpose` picks, so that the
//! upright image matches Pillow's pixel for pixel.

use image::RgbImage;

use crate::exif::OrientationCode;

/// Source coordinate of output pixel `(x, y)`, given the source `(w, h)`.
type SourceOf = fn(u32, u32, u32, u32) -> (u32, u32);

/// Applies the transposition `ImageOps.exif_transpose` uses for `code`
/// (1 and unknown codes leave the image as is).
pub(crate) fn apply(img: RgbImage, code: OrientationCode) -> RgbImage {
    let (w, h) = img.dimensions();
    let (out_w, out_h, map): (u32, u32, SourceOf) = match code {
        // FLIP_LEFT_RIGHT
        2 => (w, h, |x, y, w, _| (w - 1 - x, y)),
        // ROTATE_180
        3 => (w, h, |x, y, w, h| (w - 1 - x, h - 1 - y)),
        // FLIP_TOP_BOTTOM
        4 => (w, h, |x, y, _, h| (x, h - 1 - y)),
        // TRANSPOSE
        5 => (h, w, |x, y, _, _| (y, x)),
        // ROTATE_270 (counter-clockwise), i.e. 90 degrees clockwise
        6 => (h, w, |x, y, _, h| (y, h - 1 - x)),
        // TRANSVERSE
        7 => (h, w, |x, y, w, h| (w - 1 - y, h - 1 - x)),
        // ROTATE_90 (counter-clockwise)
        8 => (h, w, |x, y, w, _| (w - 1 - y, x)),
        _ => return img,
    };
    RgbImage::from_fn(out_w, out_h, |x, y| {
        let (sx, sy) = map(x, y, w, h);
        *img.get_pixel(sx, sy)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientations_match_pillow_transposes() {
        // 3x2 image with distinct pixels a..f:
        // a b c
        // d e f
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(y * 3 + x) as u8, 0, 0]));
        let rows = |img: &RgbImage| -> Vec<Vec<u8>> {
            (0..img.height())
                .map(|y| (0..img.width()).map(|x| img.get_pixel(x, y).0[0]).collect())
                .collect()
        };
        assert_eq!(rows(&apply(img.clone(), 1)), [[0, 1, 2], [3, 4, 5]]);
        assert_eq!(rows(&apply(img.clone(), 2)), [[2, 1, 0], [5, 4, 3]]);
        assert_eq!(rows(&apply(img.clone(), 3)), [[5, 4, 3], [2, 1, 0]]);
        assert_eq!(rows(&apply(img.clone(), 4)), [[3, 4, 5], [0, 1, 2]]);
        assert_eq!(rows(&apply(img.clone(), 5)), [[0, 3], [1, 4], [2, 5]]);
        assert_eq!(rows(&apply(img.clone(), 6)), [[3, 0], [4, 1], [5, 2]]);
        assert_eq!(rows(&apply(img.clone(), 7)), [[5, 2], [4, 1], [3, 0]]);
        assert_eq!(rows(&apply(img.clone(), 8)), [[2, 5], [1, 4], [0, 3]]);
        assert_eq!(rows(&apply(img, 9)), [[0, 1, 2], [3, 4, 5]]);
    }
}
