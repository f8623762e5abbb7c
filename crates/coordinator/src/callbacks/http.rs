//! One callback delivery over HTTP: the signed POST and its retries with
//! jittered exponential backoff. ureq is blocking, so each attempt runs on the
//! blocking pool; redirects are not followed (a redirect could lead to a
//! host outside `callback_hosts`), and ureq is given the URL the allow-list
//! checked (`Target`), not the job's string.

use std::time::Duration;

use dfscan_core::Backoff;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

use super::Target;
use crate::CoordinatorSettings;

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`: the value of
/// the `X-Dfscan-Signature` header.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

pub(super) async fn post_with_retries(
    settings: &CoordinatorSettings,
    url: &str,
    event: &str,
    body: String,
    delivery: &str,
) -> Result<(), String> {
    // Checked again at delivery: the allowed hosts may have changed since
    // the job was submitted.
    let target = Target::parse(url).filter(|t| t.allowed_by(&settings.callback_hosts));
    let Some(target) = target else {
        return Err(format!("{url}: the host is not in callback_hosts"));
    };
    let signature = signature(settings.callback_secret.0.as_bytes(), body.as_bytes());
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    let mut last_error = String::new();
    for attempt in 1..=settings.callback_attempts {
        let request = (
            target.url().clone(),
            event.to_string(),
            delivery.to_string(),
            signature.clone(),
            body.clone(),
        );
        let outcome = tokio::task::spawn_blocking(move || post(request))
            .await
            .unwrap_or_else(|e| Err(format!("delivery task failed: {e}")));
        match outcome {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::info!(%delivery, attempt, %error, "callback not accepted; retrying");
                last_error = error;
            }
        }
        if attempt < settings.callback_attempts {
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
    Err(format!(
        "{} attempts failed, the last: {last_error}",
        settings.callback_attempts
    ))
}

fn post(
    (url, event, delivery, signature, body): (Url, String, String, String, String),
) -> Result<(), String> {
    let agent = ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(TIMEOUT)
        .build();
    let response = agent
        .request_url("POST", &url)
        .set("Content-Type", "application/json")
        .set("X-Dfscan-Event", &event)
        .set("X-Dfscan-Delivery", &delivery)
        .set("X-Dfscan-Signature", &signature)
        .send_string(&body);
    match response {
        Ok(r) if (200..300).contains(&r.status()) => Ok(()),
        Ok(r) => Err(format!("HTTP {}", r.status())),
        Err(ureq::Error::Status(code, _)) => Err(format!("HTTP {code}")),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
