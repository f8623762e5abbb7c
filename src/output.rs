//! Writing per-image results as a table, JSON Lines or CSV. Every format
//! carries the same facts: path, label, every label's probability,
//! fake_score, the model identity, the outcome, the faces scored (with the
//! detector's identity) and the per-item error; results that came through
//! the cluster also carry the item's `id`. The table shows the number of
//! faces; CSV gives the faces as one JSON array per row and a video's
//! timeline (duration, frames, tracks, partial) as one JSON object.
//!
//! A JSON line is the result record of `docs/result-record.schema.json`,
//! which the Python client's `ItemResult.to_json()` writes byte for byte
//! too: keep the two in step (tests/python_client.rs compares them).
//!
//! One result is one line in every format (CSV fields have their line
//! breaks replaced), so a results file can be resumed by counting lines.

use std::collections::BTreeMap;
use std::io::Write;

use clap::ValueEnum;
use dfscan_core::prediction::ScoreMap;
use dfscan_core::video::{FrameScore, TrackScore};
use dfscan_core::{Explanation, FaceScore, ItemScore, ModelIdentity, Outcome, Prediction};
use serde::Serialize;

/// Standard output for results. A reader that stops reading (`| head`) is
/// no failure of the command: its broken pipe is told apart, as
/// [`StdoutClosed`], from other write errors (a network socket's EPIPE is
/// a real failure), so that `main` can end quietly on it alone.
pub struct ResultsStdout(std::io::Stdout);

pub fn stdout() -> ResultsStdout {
    ResultsStdout(std::io::stdout())
}

impl Write for ResultsStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(closed)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(closed)
    }
}

