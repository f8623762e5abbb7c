//! What to train on: `DATA/train/` (and optionally `DATA/val/`) with one
//! subfolder per label, or `DATA/train.csv|jsonl` (and `val.csv|jsonl`)
//! manifests of `path,label` rows, paths relative to the manifest. Without
//! a validation split, `val_fraction` of each class is held out (seeded);
//! with one, a `val_fraction` is refused: it would be ignored, and a run
//! validated on other images than its author meant.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Deserialize;

use crate::error::{io_error, TrainError};

/// One labelled image; `label` indexes the label list it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

/// The labelled images of one training run.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Class names in class-index order.
    pub labels: Vec<String>,
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
}

impl Splits {
    /// Images per class in the training split.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.labels.len()];
        for s in &self.train {
            counts[s.label] += 1;
        }
        counts
    }

    /// Renumbers the classes into `order` (the same names, compared
    /// case-insensitively): a fine-tuned head keeps its class indices.
    pub fn reorder_labels(&mut self, order: &[String]) {
        let map: Vec<usize> = self
            .labels
            .iter()
            .map(|l| {
                order
                    .iter()
                    .position(|o| o.eq_ignore_ascii_case(l))
                    .expect("the caller checked both name the same labels")
            })
            .collect();
        for s in self.train.iter_mut().chain(self.val.iter_mut()) {
            s.label = map[s.label];
        }
        self.labels = order.to_vec();
    }
}

/// Unlabelled rows of a split, before label names become indices.
type Rows = Vec<(PathBuf, String)>;

/// Reads the splits under `data`; `val_fraction` is the share held out
/// when there is no validation split, and an error when there is one.
pub fn discover(data: &Path, val_fraction: Option<f64>, seed: u64) -> Result<Splits, TrainError> {
    let bad = |reason: String| TrainError::Data {
        path: data.to_path_buf(),
        reason,
    };
    let train = read_split(data, "train")?.ok_or_else(|| {
        bad("expected a train/ folder (one subfolder per label) or a train.csv / train.jsonl manifest".into())
    })?;
    let labels: Vec<String> = train
        .iter()
        .map(|(_, l)| l.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        return Err(bad(format!(
            "the training split has {} label(s) ({}); a classifier needs at least two",
            labels.len(),
            labels.join(", ")
        )));
    }
    let index = |rows: Rows, split: &str| -> Result<Vec<Sample>, TrainError> {
        rows.into_iter()
            .map(|(path, name)| {
                let label = labels
                    .iter()
                    .position(|l| l.eq_ignore_ascii_case(&name))
                    .ok_or_else(|| {
                        bad(format!(
                            "{split} label {name:?} is not among the training labels ({})",
                            labels.join(", ")
                        ))
                    })?;
                Ok(Sample { path, label })
            })
            .collect()
    };
    let train = index(train, "train")?;
    let (train, val) = match (read_split(data, "val")?, val_fraction) {
        (Some(_), Some(fraction)) => {
            return Err(bad(format!(
                "it has a validation split (val/, val.csv or val.jsonl), and val_fraction is \
                 {fraction} (--val-fraction, DFSCAN_TRAIN__VAL_FRACTION or train.val_fraction): \
                 the split would be used and nothing held out; leave val_fraction unset, or \
                 remove the split to hold out a share of train"
            )))
        }
        (Some(rows), None) => (train, index(rows, "val")?),
        (None, fraction) => hold_out(train, labels.len(), fraction.unwrap_or(0.0), seed),
    };
    Ok(Splits { labels, train, val })
}

/// The rows of split `name`: a folder of label folders or a manifest.
fn read_split(data: &Path, name: &str) -> Result<Option<Rows>, TrainError> {
    let folder = data.join(name);
    if folder.is_dir() {
        let mut rows = Vec::new();
        for (label, images) in
            dfscan_imaging::label_folders(&folder, dfscan_imaging::IMAGE_EXTENSIONS)
                .map_err(io_error(&folder))?
        {
            rows.extend(images.into_iter().map(|p| (p, label.clone())));
        }
        if rows.is_empty() {
            return Err(TrainError::Data {
                path: folder,
                reason: "no images in label subfolders".into(),
            });
        }
        return Ok(Some(rows));
    }
    for ext in ["csv", "jsonl"] {
        let manifest = data.join(format!("{name}.{ext}"));
        if manifest.is_file() {
            return read_manifest(&manifest).map(Some);
        }
    }
    Ok(None)
}

#[derive(Deserialize)]
struct Row {
    path: PathBuf,
    label: String,
}

