//! API tokens and tenants. Every call of the Scoring and KServe services
//! carries `authorization: Bearer <token>`; the token names its tenant,
//! and a tenant sees only its own jobs (another tenant's job is NOT_FOUND,
//! exactly like a job that does not exist). Tokens are compared by their
//! SHA-256 digests in constant time, every token every time, so neither
//! the match nor its position shows in the timing. Health and reflection
//! stay open (probes and `grpcurl` need them).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::{AuthSettings, CoordinatorError};

/// Shortest token accepted in the tokens file.
const MIN_TOKEN_BYTES: usize = 16;

/// The tenant a call acts for; "" when authentication is off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tenant(pub String);

/// A token's SHA-256 digest and its tenant.
type Token = ([u8; 32], String);

/// The tokens (`None`: authentication off).
#[derive(Clone)]
pub(crate) struct Auth {
    tokens: Option<Arc<Vec<Token>>>,
}

/// Checks the authentication settings (a tokens file that reads, or
/// authentication turned off) without serving anything: `dfscan serve`
/// calls it before it spends minutes loading a model.
pub fn check_auth_settings(settings: &AuthSettings) -> Result<(), CoordinatorError> {
    tokens(settings).map(drop)
}

/// The tokens the settings name; `None` when authentication is off.
fn tokens(settings: &AuthSettings) -> Result<Option<Vec<Token>>, CoordinatorError> {
    if settings.disabled {
        return Ok(None);
    }
    let file = settings.tokens_file.as_deref().ok_or_else(|| {
        CoordinatorError::Settings(
            "authentication needs a tokens file, lines of `TENANT TOKEN` (--tokens-file FILE, \
             or coordinator.auth.tokens_file); to run without authentication, say so with \
             --no-auth (coordinator.auth.disabled = true)"
                .into(),
        )
    })?;
    read_tokens(file).map(Some)
}

impl Auth {
    pub(crate) fn from_settings(settings: &AuthSettings) -> Result<Self, CoordinatorError> {
        let Some(tokens) = tokens(settings)? else {
            tracing::warn!(
                "authentication is OFF (coordinator.auth.disabled = true): any client can submit, \
                 read and cancel every job"
            );
            return Ok(Self { tokens: None });
        };
        let mut tenants: Vec<&str> = tokens.iter().map(|(_, t)| t.as_str()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        tracing::info!(
            tokens = tokens.len(),
            tenants = tenants.len(),
            "authentication on: calls need a bearer token"
        );
        Ok(Self {
            tokens: Some(Arc::new(tokens)),
        })
    }

    /// The tenant of a call's bearer token: UNAUTHENTICATED without one or
    /// with one not in the file.
    pub(crate) fn check(&self, metadata: &MetadataMap) -> Result<Tenant, Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(Tenant::default());
        };
        let presented = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
            })?;
        let digest: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        let mut found = None;
        for (known, tenant) in tokens.iter() {
            if constant_time_eq(known, &digest) && found.is_none() {
                found = Some(tenant);
            }
        }
        found
            .map(|tenant| Tenant(tenant.clone()))
            .ok_or_else(|| Status::unauthenticated("unknown API token"))
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// `TENANT TOKEN` per line; blank lines and `#` comments skipped.
fn read_tokens(file: &Path) -> Result<Vec<Token>, CoordinatorError> {
    let bad = |what: String| CoordinatorError::Settings(format!("{}: {what}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
    let mut tokens = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tenant, token) = line
            .split_once(char::is_whitespace)
            .map(|(t, k)| (t, k.trim()))
            .ok_or_else(|| bad(format!("line {}: expected `TENANT TOKEN`", n + 1)))?;
        let tenant_ok = tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !tenant_ok {
            return Err(bad(format!(
                "line {}: tenant names are letters, digits, '-', '_' and '.'",
                n + 1
            )));
        }
        if token.len() < MIN_TOKEN_BYTES || token.contains(char::is_whitespace) {
            return Err(bad(format!(
                "line {}: a token is at least {MIN_TOKEN_BYTES} characters, without spaces",
                n + 1
            )));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if tokens.iter().any(|(d, _)| *d == digest) {
            return Err(bad(format!("line {}: a token appears twice", n + 1)));
        }
        tokens.push((digest, tenant.to_string()));
    }
    if tokens.is_empty() {
        return Err(bad("no tokens: every call would be refused".into()));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(lines: &str) -> Result<Auth, CoordinatorError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, lines).unwrap();
        Auth::from_settings(&AuthSettings {
            tokens_file: Some(file),
            ..AuthSettings::default()
        })
    }

    fn bearer(token: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", format!("Bearer {token}").parse().unwrap());
        map
    }

    #[test]
    fn tokens_name_their_tenant() {
        let auth = auth("# tenants\nteam-a aaaaaaaaaaaaaaaaaaaa\n\nteam-b bbbbbbbbbbbbbbbbbbbb\n")
            .unwrap();
        assert_eq!(
            auth.check(&bearer("bbbbbbbbbbbbbbbbbbbb")).unwrap().0,
            "team-b"
        );
        for metadata in [
            bearer("cccccccccccccccccccc"),
            bearer(""),
            MetadataMap::new(),
        ] {
            let error = auth.check(&metadata).unwrap_err();
            assert_eq!(error.code(), tonic::Code::Unauthenticated);
        }
    }

    #[test]
    fn bad_token_files_are_refused() {
        for (lines, problem) in [
            ("team-a short\n", "at least 16"),
            ("team a aaaaaaaaaaaaaaaaaaaa\n", "at least 16"),
            ("team/a aaaaaaaaaaaaaaaaaaaa\n", "tenant names"),
            ("a aaaaaaaaaaaaaaaaaaaa\nb aaaaaaaaaaaaaaaaaaaa\n", "twice"),
            ("# nothing\n", "no tokens"),
            ("lonely\n", "TENANT TOKEN"),
        ] {
            let error = auth(lines).err().unwrap().to_string();
            assert!(error.contains(problem), "{lines:?}: {error}");
        }
        let error = Auth::from_settings(&AuthSettings::default()).err().unwrap();
        assert!(
            error.to_string().contains("auth.disabled = true"),
            "{error}"
        );
    }
}
