//! API keys and roles. Keys come from `MEDALLION_API_KEYS` and/or `--api-keys-file`, one
//! `role:key` entry per line or comma-separated (`#` starts a comment line), e.g.
//!
//! ```text
//! ingest:partner-acme-7f3a9c…
//! operator:ops-team-2b81…
//! reader:dashboards-91cd…
//! ```
//!
//! Only each key's SHA-256 digest is kept; a presented key is hashed and compared with every
//! stored digest in constant time (no early exit). Roles: `ingest` may upload feeds;
//! `reader` may call the read endpoints; `operator` may queue and cancel runs and is also
//! allowed everything a `reader` is (operators look at what they run). `ingest` is separate:
//! a partner's upload key reads nothing. A key listed under several roles has all of them.
//! The key is sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`; 401 without a
//! valid key (with `WWW-Authenticate`), 403 for a valid key of the wrong role. Keys never
//! appear in logs, errors or metrics.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ingest,
    Operator,
    Reader,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Operator => "operator",
            Role::Reader => "reader",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        [Role::Ingest, Role::Operator, Role::Reader].into_iter().find(|r| r.name() == s)
    }

    /// Whether a key of this role may do what `needed` may.
    pub fn allows(self, needed: Role) -> bool {
        self == needed || (self == Role::Operator && needed == Role::Reader)
    }
}

/// The configured keys, as digests.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(Role, [u8; 32])>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Adds `role:key` entries (lines or commas; blank lines and `#` comments skipped);
    /// `source` names where they came from in errors, which never quote a key.
    pub fn add(&mut self, text: &str, source: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for entry in line.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let Some((role, key)) = entry.split_once(':') else {
                    return Err(format!("{source}, line {}: expected role:key (roles: ingest, operator, reader)", n + 1));
                };
                let role = Role::parse(role.trim()).ok_or_else(|| format!("{source}, line {}: unknown role {:?} (ingest, operator, reader)", n + 1, role.trim()))?;
                let key = key.trim();
                if key.len() < 16 {
                    return Err(format!("{source}, line {}: a {} key must have at least 16 characters", n + 1, role.name()));
                }
                self.keys.push((role, digest(key)));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The roles of `presented` (empty when it matches no key). Every stored digest is
    /// compared, in constant time each, whatever matches.
    pub fn roles(&self, presented: &str) -> Vec<Role> {
        let d = digest(presented);
        let mut roles = Vec::new();
        for (role, stored) in &self.keys {
            if bool::from(stored.ct_eq(&d)) {
                roles.push(*role);
            }
        }
        roles
    }
}

/// The key of a request: `Authorization: Bearer <key>` or `X-API-Key`.
pub fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, rest) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim());
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, exit::USAGE, detail).with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"medallion\""))
}

/// Checks the request's key against `needed`.
pub fn authorize(state: &AppState, parts: &Parts, needed: Role) -> Result<(), ApiError> {
    if state.insecure_no_auth {
        return Ok(());
    }
    let Some(key) = presented(&parts.headers).filter(|k| !k.is_empty()) else {
        return Err(unauthorized("an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"));
    };
    let roles = state.keys.roles(key);
    if roles.is_empty() {
        return Err(unauthorized("the API key is not valid"));
    }
    if roles.iter().any(|r| r.allows(needed)) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, exit::USAGE, format!("this API key may not do this: it needs the {} role", needed.name())))
    }
}

macro_rules! role_extractor {
    ($(#[$doc:meta] $name:ident => $role:expr),* $(,)?) => {
        $(#[$doc]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                authorize(state, parts, $role).map(|_| $name)
            }
        })*
    };
}

role_extractor! {
    /// A request whose key may read (role `reader` or `operator`).
    Reader => Role::Reader,
    /// A request whose key may queue and cancel runs (role `operator`).
    Operator => Role::Operator,
    /// A request whose key may upload feeds (role `ingest`).
    Ingest => Role::Ingest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, source: &str) -> Result<ApiKeys, String> {
        let mut keys = ApiKeys::default();
        keys.add(text, source).map(|_| keys)
    }

    #[test]
    fn parses_keys_and_checks_roles() {
        let keys = parse("# keys\ningest:aaaaaaaaaaaaaaaa\noperator:bbbbbbbbbbbbbbbb, reader:cccccccccccccccc\n\nreader:aaaaaaaaaaaaaaaa", "test").unwrap();
        assert_eq!(keys.roles("aaaaaaaaaaaaaaaa"), vec![Role::Ingest, Role::Reader]);
        assert_eq!(keys.roles("bbbbbbbbbbbbbbbb"), vec![Role::Operator]);
        assert!(keys.roles("bbbbbbbbbbbbbbbX").is_empty());
        assert!(Role::Operator.allows(Role::Reader) && !Role::Reader.allows(Role::Operator) && !Role::Ingest.allows(Role::Reader) && !Role::Operator.allows(Role::Ingest));
        let e = parse("admin:secretsecretsecret", "MEDALLION_API_KEYS").unwrap_err();
        assert!(e.contains("unknown role") && !e.contains("secretsecret"), "{e}");
        let e = parse("reader:short", "f").unwrap_err();
        assert!(e.contains("at least 16") && !e.contains("short"), "{e}");
        assert!(parse("readerkeywithoutcolon", "f").is_err());
        assert!(format!("{keys:?}").contains("4 keys"));
    }
}
