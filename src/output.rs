//! Writing per-image results as a table, JSON Lines or CSV. Every format
//! carries the same facts: path, label, every label's probability,
//! fake_score, the model identity and the per-item error.

use std::io::Write;
use std::path::Path;

use clap::ValueEnum;
use dfscan_core::prediction::ScoreMap;
use dfscan_core::{ModelIdentity, Prediction};
use serde::Serialize;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    path: &'a str,
    label: Option<&'a str>,
    scores: Option<ScoreMap<'a>>,
    fake_score: Option<f32>,
    model: &'a ModelIdentity,
    error: Option<&'a str>,
}

pub struct ResultWriter<W: Write> {
    out: W,
    format: Format,
    labels: Vec<String>,
    model: ModelIdentity,
}

impl<W: Write> ResultWriter<W> {
    pub fn new(
        mut out: W,
        format: Format,
        labels: &[String],
        model: ModelIdentity,
    ) -> std::io::Result<Self> {
        match format {
            Format::Csv => {
                let mut header: Vec<String> =
                    vec!["path".into(), "label".into(), "fake_score".into()];
                header.extend(labels.iter().map(|l| format!("score_{l}")));
                header.extend(["model".into(), "model_sha256".into(), "error".into()]);
                write_csv_row(&mut out, &header)?;
            }
            Format::Table => writeln!(out, "{:<10} {:>10}  path  error", "label", "fake_score")?,
            Format::Jsonl => {}
        }
        Ok(Self {
            out,
            format,
            labels: labels.to_vec(),
            model,
        })
    }

    pub fn write(
        &mut self,
        path: &Path,
        result: &Result<Prediction, String>,
    ) -> std::io::Result<()> {
        let path = path.to_string_lossy();
        let (pred, error) = match result {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.as_str())),
        };
        match self.format {
            Format::Jsonl => {
                let line = JsonLine {
                    path: &path,
                    label: pred.map(|p| p.label.as_str()),
                    scores: pred.map(|p| ScoreMap(&p.scores)),
                    fake_score: pred.map(|p| p.fake_score),
                    model: &self.model,
                    error,
                };
                serde_json::to_writer(&mut self.out, &line)?;
                writeln!(self.out)?;
            }
            Format::Csv => {
                let mut row = vec![
                    path.to_string(),
                    pred.map(|p| p.label.clone()).unwrap_or_default(),
                    pred.map(|p| p.fake_score.to_string()).unwrap_or_default(),
                ];
                row.extend(
                    (0..self.labels.len())
                        .map(|i| pred.map(|p| p.scores[i].1.to_string()).unwrap_or_default()),
                );
                row.extend([
                    self.model.name.clone(),
                    self.model.sha256.clone(),
                    error.unwrap_or_default().to_string(),
                ]);
                write_csv_row(&mut self.out, &row)?;
            }
            Format::Table => match pred {
                Some(p) => writeln!(self.out, "{:<10} {:>10.4}  {path}", p.label, p.fake_score)?,
                None => writeln!(
                    self.out,
                    "{:<10} {:>10}  {path}  {}",
                    "-",
                    "-",
                    error.unwrap_or_default()
                )?,
            },
        }
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One CSV record with proper quoting, written straight through.
fn write_csv_row(out: &mut impl Write, row: &[String]) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_record(row)?;
    w.flush()
}
