//! Evaluation metrics for `dfscan eval`: the per-class classification report,
//! confusion matrix and ROC AUC that the model card quotes.
//!
//! The numbers are published next to figures produced with scikit-learn, so
//! this module reproduces scikit-learn's conventions exactly rather than
//! inventing its own: `classification_report(..., labels=all, digits=4,
//! zero_division=0)`, `confusion_matrix(..., labels=all)` (rows are the true
//! class, columns the predicted class) and `roc_auc_score` of the fake score
//! with "truth is the fake class" as the positive class. It lives in
//! `dfscan-core` (no libtorch) so it can be tested and reused without a model.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class name (same as `EvalReport::labels[i]`).
    pub label: String,
    /// `tp / (tp + fp)`; 0.0 when the class is never predicted.
    pub precision: f64,
    /// `tp / (tp + fn)`; 0.0 when the class has no support.
    pub recall: f64,
    /// `2 tp / (2 tp + fp + fn)`; 0.0 when the class is neither present nor predicted.
    pub f1: f64,
    /// Number of samples whose true class is this one.
    pub support: u64,
}

/// An average of the per-class metrics (macro or support-weighted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AverageMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Total number of samples.
    pub support: u64,
}

/// Ground truth against model outputs for a labelled set, summarised the way
/// scikit-learn's `classification_report` does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Class names in class-index order.
    pub labels: Vec<String>,
    /// One entry per label, in label order, including labels with no support.
    pub per_class: Vec<ClassMetrics>,
    /// Fraction of samples whose predicted class equals the true class
    /// (0.0 for an empty set).
    pub accuracy: f64,
    /// Unweighted mean over every label (zero-support labels included).
    pub macro_avg: AverageMetrics,
    /// Mean over labels weighted by support.
    pub weighted_avg: AverageMetrics,
    /// `confusion_matrix[true][predicted]` counts (scikit-learn convention).
    pub confusion_matrix: Vec<Vec<u64>>,
    /// ROC AUC of the fake score, positive = "true class is the fake class";
    /// `None` when the set lacks positives or negatives.
    pub roc_auc: Option<f64>,
    /// Name of the class the fake score is the probability of.
    pub fake_label: String,
    /// Number of samples.
    pub total: u64,
}

impl EvalReport {
    /// Computes the report.
    ///
    /// `truth[i]` and `predicted[i]` are class indices into `labels`;
    /// `fake_scores[i]` is the model's probability of class `fake_index`.
    ///
    /// Division by zero yields 0.0 (scikit-learn's `zero_division=0`): a
    /// class never predicted has precision 0, a class with no support has
    /// recall 0. The ROC AUC is exact: it is the Mann–Whitney U statistic
    /// with ties between a positive and a negative counting one half (what
    /// `roc_auc_score` computes by the trapezoidal rule), evaluated in integer
    /// arithmetic. NaN scores, which scikit-learn rejects, are ranked below
    /// every other score (and tied with each other), as if the model were
    /// least sure the image is fake; `-0.0` and `0.0` are equal.
    ///
    /// # Panics
    ///
    /// If the three slices differ in length, if `fake_index` is not a valid
    /// label index, or if any class index is out of range: all of these are
    /// programming errors in the caller, not properties of the data.
    pub fn compute(
        labels: &[String],
        fake_index: usize,
        truth: &[usize],
        predicted: &[usize],
        fake_scores: &[f32],
    ) -> EvalReport {
        let n_classes = labels.len();
        assert!(
            fake_index < n_classes,
            "fake_index {fake_index} out of range for {n_classes} labels"
        );
        assert_eq!(
            truth.len(),
            predicted.len(),
            "one prediction per ground-truth label"
        );
        assert_eq!(
            truth.len(),
            fake_scores.len(),
            "one fake score per ground-truth label"
        );

        let mut confusion = vec![vec![0u64; n_classes]; n_classes];
        for (i, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
            assert!(
                t < n_classes && p < n_classes,
                "sample {i}: class index (truth {t}, predicted {p}) out of range for {n_classes} labels"
            );
            confusion[t][p] += 1;
        }

        let total = truth.len() as u64;
        let correct: u64 = (0..n_classes).map(|c| confusion[c][c]).sum();

        let per_class: Vec<ClassMetrics> = labels
            .iter()
            .enumerate()
            .map(|(c, label)| {
                let tp = confusion[c][c];
                let support: u64 = confusion[c].iter().sum();
                let predicted_count: u64 = confusion.iter().map(|row| row[c]).sum();
                ClassMetrics {
                    label: label.clone(),
                    precision: ratio(tp, predicted_count),
                    recall: ratio(tp, support),
                    // scikit-learn >= 1.3 computes F-beta from counts:
                    // (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp).
                    f1: ratio(2 * tp, support + predicted_count),
                    support,
                }
            })
            .collect();

        let macro_avg = AverageMetrics {
            precision: mean(per_class.iter().map(|m| (m.precision, 1))),
            recall: mean(per_class.iter().map(|m| (m.recall, 1))),
            f1: mean(per_class.iter().map(|m| (m.f1, 1))),
            support: total,
        };
        let weighted_avg = AverageMetrics {
            precision: mean(per_class.iter().map(|m| (m.precision, m.support))),
            recall: mean(per_class.iter().map(|m| (m.recall, m.support))),
            f1: mean(per_class.iter().map(|m| (m.f1, m.support))),
            support: total,
        };

        let positives: Vec<bool> = truth.iter().map(|&t| t == fake_index).collect();

        EvalReport {
            labels: labels.to_vec(),
            per_class,
            accuracy: ratio(correct, total),
            macro_avg,
            weighted_avg,
            confusion_matrix: confusion,
            roc_auc: roc_auc(&positives, fake_scores),
            fake_label: labels[fake_index].clone(),
            total,
        }
    }
}

