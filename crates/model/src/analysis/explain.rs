//! An image's explanation, after its score: what an item that asked for
//! one keeps while its rows are scored (their pixels and a picture to
//! draw on, [`Explainable`]), and how the scored items' rows are explained
//! together in one request to the model thread, their maps attached to
//! the results and drawn over the image.
//!
//! Explaining after scoring, not instead of it, keeps every score the
//! same whether or not it was explained, and lets the target depend on
//! the score (`predicted`; later, explanations only at a verdict).

use dfscan_core::explain::{Grid, RowMap};
use dfscan_core::{ExplainMethod, ExplainRequest, ExplainTarget, Explanation, ImageScore, Outcome};
use dfscan_imaging::overlay::{self, PlacedMap};
use dfscan_imaging::RgbImage;

use super::Analysis;

/// What an item asking for an explanation keeps until its score is back.
#[derive(Clone)]
pub struct Explainable {
    request: ExplainRequest,
    /// The item's rows' pixel values, as the classifier got them.
    pixels: Vec<f32>,
    /// The picture to draw on ([`overlay::overlay_base`]), its scale from
    /// the image's pixels, and the image's own size.
    base: RgbImage,
    scale: f32,
    size: (u32, u32),
}

impl std::fmt::Debug for Explainable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Explainable")
            .field("request", &self.request)
            .field("values", &self.pixels.len())
            .field("base", &self.base.dimensions())
            .finish()
    }
}

impl Explainable {
    pub(super) fn keep(request: ExplainRequest, pixels: &[f32], image: &RgbImage) -> Self {
        let (base, scale) = overlay::overlay_base(image);
        Self {
            request,
            pixels: pixels.to_vec(),
            base,
            scale,
            size: image.dimensions(),
        }
    }
}

/// One image's rows to explain, per face in the result's order, then the
/// whole image when it was scored whole: the region the row's map covers
/// and the label it explains.
type Rows = Vec<([f32; 4], usize)>;

impl Analysis {
    /// Explains `items` (scored images with what they kept), one request
    /// to the model thread per method, and attaches each one's
    /// [`Explanation`], its overlay PNG included. Blocks on the model
    /// thread: async callers run it on a blocking thread. A failure leaves
    /// the scores unexplained and is logged: an explanation never costs an
    /// item its score.
    pub(super) fn explain_scored(&self, items: Vec<(&mut ImageScore, Explainable)>) {
        let (relevance, rollout): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|(_, kept)| kept.request.method == ExplainMethod::Relevance);
        for (method, group) in [
            (ExplainMethod::Relevance, relevance),
            (ExplainMethod::Rollout, rollout),
        ] {
            self.explain_by(method, group);
        }
    }

    fn explain_by(&self, method: ExplainMethod, items: Vec<(&mut ImageScore, Explainable)>) {
        let info = self.engine.info();
        let mut pixels = Vec::new();
        let mut targets = Vec::new();
        let mut planned = Vec::with_capacity(items.len());
        for (score, kept) in items {
            let Some(rows) = rows(score, &kept, &info.labels, info.fake_index) else {
                continue;
            };
            if rows.len() * info.pixels_per_image() != kept.pixels.len() {
                tracing::warn!("an explanation's rows do not match the item's pixels; left out");
                continue;
            }
            pixels.extend_from_slice(&kept.pixels);
            targets.extend(rows.iter().map(|(_, target)| *target));
            planned.push((score, kept, rows));
        }
        if targets.is_empty() {
            return;
        }
        let rows = targets.len();
        let maps = match self.engine.explain_blocking(pixels, rows, method, &targets) {
            Ok(maps) => maps,
            Err(e) => {
                tracing::warn!(error = %e, items = planned.len(), "explanations failed; the scores stand");
                return;
            }
        };
        let side = info.patch_grid;
        let mut maps = maps.chunks(side * side);
        for (score, kept, rows) in planned {
            let grids: Vec<(Grid, [f32; 4], usize)> = rows
                .iter()
                .zip(maps.by_ref())
                .filter_map(|(&(region, target), raw)| {
                    Grid::normalised(side, raw).map(|g| (g, region, target))
                })
                .collect();
            if grids.len() != rows.len() {
                tracing::warn!("an explanation came back short; left out");
                continue;
            }
            score.explanation = Some(explanation(&*score, &kept, grids, &info.labels));
        }
    }
}

/// The rows of a scored image and their target classes; `None` when it
/// has none (no face in mode `require`).
fn rows(
    score: &ImageScore,
    kept: &Explainable,
    labels: &[String],
    fake_index: usize,
) -> Option<Rows> {
    let target = |label: &str| match kept.request.target {
        ExplainTarget::Fake => fake_index,
        ExplainTarget::Predicted => labels.iter().position(|l| l == label).unwrap_or(fake_index),
    };
    let mut regions: Rows = score
        .faces
        .iter()
        .flatten()
        .map(|f| (f.crop.map(|v| v as f32), target(&f.prediction.label)))
        .collect();
    let whole = score.faces.is_none() || score.outcome == Outcome::WholeImage;
    if whole {
        let prediction = score.prediction.as_ref()?;
        let (w, h) = kept.size;
        regions.push(([0.0, 0.0, w as f32, h as f32], target(&prediction.label)));
    }
    (!regions.is_empty()).then_some(regions)
}

/// The explanation of `score` from its rows' grids (in [`rows`]' order):
/// the decisive map (the whole image's, or the most fake face's), each
/// face's, and the overlay.
fn explanation(
    score: &ImageScore,
    kept: &Explainable,
    grids: Vec<(Grid, [f32; 4], usize)>,
    labels: &[String],
) -> Explanation {
    let placed: Vec<PlacedMap<'_>> = grids
        .iter()
        .map(|(grid, region, _)| PlacedMap {
            region: *region,
            side: grid.side,
            values: &grid.values,
        })
        .collect();
    let boxes: Vec<[f32; 4]> = score.faces.iter().flatten().map(|f| f.bbox).collect();
    let picture = overlay::render(&kept.base, kept.scale, &placed, &boxes);
    let png_bytes = overlay::png_bytes(&picture).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "an explanation's overlay could not be encoded");
        Vec::new()
    });
    let faces = score.faces.as_ref().map_or(0, Vec::len);
    let mut maps: Vec<RowMap> = grids
        .into_iter()
        .map(|(grid, _, target)| RowMap {
            target: labels[target].clone(),
            grid,
        })
        .collect();
    let decisive = if maps.len() > faces {
        maps.pop().expect("the whole image's map")
    } else {
        let most_fake = score
            .faces
            .iter()
            .flatten()
            .enumerate()
            .max_by(|a, b| {
                a.1.prediction
                    .fake_score
                    .total_cmp(&b.1.prediction.fake_score)
            })
            .map_or(0, |(i, _)| i);
        maps[most_fake].clone()
    };
    Explanation {
        method: kept.request.method,
        decisive,
        faces: maps,
        png: None,
        png_bytes,
    }
}
