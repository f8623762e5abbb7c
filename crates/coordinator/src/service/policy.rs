//! Checks of what a job header asks beyond scoring: its verdict policy and
//! its callback (whose host must be one the operator allowed, so that the
//! coordinator makes no arbitrary outbound requests).

use dfscan_proto::v1::{Callback, VerdictPolicy, VerdictThreshold};
use tonic::Status;

use super::invalid;
use crate::error::shown;
use crate::CoordinatorSettings;

const MAX_THRESHOLDS: usize = 8;
const MAX_VERDICT_BYTES: usize = 64;
const MAX_URL_BYTES: usize = 2048;

/// The policy with its thresholds highest first and `otherwise` set.
pub(super) fn checked_policy(policy: VerdictPolicy) -> Result<VerdictPolicy, Status> {
    let VerdictPolicy {
        mut thresholds,
        otherwise,
    } = policy;
    if thresholds.is_empty() || thresholds.len() > MAX_THRESHOLDS {
        return Err(invalid(format!(
            "policy: {} thresholds; give 1 to {MAX_THRESHOLDS}",
            thresholds.len()
        )));
    }
    let otherwise = if otherwise.is_empty() {
        "pass".to_string()
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
            return Err(invalid(format!(
                "policy: {verdict:?} starts at {min_fake_score}; thresholds are fake_scores in [0, 1]"
            )));
        }
    }
    check_verdict_name(&otherwise)?;
    thresholds.sort_by(|a, b| b.min_fake_score.total_cmp(&a.min_fake_score));
    let mut names: Vec<&str> = thresholds.iter().map(|t| t.verdict.as_str()).collect();
    names.push(&otherwise);
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid("policy: each verdict may appear once"));
    }
    if thresholds
        .windows(2)
        .any(|w| w[0].min_fake_score == w[1].min_fake_score)
    {
        return Err(invalid("policy: two verdicts start at the same fake_score"));
    }
    Ok(VerdictPolicy {
        thresholds,
        otherwise,
    })
}

fn check_verdict_name(name: &str) -> Result<(), Status> {
    let valid = !name.is_empty()
        && name.len() <= MAX_VERDICT_BYTES
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "policy: verdict {} must be 1 to {MAX_VERDICT_BYTES} letters, digits, '-', '_' or '.'",
            shown(name)
        )))
    }
}

/// A callback is allowed when its URL is http(s) on a host (and port) of
/// `callback_hosts`, and its item verdicts are verdicts of the policy.
pub(super) fn checked_callback(
    callback: Callback,
    policy: Option<&VerdictPolicy>,
    settings: &CoordinatorSettings,
) -> Result<Callback, Status> {
    if callback.url.len() > MAX_URL_BYTES {
        return Err(invalid(format!(
            "callback: the URL is over {MAX_URL_BYTES} bytes"
        )));
    }
    let authority = callback_authority(&callback.url).ok_or_else(|| {
        invalid(format!(
            "callback: {:?} is not an http:// or https:// URL",
            callback.url
        ))
    })?;
    if !settings.callback_allowed(authority) {
        let allowed = if settings.callback_hosts.is_empty() {
            // Says which settings open it: the flag has no coordinator-side
            // counterpart a user could guess from the refusal alone.
            "none (coordinator.callback_hosts is empty: set DFSCAN_COORDINATOR__CALLBACK_HOSTS \
             to the hosts, e.g. hooks.internal or hooks.internal:8443, with \
             DFSCAN_COORDINATOR__CALLBACK_SECRET, the signing key, and restart the coordinator)"
                .to_string()
        } else {
            settings.callback_hosts.join(", ")
        };
        return Err(invalid(format!(
            "callback: host {authority:?} is not allowed; allowed hosts: {allowed}"
        )));
    }
    for verdict in &callback.item_verdicts {
        let known = policy.is_some_and(|p| {
            p.otherwise == *verdict || p.thresholds.iter().any(|t| t.verdict == *verdict)
        });
        if !known {
            return Err(invalid(format!(
                "callback: item verdict {} is not a verdict of the job's policy",
                shown(verdict)
            )));
        }
    }
    Ok(callback)
}

/// `host[:port]` of an http(s) URL without user info.
pub(crate) fn callback_authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
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
        let policy = checked_policy(VerdictPolicy {
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
            let error = checked_policy(VerdictPolicy {
                thresholds,
                otherwise: otherwise.into(),
            })
            .unwrap_err();
            assert!(error.message().contains(problem), "{}", error.message());
        }
    }

    #[test]
    fn callbacks_go_to_allowed_hosts_only() {
        let settings = CoordinatorSettings {
            callback_hosts: vec!["hooks.example:8443".into(), "moderation".into()],
            ..Default::default()
        };
        let policy = checked_policy(VerdictPolicy {
            thresholds: vec![threshold("flag", 0.9)],
            otherwise: String::new(),
        })
        .unwrap();
        let callback = |url: &str, verdicts: &[&str]| Callback {
            url: url.into(),
            item_verdicts: verdicts.iter().map(|v| v.to_string()).collect(),
        };
        let ok =
            |url, verdicts| checked_callback(callback(url, verdicts), Some(&policy), &settings);
        assert!(ok("https://hooks.example:8443/dfscan", &["flag"]).is_ok());
        assert!(ok("http://moderation/hook?x=1", &[]).is_ok());
        for (url, verdicts, problem) in [
            ("https://hooks.example/dfscan", &[][..], "not allowed"),
            ("https://evil.example/", &[], "not allowed"),
            ("http://moderation@evil.example/", &[], "not an http"),
            ("ftp://moderation/", &[], "not an http"),
            ("http://moderation/", &["review"], "not a verdict"),
        ] {
            let error = ok(url, verdicts).unwrap_err();
            assert!(
                error.message().contains(problem),
                "{url}: {}",
                error.message()
            );
        }
        let closed = CoordinatorSettings::default();
        let error =
            checked_callback(callback("http://moderation/", &[]), None, &closed).unwrap_err();
        assert!(error.message().contains("callback_hosts is empty"));
        assert!(error
            .message()
            .contains("DFSCAN_COORDINATOR__CALLBACK_HOSTS"));
        assert!(error
            .message()
            .contains("DFSCAN_COORDINATOR__CALLBACK_SECRET"));
    }
}
