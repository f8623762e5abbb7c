//! Five-point face alignment as DeepfakeBench prepares its training crops:
//! the similarity transform that best maps the detected landmarks (eyes,
//! nose, mouth corners) onto a standard template, applied with bilinear
//! sampling. An alternative to the axis-aligned square of [`crate::crop`]
//! for classifiers trained on aligned faces.

use image::RgbImage;

use crate::crop::CropRegion;

/// ArcFace's 112 × 112 five-point template (left eye, right eye, nose tip,
/// left and right mouth corners, as seen in the image), which DeepfakeBench
/// (`preprocessing/preprocess.py`, `img_align_crop`) scales to its output.
const TEMPLATE_112: [[f64; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A 2 × 3 affine matrix: `[x', y'] = m · [x, y, 1]`.
pub type Affine = [[f64; 3]; 2];

/// Where the five landmarks go in a `size` × `size` aligned face with a
/// margin of `scale` (DeepfakeBench: 256 and 1.3): the template scaled to
/// `size`, moved by `size × (scale − 1) / 2` and shrunk by `1 / scale`, so
/// the face keeps a margin of context as the square crop does.
pub fn face_template(size: u32, scale: f64) -> [[f64; 2]; 5] {
    let size = f64::from(size);
    let margin = size * (scale - 1.0) / 2.0;
    TEMPLATE_112.map(|[x, y]| {
        [
            (x * size / 112.0 + margin) * size / (size + 2.0 * margin),
            (y * size / 112.0 + margin) * size / (size + 2.0 * margin),
        ]
    })
}

/// The least-squares similarity transform (rotation, uniform scale,
/// translation; no reflection) taking `src` onto `dst`: Umeyama's estimate
/// (skimage's `SimilarityTransform.estimate`), which in two dimensions is
/// the closed form below. `None` when `src` has no extent (all points equal)
/// or a value is not finite.
pub fn similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Option<Affine> {
    assert_eq!(src.len(), dst.len(), "one destination per source point");
    let n = src.len() as f64;
    let mean = |pts: &[[f64; 2]]| {
        let (sx, sy) = pts
            .iter()
            .fold((0.0, 0.0), |(a, b), p| (a + p[0], b + p[1]));
        [sx / n, sy / n]
    };
    let (ms, md) = (mean(src), mean(dst));
    let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (px, py) = (s[0] - ms[0], s[1] - ms[1]);
        let (qx, qy) = (d[0] - md[0], d[1] - md[1]);
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        norm += px * px + py * py;
    }
    // Scale × rotation as one complex factor a + ib: the minimiser of
    // Σ |q − (a + ib) p|² over all of them.
    let (a, b) = (dot / norm, cross / norm);
    let m = [
        [a, -b, md[0] - (a * ms[0] - b * ms[1])],
        [b, a, md[1] - (b * ms[0] + a * ms[1])],
    ];
    (norm > 0.0 && m.iter().flatten().all(|v| v.is_finite())).then_some(m)
}

/// The `size` × `size` face aligned from its five landmarks (pixels of
/// `img`, in [`face_template`]'s order) with margin `scale`, or `None` when
/// the landmarks do not define a transform. Each output pixel (x, y) samples
/// `img` bilinearly at the inverse transform of (x, y) (OpenCV's
/// `warpAffine` convention: pixel centres at integer coordinates), with zero
/// outside the image, as `cv2.warpAffine`'s default border.
pub fn align_face(
    img: &RgbImage,
    landmarks: &[[f32; 2]; 5],
    size: u32,
    scale: f64,
) -> Option<RgbImage> {
    let src = landmarks.map(|[x, y]| [f64::from(x), f64::from(y)]);
    let forward = similarity(&src, &face_template(size, scale))?;
    Some(warp(img, &invert(&forward)?, size))
}

/// The bounding square, in pixels of the image, of the region
/// [`align_face`] samples for the same arguments: a record of where the
/// aligned face came from (the aligned crop itself is rotated).
pub fn aligned_region(landmarks: &[[f32; 2]; 5], size: u32, scale: f64) -> Option<CropRegion> {
    let src = landmarks.map(|[x, y]| [f64::from(x), f64::from(y)]);
    let inverse = invert(&similarity(&src, &face_template(size, scale))?)?;
    let s = f64::from(size);
    let corners = [[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]].map(|[x, y]| {
        [
            inverse[0][0] * x + inverse[0][1] * y + inverse[0][2],
            inverse[1][0] * x + inverse[1][1] * y + inverse[1][2],
        ]
    });
    let bound = |axis: usize, pick: fn(f64, f64) -> f64, start: f64| {
        corners.iter().map(|c| c[axis]).fold(start, pick)
    };
    let (x0, x1) = (
        bound(0, f64::min, f64::INFINITY),
        bound(0, f64::max, f64::NEG_INFINITY),
    );
    let (y0, y1) = (
        bound(1, f64::min, f64::INFINITY),
        bound(1, f64::max, f64::NEG_INFINITY),
    );
    let region = [x0.floor(), y0.floor(), x1.ceil(), y1.ceil()];
    // Saturating casts, as for the square crop.
    region
        .iter()
        .all(|v| v.is_finite())
        .then(|| region.map(|v| v as i64))
}

/// The inverse of a similarity (or any invertible affine) matrix.
fn invert(m: &Affine) -> Option<Affine> {
    let [[a, b, tx], [c, d, ty]] = *m;
    let det = a * d - b * c;
    if det == 0.0 || !det.is_finite() {
        return None;
    }
    let (ia, ib, ic, id) = (d / det, -b / det, -c / det, a / det);
    Some([
        [ia, ib, -(ia * tx + ib * ty)],
        [ic, id, -(ic * tx + id * ty)],
    ])
}

/// Samples `img` at `inverse · (x, y)` for every pixel of a `size` × `size`
/// output.
fn warp(img: &RgbImage, inverse: &Affine, size: u32) -> RgbImage {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let src = img.as_raw();
    let texel = |x: i64, y: i64, c: usize| -> f64 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            f64::from(src[3 * (y * w + x) as usize + c])
        }
    };
    let [[a, b, tx], [c, d, ty]] = *inverse;
    RgbImage::from_fn(size, size, |u, v| {
        let (u, v) = (f64::from(u), f64::from(v));
        let (sx, sy) = (a * u + b * v + tx, c * u + d * v + ty);
        let (fx, fy) = (sx.floor(), sy.floor());
        let (wx, wy) = (sx - fx, sy - fy);
        // Far outside, the i64 casts saturate and every texel reads zero.
        let (x0, y0) = (fx as i64, fy as i64);
        let mut px = [0u8; 3];
        for (ch, out) in px.iter_mut().enumerate() {
            let top = texel(x0, y0, ch) * (1.0 - wx) + texel(x0.saturating_add(1), y0, ch) * wx;
            let bottom = texel(x0, y0.saturating_add(1), ch) * (1.0 - wx)
                + texel(x0.saturating_add(1), y0.saturating_add(1), ch) * wx;
            *out = (top * (1.0 - wy) + bottom * wy).round().clamp(0.0, 255.0) as u8;
        }
        image::Rgb(px)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(m: &Affine, p: [f64; 2]) -> [f64; 2] {
        [
            m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
            m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
        ]
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (s, theta, t) = (1.7_f64, 0.4_f64, [12.0, -30.0]);
        let truth: Affine = [
            [s * theta.cos(), -s * theta.sin(), t[0]],
            [s * theta.sin(), s * theta.cos(), t[1]],
        ];
        let src = TEMPLATE_112;
        let dst = src.map(|p| apply(&truth, p));
        let m = similarity(&src, &dst).unwrap();
        for (row, want) in m.iter().flatten().zip(truth.iter().flatten()) {
            assert!((row - want).abs() < 1e-9, "{m:?} vs {truth:?}");
        }
    }

    #[test]
    fn similarity_is_least_squares_without_reflection() {
        // A mirrored point set: the best similarity cannot mirror it back,
        // so the fit has a residual, and its determinant stays positive.
        let src = TEMPLATE_112;
        let dst = src.map(|[x, y]| [-x, y]);
        let m = similarity(&src, &dst).unwrap();
        assert!(m[0][0] * m[1][1] - m[0][1] * m[1][0] >= 0.0);
        // The residual equals what no rotation can remove: perturbing the
        // solution never lowers it.
        let cost = |m: &Affine| -> f64 {
            src.iter()
                .zip(&dst)
                .map(|(p, q)| {
                    let r = apply(m, *p);
                    (r[0] - q[0]).powi(2) + (r[1] - q[1]).powi(2)
                })
                .sum()
        };
        let best = cost(&m);
        for (i, j, delta) in [(0, 0, 1e-3), (0, 1, 1e-3), (0, 2, 0.1), (1, 2, -0.1)] {
            let mut other = m;
            other[i][j] += delta;
            if (i, j) == (0, 0) {
                other[1][1] += delta;
            }
            if (i, j) == (0, 1) {
                other[1][0] -= delta;
            }
            assert!(cost(&other) > best);
        }
    }

    #[test]
    fn degenerate_landmarks_give_none() {
        let same = [[5.0, 5.0]; 5];
        assert!(similarity(&same, &TEMPLATE_112).is_none());
        let img = RgbImage::new(10, 10);
        assert!(align_face(&img, &[[3.0, 3.0]; 5], 256, 1.3).is_none());
        let mut nan = [[1.0_f32, 2.0]; 5];
        nan[0] = [f32::NAN, 0.0];
        assert!(align_face(&img, &nan, 256, 1.3).is_none());
    }

    #[test]
    fn template_for_112_without_margin_is_arcface() {
        for (p, q) in face_template(112, 1.0).iter().zip(TEMPLATE_112) {
            assert!((p[0] - q[0]).abs() < 1e-12 && (p[1] - q[1]).abs() < 1e-12);
        }
        // The margin shrinks the template towards the centre of the output.
        let t = face_template(256, 1.3);
        let centre = 128.0;
        for (p, q) in t.iter().zip(face_template(256, 1.0)) {
            assert!((p[0] - centre).abs() < (q[0] - centre).abs());
        }
    }

    #[test]
    fn aligning_template_landmarks_is_the_identity() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 9]));
        let landmarks = face_template(64, 1.3).map(|[x, y]| [x as f32, y as f32]);
        let out = align_face(&img, &landmarks, 64, 1.3).unwrap();
        let diff = out
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(diff <= 1, "identity warp moved a sample by {diff}");
    }

    #[test]
    fn aligning_a_scaled_face_undoes_the_scale() {
        // The image is the 64 × 64 pattern drawn at twice its size: its
        // landmarks are the template's doubled, and alignment brings the
        // pattern back to 64 × 64.
        let pattern = |x: f64, y: f64| ((x * 4.0) as u8, (y * 3.0) as u8);
        let img = RgbImage::from_fn(128, 128, |x, y| {
            let (r, g) = pattern(f64::from(x) / 2.0, f64::from(y) / 2.0);
            image::Rgb([r, g, 0])
        });
        let landmarks = face_template(64, 1.3).map(|[x, y]| [(2.0 * x) as f32, (2.0 * y) as f32]);
        let out = align_face(&img, &landmarks, 64, 1.3).unwrap();
        for (x, y) in [(10, 10), (32, 40), (60, 5)] {
            let (r, g) = pattern(f64::from(x), f64::from(y));
            let got = out.get_pixel(x, y).0;
            assert!(
                got[0].abs_diff(r) <= 4 && got[1].abs_diff(g) <= 4,
                "{x},{y}: {got:?}"
            );
        }
    }

    #[test]
    fn outside_the_image_is_black() {
        let img = RgbImage::from_pixel(8, 8, image::Rgb([200, 200, 200]));
        // Landmarks far to the right: the template's surroundings lie
        // outside the image.
        let landmarks = TEMPLATE_112.map(|[x, y]| [(x / 20.0) as f32 + 6.0, (y / 20.0) as f32]);
        let out = align_face(&img, &landmarks, 32, 1.3).unwrap();
        assert_eq!(out.get_pixel(31, 31).0, [0, 0, 0]);
    }
}
