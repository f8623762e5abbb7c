//! Verdict policies: what a job's `VerdictPolicy` may say, and the verdict
//! it gives a score. The coordinator checks a policy when the job is
//! submitted, a worker applies it to each item it scores and the backends
//! count the verdicts at completion; all of them use this module, so a
//! policy the coordinator accepts means the same thing everywhere.

use std::collections::BTreeMap;

use dfscan_proto::v1::{ItemResult, VerdictPolicy, VerdictThreshold};

use crate::PolicyError;

/// Most thresholds one policy may have.
pub const MAX_THRESHOLDS: usize = 8;
/// Longest verdict name, in bytes.
pub const MAX_VERDICT_BYTES: usize = 64;
/// The verdict below every threshold when the policy names none.
pub const DEFAULT_VERDICT: &str = "pass";

/// The policy with its thresholds highest first and `otherwise` set, or why
/// it cannot be used.
pub fn checked(policy: VerdictPolicy) -> Result<VerdictPolicy, PolicyError> {
    let VerdictPolicy {
        mut thresholds,
        otherwise,
    } = policy;
    if thresholds.is_empty() || thresholds.len() > MAX_THRESHOLDS {
        return Err(PolicyError::ThresholdCount(thresholds.len()));
    }
    let otherwise = if otherwise.is_empty() {
        DEFAULT_VERDICT.to_string()
    } else {
        otherwise
    };
    for VerdictThreshold {
        verdict,
        min_fake_score,
    } in &thresholds
    {
        check_verdict_name(verdict)?;
        if !(0.0..=1.0).contains(min_fake_score) {
            return Err(PolicyError::ThresholdRange {
                verdict: verdict.clone(),
                min_fake_score: *min_fake_score,
            });
        }
    }
    check_verdict_name(&otherwise)?;
    thresholds.sort_by(|a, b| b.min_fake_score.total_cmp(&a.min_fake_score));
    let mut names: Vec<&str> = thresholds.iter().map(|t| t.verdict.as_str()).collect();
    names.push(&otherwise);
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(PolicyError::RepeatedVerdict);
    }
    if thresholds
        .windows(2)
        .any(|w| w[0].min_fake_score == w[1].min_fake_score)
    {
        return Err(PolicyError::SharedThreshold);
    }
    Ok(VerdictPolicy {
        thresholds,
        otherwise,
    })
}

fn check_verdict_name(name: &str) -> Result<(), PolicyError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_VERDICT_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(PolicyError::VerdictName(name.to_string()))
    }
}

/// Whether `name` is one of the verdicts `policy` gives.
pub fn gives(policy: &VerdictPolicy, name: &str) -> bool {
    policy.otherwise == name || policy.thresholds.iter().any(|t| t.verdict == name)
}

/// The verdict `policy` gives an item of `fake_score`: that of the highest
/// threshold reached, else `otherwise` ([`DEFAULT_VERDICT`] when empty).
pub fn verdict(policy: &VerdictPolicy, fake_score: f32) -> String {
    policy
        .thresholds
        .iter()
        .filter(|t| fake_score >= t.min_fake_score)
        .max_by(|a, b| a.min_fake_score.total_cmp(&b.min_fake_score))
        .map(|t| t.verdict.clone())
        .unwrap_or_else(|| match policy.otherwise.as_str() {
            "" => DEFAULT_VERDICT.to_string(),
            otherwise => otherwise.to_string(),
        })
}

/// Scored items per verdict among `results`, as completion counts them.
pub fn verdict_counts(results: &[ItemResult]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for result in results.iter().filter(|r| !r.verdict.is_empty()) {
        *counts.entry(result.verdict.clone()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(verdict: &str, min: f32) -> VerdictThreshold {
        VerdictThreshold {
            verdict: verdict.into(),
            min_fake_score: min,
        }
    }

    #[test]
    fn policies_are_sorted_and_checked() {
        let policy = checked(VerdictPolicy {
            thresholds: vec![threshold("review", 0.6), threshold("flag", 0.9)],
            otherwise: String::new(),
        })
        .unwrap();
        assert_eq!(policy.thresholds[0].verdict, "flag");
        assert_eq!(policy.otherwise, "pass");
        for (thresholds, otherwise, problem) in [
            (vec![], "", "0 thresholds"),
            (vec![threshold("flag", 1.5)], "", "in [0, 1]"),
            (vec![threshold("flag", f32::NAN)], "", "in [0, 1]"),
            (vec![threshold("", 0.5)], "", "must be 1 to"),
            (vec![threshold("a b", 0.5)], "", "must be 1 to"),
            (vec![threshold("flag", 0.5)], "flag", "once"),
            (
                vec![threshold("a", 0.5), threshold("b", 0.5)],
                "",
                "same fake_score",
            ),
        ] {
            let error = checked(VerdictPolicy {
                thresholds,
                otherwise: otherwise.into(),
            })
            .unwrap_err()
            .to_string();
            assert!(error.contains(problem), "{error}");
        }
    }

    #[test]
    fn a_long_verdict_name_is_quoted_cut_short() {
        let error = checked(VerdictPolicy {
            thresholds: vec![threshold(&"v".repeat(1 << 20), 0.5)],
            otherwise: String::new(),
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("(1048576 bytes)"), "{error}");
        assert!(error.len() < 300, "{error}");
    }

    #[test]
    fn the_highest_threshold_reached_gives_the_verdict() {
        let policy = checked(VerdictPolicy {
            thresholds: vec![threshold("review", 0.6), threshold("flag", 0.9)],
            otherwise: String::new(),
        })
        .unwrap();
        let verdicts: Vec<String> = [0.95, 0.9, 0.7, 0.6, 0.1]
            .into_iter()
            .map(|score| verdict(&policy, score))
            .collect();
        assert_eq!(verdicts, ["flag", "flag", "review", "review", "pass"]);
        assert!(gives(&policy, "review") && gives(&policy, "pass"));
        assert!(!gives(&policy, "block"));
        let unchecked = VerdictPolicy {
            thresholds: vec![threshold("flag", 0.9)],
            otherwise: String::new(),
        };
        assert_eq!(verdict(&unchecked, 0.5), DEFAULT_VERDICT);
    }

    #[test]
    fn counts_leave_out_results_without_a_verdict() {
        let result = |verdict: &str| ItemResult {
            verdict: verdict.into(),
            ..Default::default()
        };
        let counts = verdict_counts(&[result("flag"), result(""), result("flag"), result("pass")]);
        assert_eq!(
            counts,
            BTreeMap::from([("flag".to_string(), 2), ("pass".to_string(), 1)])
        );
    }
}