/// `num / den`, or 0.0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Weighted mean of `(value, weight)` pairs; 0.0 when the weights sum to 0.
fn mean(values: impl Iterator<Item = (f64, u64)>) -> f64 {
    let (sum, weight) = values.fold((0.0, 0u64), |(s, w), (v, vw)| (s + v * vw as f64, w + vw));
    if weight == 0 {
        0.0
    } else {
        sum / weight as f64
    }
}

/// Orders scores with NaN below everything (NaNs equal to each other).
fn score_order(a: f32, b: f32) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).expect("neither is NaN"),
    }
}

/// Exact ROC AUC: the probability that a random positive scores above a
/// random negative, ties counting one half. `None` without both classes.
pub fn roc_auc(positive: &[bool], scores: &[f32]) -> Option<f64> {
    assert_eq!(positive.len(), scores.len(), "one score per sample");
    let n_pos = positive.iter().filter(|&&p| p).count() as u128;
    let n_neg = positive.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }

    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| score_order(scores[a], scores[b]));

    // Twice the Mann–Whitney U of the positives: for each group of equal
    // scores, every positive beats every negative below the group (2 each)
    // and ties with every negative inside it (1 each).
    let mut twice_u: u128 = 0;
    let mut negatives_below: u128 = 0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len()
            && score_order(scores[order[start]], scores[order[end]]) == Ordering::Equal
        {
            end += 1;
        }
        let group_pos = order[start..end].iter().filter(|&&i| positive[i]).count() as u128;
        let group_neg = (end - start) as u128 - group_pos;
        twice_u += group_pos * (2 * negatives_below + group_neg);
        negatives_below += group_neg;
        start = end;
    }
    Some(twice_u as f64 / (2 * n_pos * n_neg) as f64)
}

impl fmt::Display for EvalReport {
    /// scikit-learn's `classification_report` text with 4 digits, then the
    /// confusion matrix and the ROC AUC. No trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LAST_HEADING: &str = "weighted avg";
        let w = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .chain([LAST_HEADING.len(), 4])
            .max()
            .unwrap_or(0);

        writeln!(
            f,
            "{:>w$}  {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        for m in &self.per_class {
            row(f, w, &m.label, m.precision, m.recall, m.f1, m.support)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>w$}  {:>9} {:>9} {:>9.4} {:>9}",
            "accuracy", "", "", self.accuracy, self.total
        )?;
        for (name, a) in [
            ("macro avg", &self.macro_avg),
            (LAST_HEADING, &self.weighted_avg),
        ] {
            row(f, w, name, a.precision, a.recall, a.f1, a.support)?;
        }

        writeln!(f)?;
        writeln!(f, "Confusion matrix (rows: true, columns: predicted):")?;
        let name_w = self
            .labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0);
        let cell_w = self
            .confusion_matrix
            .iter()
            .flatten()
            .map(|c| c.to_string().len())
            .chain(self.labels.iter().map(|l| l.chars().count()))
            .max()
            .unwrap_or(0);
        write!(f, "{:>name_w$}", "")?;
        for label in &self.labels {
            write!(f, "  {label:>cell_w$}")?;
        }
        writeln!(f)?;
        for (label, counts) in self.labels.iter().zip(&self.confusion_matrix) {
            write!(f, "{label:>name_w$}")?;
            for c in counts {
                write!(f, "  {c:>cell_w$}")?;
            }
            writeln!(f)?;
        }

        writeln!(f)?;
        write!(f, "ROC AUC (fake_score, positive = {}): ", self.fake_label)?;
        match self.roc_auc {
            Some(auc) => write!(f, "{auc:.4}"),
            None => write!(f, "n/a (one class present)"),
        }
    }
}

