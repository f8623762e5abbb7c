//! The check of a job's callback: its URL must go to a host the operator
//! allowed (so that the coordinator makes no arbitrary outbound requests),
//! and its item verdicts must be verdicts of the job's policy.

use dfscan_proto::v1::{Callback, VerdictPolicy};
use dfscan_queue::policy;
use tonic::Status;

use super::invalid;
use crate::callbacks::Target;
use crate::error::shown;
use crate::CoordinatorSettings;

const MAX_URL_BYTES: usize = 2048;

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
    let target = Target::parse(&callback.url).ok_or_else(|| {
        invalid(format!(
            "callback: {:?} is not an http:// or https:// URL",
            callback.url
        ))
    })?;
    if !target.allowed_by(&settings.callback_hosts) {
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
            "callback: host {:?} is not allowed; allowed hosts: {allowed}",
            target.authority()
        )));
    }
    for verdict in &callback.item_verdicts {
        if !policy.is_some_and(|p| policy::gives(p, verdict)) {
            return Err(invalid(format!(
                "callback: item verdict {} is not a verdict of the job's policy",
                shown(verdict)
            )));
        }
    }
    Ok(callback)
}

#[cfg(test)]
mod tests {
    use dfscan_proto::v1::VerdictThreshold;

    use super::*;

    #[test]
    fn callbacks_go_to_allowed_hosts_only() {
        let settings = CoordinatorSettings {
            callback_hosts: vec!["hooks.example:8443".into(), "moderation".into()],
            ..Default::default()
        };
        let policy = policy::checked(VerdictPolicy {
            thresholds: vec![VerdictThreshold {
                verdict: "flag".into(),
                min_fake_score: 0.9,
            }],
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
        assert!(ok("http://moderation/hook?x=1", &["pass"]).is_ok());
        for (url, verdicts, problem) in [
            ("https://hooks.example/dfscan", &[][..], "not allowed"),
            ("https://evil.example/", &[], "not allowed"),
            ("http://moderation@evil.example/", &[], "not an http"),
            ("http://moderation%2F@evil.example/", &[], "not an http"),
            ("http://evil.example#@moderation", &[], "not allowed"),
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
        // The refusal names the host as it would be connected to.
        let error = ok("HTTPS://Evil.Example:443/x", &[]).unwrap_err();
        assert!(
            error
                .message()
                .contains(r#"host "evil.example" is not allowed"#),
            "{}",
            error.message()
        );
        let long = format!("https://moderation/{}", "x".repeat(MAX_URL_BYTES));
        let error = ok(&long, &[]).unwrap_err();
        assert!(error.message().contains("over 2048 bytes"));
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
