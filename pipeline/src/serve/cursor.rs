//! Opaque page cursors and page sizes for the read endpoints. A cursor is the base64url (no
//! padding) of a small JSON document the endpoint defines: where the previous page ended and
//! what it was a listing of (the Delta snapshot version, the filters). Clients pass it back
//! unchanged; anything that does not decode to the expected document, or that belongs to a
//! listing with other filters, is refused (400), never silently restarted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The longest cursor accepted (a cursor holds a few keys; anything longer is not ours).
const MAX_CURSOR_LEN: usize = 4096;

/// Why a cursor or a page size was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PageError {
    #[error("cursor: not a cursor returned by this endpoint ({0}); pass next_cursor back unchanged")]
    Malformed(&'static str),
    #[error("cursor: it belongs to a listing with other filters ({0}); start a new listing without a cursor")]
    OtherListing(&'static str),
    #[error("limit: {got} is out of range (1 to {max})")]
    Limit { got: u64, max: u64 },
}

/// Encodes a cursor document.
pub fn encode<T: Serialize>(doc: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(doc).expect("cursor documents serialise"))
}

/// Decodes a cursor made by [`encode`] for the same document type.
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, PageError> {
    if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
        return Err(PageError::Malformed("wrong length"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| PageError::Malformed("not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| PageError::Malformed("not a cursor document"))
}

/// The page size: `default` when absent, else 1..=`max`.
pub fn limit(requested: Option<u64>, default: usize, max: usize) -> Result<usize, PageError> {
    match requested {
        None => Ok(default),
        Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
        Some(got) => Err(PageError::Limit { got, max: max as u64 }),
    }
}

impl From<PageError> for super::error::ApiError {
    fn from(e: PageError) -> Self {
        super::error::ApiError::bad_request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        v: i64,
        k: Vec<String>,
    }

    #[test]
    fn round_trip_and_refusals() {
        let d = Doc { v: 7, k: vec!["acme".into(), "SKU/1 é".into()] };
        let c = encode(&d);
        assert!(c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{c}");
        assert_eq!(decode::<Doc>(&c).unwrap(), d);
        assert_eq!(decode::<Doc>("").unwrap_err(), PageError::Malformed("wrong length"));
        assert_eq!(decode::<Doc>("%%%").unwrap_err(), PageError::Malformed("not base64url"));
        assert_eq!(decode::<Doc>(&URL_SAFE_NO_PAD.encode(b"{\"v\":1}")).unwrap_err(), PageError::Malformed("not a cursor document"));
        assert_eq!(decode::<Doc>(&URL_SAFE_NO_PAD.encode(b"{\"v\":1,\"k\":[],\"x\":0}")).unwrap_err(), PageError::Malformed("not a cursor document"));
        assert!(decode::<Doc>(&"A".repeat(MAX_CURSOR_LEN + 1)).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(limit(None, 100, 1000), Ok(100));
        assert_eq!(limit(Some(1), 100, 1000), Ok(1));
        assert_eq!(limit(Some(1000), 100, 1000), Ok(1000));
        assert_eq!(limit(Some(0), 100, 1000), Err(PageError::Limit { got: 0, max: 1000 }));
        assert_eq!(limit(Some(1001), 100, 1000), Err(PageError::Limit { got: 1001, max: 1000 }));
    }
}