/// One `classification_report` row: `{:>w} ` then ` {:>9.4f}` three times
/// and ` {:>9}` (scikit-learn's `row_fmt`).
fn row(
    f: &mut fmt::Formatter<'_>,
    w: usize,
    name: &str,
    precision: f64,
    recall: f64,
    f1: f64,
    support: u64,
) -> fmt::Result {
    writeln!(
        f,
        "{name:>w$}  {precision:>9.4} {recall:>9.4} {f1:>9.4} {support:>9}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    fn auc(truth: &[usize], scores: &[f32]) -> Option<f64> {
        let labels = names(&["Real", "Fake"]);
        EvalReport::compute(&labels, 1, truth, truth, scores).roc_auc
    }

    #[test]
    fn two_classes() {
        // Real = 0, Fake = 1.
        let labels = names(&["Real", "Fake"]);
        let truth = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        let pred = [0, 0, 0, 1, 1, 1, 1, 1, 0, 0];
        let scores = [0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.05];
        let r = EvalReport::compute(&labels, 1, &truth, &pred, &scores);

        // Confusion: Real -> [3 Real, 1 Fake], Fake -> [2 Real, 4 Fake].
        assert_eq!(r.confusion_matrix, vec![vec![3, 1], vec![2, 4]]);
        // Real: tp 3, predicted 5, support 4: P 3/5, R 3/4, F1 6/9.
        let real = &r.per_class[0];
        assert_eq!(real.label, "Real");
        close(real.precision, 0.6);
        close(real.recall, 0.75);
        close(real.f1, 6.0 / 9.0);
        assert_eq!(real.support, 4);
        // Fake: tp 4, predicted 5, support 6: P 4/5, R 4/6, F1 8/11.
        let fake = &r.per_class[1];
        close(fake.precision, 0.8);
        close(fake.recall, 4.0 / 6.0);
        close(fake.f1, 8.0 / 11.0);
        assert_eq!(fake.support, 6);

        close(r.accuracy, 0.7);
        // Macro: P (0.6 + 0.8) / 2, R (3/4 + 2/3) / 2 = 17/24, F1 (2/3 + 8/11) / 2 = 46/66.
        close(r.macro_avg.precision, 0.7);
        close(r.macro_avg.recall, 17.0 / 24.0);
        close(r.macro_avg.f1, 46.0 / 66.0);
        assert_eq!(r.macro_avg.support, 10);
        // Weighted: P (4*0.6 + 6*0.8)/10 = 0.72, R (3 + 4)/10 = 0.7,
        // F1 (4*2/3 + 6*8/11)/10 = (8/3 + 48/11)/10 = 232/330.
        close(r.weighted_avg.precision, 0.72);
        close(r.weighted_avg.recall, 0.7);
        close(r.weighted_avg.f1, 232.0 / 330.0);
        assert_eq!(r.weighted_avg.support, 10);

        // AUC: positives 0.8 0.7 0.6 0.55 0.4 0.05, negatives 0.1 0.2 0.3 0.9.
        // Negatives below each positive: 3 3 3 3 3 0 -> U = 15 of 6*4 = 24.
        close(r.roc_auc.unwrap(), 15.0 / 24.0);
        assert_eq!(r.fake_label, "Fake");
        assert_eq!(r.total, 10);
    }

    #[test]
    fn three_classes_sklearn_docstring_example() {
        // classification_report docstring: y_true = [0, 1, 2, 2, 2],
        // y_pred = [0, 0, 2, 2, 1].
        let labels = names(&["class 0", "class 1", "class 2"]);
        let truth = [0, 1, 2, 2, 2];
        let pred = [0, 0, 2, 2, 1];
        let scores = [0.1, 0.2, 0.9, 0.8, 0.3];
        let r = EvalReport::compute(&labels, 2, &truth, &pred, &scores);

        assert_eq!(
            r.confusion_matrix,
            vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 1, 2]]
        );
        let p: Vec<f64> = r.per_class.iter().map(|m| m.precision).collect();
        let rc: Vec<f64> = r.per_class.iter().map(|m| m.recall).collect();
        let f1: Vec<f64> = r.per_class.iter().map(|m| m.f1).collect();
        let s: Vec<u64> = r.per_class.iter().map(|m| m.support).collect();
        assert_eq!(p, vec![0.5, 0.0, 1.0]);
        close(rc[0], 1.0);
        close(rc[1], 0.0);
        close(rc[2], 2.0 / 3.0);
        close(f1[0], 2.0 / 3.0);
        close(f1[1], 0.0);
        close(f1[2], 0.8);
        assert_eq!(s, vec![1, 1, 3]);
        close(r.accuracy, 0.6);
        // Docstring: macro avg 0.50 0.56 0.49, weighted avg 0.70 0.60 0.61.
        close(r.macro_avg.precision, 0.5);
        close(r.macro_avg.recall, 5.0 / 9.0);
        close(r.macro_avg.f1, (2.0 / 3.0 + 0.8) / 3.0);
        close(r.weighted_avg.precision, 0.7);
        close(r.weighted_avg.recall, 0.6);
        close(r.weighted_avg.f1, (2.0 / 3.0 + 2.4) / 5.0);
        // Positive = class 2 (0.9 0.8 0.3) vs others (0.1 0.2): all above -> 1.
        close(r.roc_auc.unwrap(), 1.0);
    }

    #[test]
    fn never_predicted_and_absent_classes_are_zero_and_still_reported() {
        // "b" is present but never predicted, "c" is neither present nor predicted.
        let labels = names(&["a", "b", "c"]);
        let truth = [0, 0, 1, 1];
        let pred = [0, 0, 0, 0];
        let r = EvalReport::compute(&labels, 1, &truth, &pred, &[0.0; 4]);

        assert_eq!(r.per_class.len(), 3);
        // a: tp 2, predicted 4, support 2: P 0.5, R 1, F1 4/6.
        close(r.per_class[0].precision, 0.5);
        close(r.per_class[0].recall, 1.0);
        close(r.per_class[0].f1, 4.0 / 6.0);
        for m in &r.per_class[1..] {
            assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        }
        assert_eq!(r.per_class[2].support, 0);
        // Macro averages over all three labels, the absent one included.
        close(r.macro_avg.precision, 0.5 / 3.0);
        close(r.macro_avg.recall, 1.0 / 3.0);
        close(r.macro_avg.f1, (4.0 / 6.0) / 3.0);
        // Weighted: (2*0.5 + 2*0 + 0*0) / 4.
        close(r.weighted_avg.precision, 0.25);
        close(r.weighted_avg.recall, 0.5);
        close(r.weighted_avg.f1, (2.0 * 4.0 / 6.0) / 4.0);
        close(r.accuracy, 0.5);
        // All scores tie -> 0.5.
        close(r.roc_auc.unwrap(), 0.5);
    }

    #[test]
    fn auc_all_tied_is_half() {
        assert_eq!(auc(&[0, 0, 1, 1], &[0.5; 4]), Some(0.5));
    }

    #[test]
    fn auc_perfect_and_reversed() {
        assert_eq!(auc(&[0, 0, 1, 1], &[0.1, 0.2, 0.8, 0.9]), Some(1.0));
        assert_eq!(auc(&[0, 0, 1, 1], &[0.9, 0.8, 0.2, 0.1]), Some(0.0));
    }

    #[test]
    fn auc_textbook_example() {
        // roc_auc_score docstring / Wikipedia: y = [0, 0, 1, 1],
        // s = [0.1, 0.4, 0.35, 0.8] -> 0.75.
        assert_eq!(auc(&[0, 0, 1, 1], &[0.1, 0.4, 0.35, 0.8]), Some(0.75));
    }

    #[test]
    fn auc_partial_ties() {
        // Positives 0.2 0.5 0.9, negatives 0.2 0.5.
        // 0.2: tie + loss = 0.5; 0.5: win + tie = 1.5; 0.9: 2 -> 4 / 6.
        let a = auc(&[0, 1, 0, 1, 1], &[0.2, 0.2, 0.5, 0.5, 0.9]).unwrap();
        close(a, 4.0 / 6.0);
        // Order of samples does not matter.
        let b = auc(&[1, 1, 0, 1, 0], &[0.9, 0.5, 0.5, 0.2, 0.2]).unwrap();
        close(b, 4.0 / 6.0);
    }

    #[test]
    fn auc_positive_is_the_fake_index() {
        // Fake is index 0 here: high scores on truth 0 make a perfect ranking.
        let labels = names(&["Fake", "Real", "Other"]);
        let truth = [0, 0, 1, 2];
        let r = EvalReport::compute(&labels, 0, &truth, &truth, &[0.9, 0.8, 0.1, 0.2]);
        assert_eq!(r.roc_auc, Some(1.0));
        assert_eq!(r.fake_label, "Fake");
    }

    #[test]
    fn auc_nan_ranks_lowest() {
        // NaN positive is below every negative; NaNs tie with each other.
        assert_eq!(auc(&[0, 1], &[0.0, f32::NAN]), Some(0.0));
        assert_eq!(auc(&[0, 1], &[f32::NAN, 0.0]), Some(1.0));
        assert_eq!(auc(&[0, 1], &[f32::NAN, f32::NAN]), Some(0.5));
        // -0.0 == 0.0.
        assert_eq!(auc(&[0, 1], &[0.0, -0.0]), Some(0.5));
    }

    #[test]
    fn auc_single_class_is_none() {
        assert_eq!(auc(&[1, 1, 1], &[0.1, 0.5, 0.9]), None);
        assert_eq!(auc(&[0, 0], &[0.1, 0.5]), None);
        assert_eq!(auc(&[], &[]), None);
    }

    #[test]
    fn empty_set_is_all_zero() {
        let labels = names(&["Real", "Fake"]);
        let r = EvalReport::compute(&labels, 1, &[], &[], &[]);
        assert_eq!(r.total, 0);
        assert_eq!(r.accuracy, 0.0);
        assert_eq!(r.weighted_avg.f1, 0.0);
        assert_eq!(r.roc_auc, None);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn out_of_range_class_panics() {
        let labels = names(&["Real", "Fake"]);
        EvalReport::compute(&labels, 1, &[2], &[0], &[0.5]);
    }

    #[test]
    #[should_panic(expected = "one prediction per ground-truth label")]
    fn length_mismatch_panics() {
        let labels = names(&["Real", "Fake"]);
        EvalReport::compute(&labels, 1, &[0, 1], &[0], &[0.5, 0.5]);
    }

    #[test]
    fn display_matches_sklearn_layout() {
        // The classification_report docstring example at digits=4.
        let labels = names(&["class 0", "class 1", "class 2"]);
        let r = EvalReport::compute(
            &labels,
            2,
            &[0, 1, 2, 2, 2],
            &[0, 0, 2, 2, 1],
            &[0.1, 0.2, 0.9, 0.8, 0.3],
        );
        let expected = "              precision    recall  f1-score   support

     class 0     0.5000    1.0000    0.6667         1
     class 1     0.0000    0.0000    0.0000         1
     class 2     1.0000    0.6667    0.8000         3

    accuracy                         0.6000         5
   macro avg     0.5000    0.5556    0.4889         5
weighted avg     0.7000    0.6000    0.6133         5

Confusion matrix (rows: true, columns: predicted):
         class 0  class 1  class 2
class 0        1        0        0
class 1        1        0        0
class 2        0        1        2

ROC AUC (fake_score, positive = class 2): 1.0000";
        assert_eq!(r.to_string(), expected);
    }

    #[test]
    fn display_single_class_and_long_labels() {
        let labels = names(&["Real", "a rather long label"]);
        let r = EvalReport::compute(&labels, 1, &[0, 0], &[0, 1], &[0.2, 0.7]);
        let expected = "                     precision    recall  f1-score   support

               Real     1.0000    0.5000    0.6667         2
a rather long label     0.0000    0.0000    0.0000         0

           accuracy                         0.5000         2
          macro avg     0.5000    0.2500    0.3333         2
       weighted avg     1.0000    0.5000    0.6667         2

Confusion matrix (rows: true, columns: predicted):
                                    Real  a rather long label
               Real                    1                    1
a rather long label                    0                    0

ROC AUC (fake_score, positive = a rather long label): n/a (one class present)";
        assert_eq!(r.to_string(), expected);
    }

    #[test]
    fn serializes_to_json() {
        let labels = names(&["Real", "Fake"]);
        let r = EvalReport::compute(&labels, 1, &[0, 1], &[0, 1], &[0.1, 0.9]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["accuracy"], 1.0);
        assert_eq!(v["roc_auc"], 1.0);
        assert_eq!(v["confusion_matrix"], serde_json::json!([[1, 0], [0, 1]]));
        assert_eq!(v["per_class"][1]["label"], "Fake");
        assert_eq!(v["macro_avg"]["support"], 2);
        let back: EvalReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }
}
