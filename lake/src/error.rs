//! What every stage needs to know about an I/O failure: its whole cause chain for messages
//! ([`error_chain`]) and whether trying again later may help ([`is_transient`]). The decision is
//! made once, here, from the types in the source chain: never from message text.

use std::error::Error;
use std::io::ErrorKind;

use object_store::client::{HttpError, HttpErrorKind};

/// Whether the failure `err` (or any error in its source chain) is transient: the storage
/// endpoint could not be reached, the connection dropped or a request timed out. Decided by
/// downcasting, walking the chain:
/// - `object_store::Error`: `NotFound`, `AlreadyExists`, `Precondition`, `NotModified`,
///   `PermissionDenied`, `Unauthenticated`, invalid paths, unsupported or unimplemented
///   operations and configuration errors are final; `Generic` and `JoinError` are decided by
///   their sources;
/// - `object_store::client::HttpError` (the reqwest error behind a retried request):
///   `Connect`, `Request`, `Timeout` and `Interrupted` are transient, `Decode` and `Unknown`
///   are not;
/// - `std::io::Error`: `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`,
///   `NotConnected`, `TimedOut`, `BrokenPipe`, `UnexpectedEof` and `Interrupted` are transient;
/// - with the `delta` feature, `DeltaTableError::ObjectStore` and DataFusion's
///   `ObjectStore`, `External`, `Context` and `Shared` errors are decided by what they wrap;
///   a Delta commit that lost to a concurrent writer (`VersionAlreadyExists`, a
///   `CommitConflict` found by delta-rs's conflict checker, or `MaxCommitAttempts`) is
///   transient: the stage retried reads the winner's version.
pub fn is_transient(err: &(dyn Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(verdict) = decide(e) {
            return verdict;
        }
        current = e.source();
    }
    false
}

/// `Some` when this error alone decides; `None` to look at its source.
fn decide(e: &(dyn Error + 'static)) -> Option<bool> {
    if let Some(os) = e.downcast_ref::<object_store::Error>() {
        return match os {
            object_store::Error::Generic { source, .. } => Some(is_transient(source.as_ref())),
            object_store::Error::JoinError { .. } => None,
            _ => Some(false),
        };
    }
    if let Some(http) = e.downcast_ref::<HttpError>() {
        return Some(matches!(
            http.kind(),
            HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
        ));
    }
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        if is_transient_io(io.kind()) {
            return Some(true);
        }
        // An io::Error may wrap a typed cause (object_store's local store, delta-rs).
        return io.get_ref().map(|inner| is_transient(inner));
    }
    #[cfg(feature = "delta")]
    {
        use deltalake::datafusion::error::DataFusionError;
        if let Some(df) = e.downcast_ref::<DataFusionError>() {
            return match df {
                DataFusionError::ObjectStore(inner) => Some(is_transient(inner.as_ref())),
                DataFusionError::External(inner) => Some(is_transient(inner.as_ref())),
                DataFusionError::IoError(inner) => Some(is_transient(inner)),
                DataFusionError::Context(_, inner) => Some(is_transient(inner.as_ref())),
                DataFusionError::Shared(inner) => Some(is_transient(inner.as_ref())),
                _ => None,
            };
        }
        if let Some(dt) = e.downcast_ref::<deltalake::DeltaTableError>() {
            use deltalake::kernel::transaction::TransactionError;
            return match dt {
                deltalake::DeltaTableError::ObjectStore { source } => Some(is_transient(source)),
                // Another writer committed first and its commit conflicts with this one (or won
                // every retry): running the operation again reads the new version.
                deltalake::DeltaTableError::VersionAlreadyExists(_) => Some(true),
                deltalake::DeltaTableError::Transaction { source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_) } => Some(true),
                _ => None,
            };
        }
    }
    None
}

fn is_transient_io(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::TimedOut
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::Interrupted
    )
}

/// Whether the endpoint could not be reached at all (connection refused, DNS, timeout): the
/// subset of [`is_transient`] that says the server is not there, decided the same way.
pub fn is_unreachable(err: &(dyn Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(http.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout | HttpErrorKind::Request);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), ErrorKind::ConnectionRefused | ErrorKind::TimedOut | ErrorKind::NotConnected) {
                return true;
            }
        }
        current = e.source();
    }
    false
}

/// The error and its sources, joined, so that the root cause ("connection refused") shows.
pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapper")]
    struct Wrapper(#[source] Box<dyn Error + Send + Sync>);

    #[test]
    fn decides_from_types() {
        let refused = std::io::Error::new(ErrorKind::ConnectionRefused, "connection refused");
        assert!(is_transient(&refused));
        assert!(is_transient(&Wrapper(Box::new(std::io::Error::from(ErrorKind::TimedOut)))));
        assert!(!is_transient(&std::io::Error::from(ErrorKind::PermissionDenied)));
        // The words do not matter, only the types.
        assert!(!is_transient(&std::io::Error::other("connection refused, timed out, 503")));
        let not_found = object_store::Error::NotFound { path: "x".into(), source: Box::new(refused) };
        assert!(!is_transient(&not_found), "a missing object is final whatever its cause");
        let generic = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::from(ErrorKind::ConnectionReset)),
        };
        assert!(is_transient(&generic));
        assert!(is_transient(&Wrapper(Box::new(generic))));
        let denied = object_store::Error::PermissionDenied { path: "x".into(), source: Box::new(std::io::Error::from(ErrorKind::TimedOut)) };
        assert!(!is_transient(&denied));
        let http = HttpError::new(HttpErrorKind::Connect, std::io::Error::other("dns"));
        assert!(is_transient(&object_store::Error::Generic { store: "S3", source: Box::new(http) }));
        let decode = HttpError::new(HttpErrorKind::Decode, std::io::Error::other("bad body"));
        assert!(!is_transient(&decode));
    }

    #[test]
    fn chains_name_the_root_cause() {
        let e = Wrapper(Box::new(std::io::Error::other("connection refused")));
        assert_eq!(error_chain(&e), "wrapper: connection refused");
    }
}
