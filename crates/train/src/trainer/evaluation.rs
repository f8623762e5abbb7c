//! The end of an epoch: evaluation on the validation split with `dfscan
//! eval`'s metrics, the best weights kept as the output checkpoint, and
//! the epoch's record.

use std::path::Path;

use dfscan_core::metrics::EvalReport;
use dfscan_model::autocast::autocast;
use tch::{Device, Kind, Reduction, Tensor};

use super::Run;
use crate::error::{io_error, TrainError};
use crate::loader::Loader;
use crate::model::Classifier;
use crate::state::{EpochRecord, TrainerState};
use crate::BestMetric;

impl Run<'_> {
    /// Evaluates, keeps the best weights and builds the epoch's record.
    pub(super) fn end_epoch(
        &self,
        classifier: &Classifier,
        st: &mut TrainerState,
        images_per_second: f64,
    ) -> Result<EpochRecord, TrainError> {
        let evaluated = if self.val.is_empty() {
            None
        } else {
            Some(self.evaluate(classifier, st)?)
        };
        let best = match &evaluated {
            // Without validation the latest weights are the output.
            None => true,
            Some((report, loss)) => {
                let value = metric_value(self.s.best_metric, report, *loss);
                let improved = match st.best {
                    None => !value.is_nan(),
                    Some((best, _)) if self.s.best_metric.higher_is_better() => value > best,
                    Some((best, _)) => value < best,
                };
                if improved {
                    st.best = Some((value, st.epoch + 1));
                    st.evals_without_improvement = 0;
                } else {
                    st.evals_without_improvement += 1;
                }
                improved
            }
        };
        if best {
            save_output(classifier, &self.job.output)?;
        }
        let (eval, val_loss) = evaluated.map_or((None, None), |(r, l)| (Some(r), Some(l)));
        Ok(EpochRecord {
            epoch: st.epoch + 1,
            optimizer_steps: st.optimizer_steps,
            train_loss: st.epoch_loss_sum / st.epoch_batches.max(1) as f64,
            train_images: st.epoch_images,
            images_per_second,
            val_loss,
            eval,
            best,
        })
    }

    /// The validation report and mean cross-entropy, inputs preprocessed
    /// exactly as `dfscan score` does.
    fn evaluate(
        &self,
        classifier: &Classifier,
        st: &mut TrainerState,
    ) -> Result<(EvalReport, f64), TrainError> {
        let _no_grad = tch::no_grad_guard();
        let order: Vec<usize> = (0..self.val.len()).collect();
        let loader = Loader::start(
            self.val.clone(),
            order,
            self.s.batch_size,
            0,
            self.spec.clone(),
            self.pool.clone(),
        )?;
        let (mut truth, mut predicted, mut fake_scores) = (Vec::new(), Vec::new(), Vec::new());
        let mut loss_sum = 0.0;
        for batch in loader {
            self.note_skipped(&batch, st);
            if batch.is_empty() {
                continue;
            }
            let x = self.pipeline.eval_input(&batch.pixels, batch.len());
            let logits = autocast(self.device, self.precision, || classifier.model.forward(&x))?
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            let y = Tensor::from_slice(&batch.labels);
            loss_sum += f64::try_from(logits.cross_entropy_loss(
                &y,
                None::<Tensor>,
                Reduction::Sum,
                -100,
                0.0,
            ))?;
            let probs = logits.softmax(-1, Kind::Float);
            predicted.extend(
                Vec::<i64>::try_from(probs.argmax(-1, false))?
                    .into_iter()
                    .map(|p| p as usize),
            );
            fake_scores.extend(Vec::<f32>::try_from(
                probs.select(1, self.fake_index as i64),
            )?);
            truth.extend(batch.labels.iter().map(|&l| l as usize));
        }
        let report = EvalReport::compute(
            &classifier.labels,
            self.fake_index,
            &truth,
            &predicted,
            &fake_scores,
        );
        Ok((report, loss_sum / truth.len().max(1) as f64))
    }
}

/// The output checkpoint, replaced file by file through renames so a
/// reader never sees a half-written file.
fn save_output(classifier: &Classifier, output: &Path) -> Result<(), TrainError> {
    let tmp = output.join(".best.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    classifier.save(&tmp)?;
    for entry in std::fs::read_dir(&tmp).map_err(io_error(&tmp))? {
        let entry = entry.map_err(io_error(&tmp))?;
        let target = output.join(entry.file_name());
        std::fs::rename(entry.path(), &target).map_err(io_error(&target))?;
    }
    std::fs::remove_dir(&tmp).map_err(io_error(&tmp))
}

fn metric_value(metric: BestMetric, report: &EvalReport, loss: f64) -> f64 {
    match metric {
        BestMetric::Accuracy => report.accuracy,
        BestMetric::MacroF1 => report.macro_avg.f1,
        BestMetric::RocAuc => report.roc_auc.unwrap_or(f64::NAN),
        BestMetric::Loss => loss,
    }
}