/// `path,label` rows (CSV with a header, or JSON lines); relative paths
/// are resolved against the manifest's folder.
fn read_manifest(manifest: &Path) -> Result<Rows, TrainError> {
    let bad = |line: usize, reason: String| TrainError::Data {
        path: manifest.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let base = manifest.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(manifest).map_err(io_error(manifest))?;
    let rows: Vec<Row> = if manifest.extension().is_some_and(|e| e == "csv") {
        csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .enumerate()
            .map(|(i, row)| row.map_err(|e| bad(i + 2, e.to_string())))
            .collect::<Result<_, _>>()?
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| bad(i + 1, e.to_string())))
            .collect::<Result<_, _>>()?
    };
    if rows.is_empty() {
        return Err(bad(1, "the manifest has no rows".into()));
    }
    Ok(rows
        .into_iter()
        .map(|r| (base.join(r.path), r.label.trim().to_string()))
        .collect())
}

/// Moves `fraction` of each class (rounded, at least one image of every
/// class with two or more) from `train` to a validation split.
fn hold_out(
    train: Vec<Sample>,
    classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<Sample>, Vec<Sample>) {
    if fraction <= 0.0 {
        return (train, Vec::new());
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed_7a1d);
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for class in 0..classes {
        let mut members: Vec<Sample> = train.iter().filter(|s| s.label == class).cloned().collect();
        members.shuffle(&mut rng);
        let n = ((members.len() as f64 * fraction).round() as usize)
            .max(usize::from(members.len() >= 2))
            .min(members.len().saturating_sub(1));
        held.extend(members.drain(..n));
        kept.extend(members);
    }
    // Keep the listing order, so the split does not depend on class order.
    let order = |v: &mut Vec<Sample>| v.sort_by(|a, b| a.path.cmp(&b.path));
    order(&mut kept);
    order(&mut held);
    (kept, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, files: &[&str]) {
        for f in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
    }

    #[test]
    fn folders_give_sorted_labels_and_val_must_match() {
        let dir = tempfile::tempdir().unwrap();
        touch(
            dir.path(),
            &[
                "train/Real/a.png",
                "train/Fake/b.png",
                "train/Fake/c.png",
                "val/fake/d.png",
            ],
        );
        let s = discover(dir.path(), None, 0).unwrap();
        assert_eq!(s.labels, ["Fake", "Real"]);
        assert_eq!(s.class_counts(), [2, 1]);
        assert_eq!(s.val.len(), 1);
        assert_eq!(s.val[0].label, 0);

        // A share to hold out beside a val split would be ignored.
        let err = discover(dir.path(), Some(0.2), 0).unwrap_err().to_string();
        assert!(
            err.contains("validation split") && err.contains("0.2"),
            "{err}"
        );

        touch(dir.path(), &["val/Unsure/e.png"]);
        let err = discover(dir.path(), None, 0).unwrap_err().to_string();
        assert!(err.contains("\"Unsure\" is not among"), "{err}");
    }

    #[test]
    fn manifests_resolve_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.csv"),
            "path,label\nimgs/a.png,Real\n/abs/b.png,Fake\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("val.jsonl"),
            "{\"path\":\"c.png\",\"label\":\"Real\"}\n\n",
        )
        .unwrap();
        let s = discover(dir.path(), None, 0).unwrap();
        assert_eq!(s.train[0].path, dir.path().join("imgs/a.png"));
        assert_eq!(s.train[1].path, PathBuf::from("/abs/b.png"));
        assert_eq!(s.val[0].path, dir.path().join("c.png"));
        assert_eq!(s.val[0].label, 1);

        std::fs::write(dir.path().join("val.jsonl"), "{\"path\":\"c.png\"}\n").unwrap();
        let err = discover(dir.path(), None, 0).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("label"), "{err}");
    }

    #[test]
    fn hold_out_is_stratified_and_seeded() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<String> = (0..20)
            .map(|i| format!("train/{}/{i:02}.png", if i < 15 { "Real" } else { "Fake" }))
            .collect();
        touch(
            dir.path(),
            &files.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        );
        let a = discover(dir.path(), Some(0.2), 7).unwrap();
        assert_eq!(a.val.iter().filter(|s| s.label == 1).count(), 3);
        assert_eq!(a.val.iter().filter(|s| s.label == 0).count(), 1);
        assert_eq!(a.train.len(), 16);
        assert_eq!(discover(dir.path(), Some(0.2), 7).unwrap().val, a.val);
        assert!(discover(dir.path(), Some(0.0), 7).unwrap().val.is_empty());
    }

    #[test]
    fn one_label_is_not_a_classifier() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), &["train/Real/a.png"]);
        let err = discover(dir.path(), None, 0).unwrap_err().to_string();
        assert!(err.contains("at least two"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(discover(empty.path(), None, 0)
            .unwrap_err()
            .to_string()
            .contains("train/"));
    }
}