fn closed(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::io::Error::new(std::io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

/// Standard output was closed by its reader.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Whether `error` comes from standard output closing under
/// [`ResultsStdout`].
pub fn stdout_closed(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

/// One result to write.
pub struct Row<'a> {
    /// The item id, for results from the cluster.
    pub id: Option<&'a str>,
    pub path: &'a str,
    pub result: Result<&'a ItemScore, &'a str>,
    pub model: &'a ModelIdentity,
    /// The detector that looked for the image's faces (results with faces).
    pub face_detector: Option<&'a ModelIdentity>,
    /// The job policy's verdict, for results from the cluster.
    pub verdict: Option<&'a str>,
    /// The item's metadata, for results from the cluster.
    pub metadata: Option<&'a std::collections::HashMap<String, String>>,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    path: &'a str,
    /// `image` or `video`; none for an error (what the input was may be
    /// unknown).
    media: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_s: Option<f64>,
    label: Option<&'a str>,
    scores: Option<ScoreMap<'a>>,
    fake_score: Option<f32>,
    model: &'a ModelIdentity,
    #[serde(skip_serializing_if = "Option::is_none")]
    face_detector: Option<&'a ModelIdentity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    faces: Option<&'a [FaceScore]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames: Option<&'a [FrameScore]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracks: Option<&'a [TrackScore]>,
    outcome: &'static str,
    /// Why a video's result covers fewer frames than asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    partial: Option<&'a str>,
    /// The maps of `score --explain` (JSON Lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a Explanation>,
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verdict: Option<&'a str>,
    /// Sorted by key, so that the same metadata makes the same line (the
    /// API's map has no order).
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<&'a str, &'a str>>,
}

/// The CSV cells after `error`: the outcome, the faces (JSON), the media
/// and a video's timeline (JSON).
struct ResultCells<'a> {
    outcome: &'static str,
    faces: Option<&'a [FaceScore]>,
    media: &'static str,
    video: Option<String>,
}

pub struct ResultWriter<W: Write> {
    out: W,
    format: Format,
    with_id: bool,
    /// CSV score columns; `None` until the first scored row names them.
    labels: Option<Vec<String>>,
    /// CSV rows that arrived before the labels were known (errors only),
    /// as the fields before and after the score columns.
    held: Vec<(Vec<String>, Vec<String>)>,
}

impl<W: Write> ResultWriter<W> {
    /// `labels` may be unknown (results streamed from the cluster): the CSV
    /// header is then written with the first scored row. `header_written`
    /// is for appending to a file that has one already.
    pub fn new(
        mut out: W,
        format: Format,
        labels: Option<&[String]>,
        with_id: bool,
        header_written: bool,
    ) -> std::io::Result<Self> {
        if format == Format::Table && !header_written {
            writeln!(
                out,
                "{:<10} {:>10} {:>5}  path  error",
                "label", "fake_score", "faces"
            )?;
        }
        let mut writer = Self {
            out,
            format,
            with_id,
            labels: None,
            held: Vec::new(),
        };
        if let Some(labels) = labels {
            writer.set_labels(labels.to_vec(), header_written)?;
        }
        Ok(writer)
    }

    fn set_labels(&mut self, labels: Vec<String>, header_written: bool) -> std::io::Result<()> {
        if self.format == Format::Csv && !header_written {
            write_csv_row(&mut self.out, &csv_header(&labels, self.with_id))?;
        }
        let width = labels.len();
        self.labels = Some(labels);
        for (mut fields, tail) in std::mem::take(&mut self.held) {
            fields.extend(std::iter::repeat_n(String::new(), width));
            fields.extend(tail);
            write_csv_row(&mut self.out, &fields)?;
        }
        Ok(())
    }

    pub fn write(&mut self, row: &Row) -> std::io::Result<()> {
        let (score, error) = match row.result {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let pred = score.and_then(ItemScore::prediction);
        let (image, video) = match score {
            Some(ItemScore::Image(s)) => (Some(s), None),
            Some(ItemScore::Video(v)) => (None, Some(v)),
            None => (None, None),
        };
        let faces = image.and_then(|s| s.faces.as_deref());
        // A video's frames say whether faces were looked for.
        let looked =
            faces.is_some() || video.is_some_and(|v| v.frames.iter().any(|f| f.faces.is_some()));
        let outcome = score.map_or(Outcome::Error, ItemScore::outcome).name();
        match self.format {
            Format::Jsonl => {
                let line = JsonLine {
                    id: row.id.filter(|_| self.with_id),
                    path: row.path,
                    media: score.map(ItemScore::media),
                    duration_s: video.map(|v| v.duration_s),
                    label: pred.map(|p| p.label.as_str()),
                    scores: pred.map(|p| ScoreMap(&p.scores)),
                    fake_score: pred.map(|p| p.fake_score),
                    model: row.model,
                    face_detector: row.face_detector.filter(|_| looked),
                    faces,
                    frames: video.map(|v| v.frames.as_slice()),
                    tracks: video.map(|v| v.tracks.as_slice()),
                    outcome,
                    partial: video.and_then(|v| v.partial.as_deref()),
                    explanation: image.and_then(|s| s.explanation.as_ref()),
                    error,
                    verdict: row.verdict.filter(|v| !v.is_empty()),
                    metadata: row
                        .metadata
                        .filter(|m| !m.is_empty())
                        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()),
                };
                serde_json::to_writer(&mut self.out, &line)?;
                writeln!(self.out)?;
            }
            Format::Csv => {
                let video_json = video
                    .map(|v| serde_json::to_string(&v.timeline()).map_err(std::io::Error::other))
                    .transpose()?;
                let cells = ResultCells {
                    outcome,
                    faces,
                    media: score.map(ItemScore::media).unwrap_or_default(),
                    video: video_json,
                };
                self.write_csv(row, pred, error, cells)?
            }
            Format::Table => {
                let faces = faces.map_or("-".to_string(), |f| f.len().to_string());
                match pred {
                    Some(p) => writeln!(
                        self.out,
                        "{:<10} {:>10.4} {:>5}  {}",
                        p.label, p.fake_score, faces, row.path
                    )?,
                    None => writeln!(
                        self.out,
                        "{:<10} {:>10} {:>5}  {}  {}",
                        "-",
                        "-",
                        faces,
                        row.path,
                        error.unwrap_or(outcome)
                    )?,
                }
            }
        }
        Ok(())
    }

    fn write_csv(
        &mut self,
        row: &Row,
        pred: Option<&Prediction>,
        error: Option<&str>,
        cells: ResultCells,
    ) -> std::io::Result<()> {
        let ResultCells {
            outcome,
            faces,
            media,
            video,
        } = cells;
        if self.labels.is_none() {
            if let Some(p) = pred {
                let labels = p.scores.iter().map(|(l, _)| l.clone()).collect();
                self.set_labels(labels, false)?;
            }
        }
        let mut fields = Vec::new();
        if self.with_id {
            fields.push(row.id.unwrap_or_default().to_string());
        }
        fields.extend([
            row.path.to_string(),
            pred.map(|p| p.label.clone()).unwrap_or_default(),
            pred.map(|p| p.fake_score.to_string()).unwrap_or_default(),
        ]);
        // Score columns go between fake_score and model; error rows leave
        // them empty, so they can be written before the labels are known.
        let scores: Vec<String> = pred
            .map(|p| p.scores.iter().map(|(_, s)| s.to_string()).collect())
            .unwrap_or_default();
        let mut tail = vec![
            row.model.name.clone(),
            row.model.sha256.clone(),
            error.unwrap_or_default().to_string(),
            outcome.to_string(),
            faces
                .map(|f| serde_json::to_string(f).map_err(std::io::Error::other))
                .transpose()?
                .unwrap_or_default(),
            media.to_string(),
            video.unwrap_or_default(),
        ];
        if self.with_id {
            tail.push(row.verdict.unwrap_or_default().to_string());
        }
        match &self.labels {
            Some(labels) => {
                let width = labels.len();
                fields.extend(
                    scores
                        .into_iter()
                        .chain(std::iter::repeat(String::new()))
                        .take(width),
                );
                fields.extend(tail);
                write_csv_row(&mut self.out, &fields)
            }
            None => {
                self.held.push((fields, tail));
                Ok(())
            }
        }
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        if self.format == Format::Csv && self.labels.is_none() {
            self.set_labels(Vec::new(), false)?;
        }
        self.out.flush()
    }
}

pub fn csv_header(labels: &[String], with_id: bool) -> Vec<String> {
    let mut header: Vec<String> = Vec::new();
    if with_id {
        header.push("id".into());
    }
    header.extend(["path".into(), "label".into(), "fake_score".into()]);
    header.extend(labels.iter().map(|l| format!("score_{l}")));
    header.extend(
        [
            "model",
            "model_sha256",
            "error",
            "outcome",
            "faces",
            "media",
            "video",
        ]
        .map(String::from),
    );
    if with_id {
        header.push("verdict".into());
    }
    header
}

/// One CSV record with proper quoting, on one line.
fn write_csv_row(out: &mut impl Write, row: &[String]) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(row.iter().map(|f| f.replace(['\r', '\n'], " ")))?;
    w.flush()
}
