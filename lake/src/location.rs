//! Lake and landing-zone storage: one code path over `object_store` for a local folder and
//! for S3 / MinIO (`s3://bucket/prefix`, configured through the standard `AWS_*` variables).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig};
use schemas::LakePath;

use crate::error::{error_chain, is_transient, is_unreachable};

/// The object_store path of a lake path. The segments are already encoded exactly as
/// object_store encodes them (`schemas::paths::encode_segment`), so this only re-validates:
/// lake layouts are byte-identical to object_store's own `Path::join`.
pub fn path(p: &LakePath) -> Path {
    Path::parse(p.as_str()).unwrap_or_else(|_| p.segments().map(object_store::path::PathPart::from).collect())
}

/// Errors opening or reaching a storage location. Every message names the location; every
/// variant caused by a library error keeps it as its source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {location}: {message}")]
    Invalid { what: &'static str, location: String, message: String },
    #[error("{what} {location}: {context}{source}")]
    Io { what: &'static str, location: String, context: &'static str, source: std::io::Error },
    #[error("{what} {location}: invalid S3 configuration: {}", error_chain(.source))]
    Config { what: &'static str, location: String, source: object_store::Error },
    #[error("cannot reach the S3 endpoint {endpoint} for {location}: {} (check AWS_ENDPOINT_URL and that the server runs)", error_chain(.source))]
    Unreachable { endpoint: String, location: String, source: object_store::Error },
    #[error("bucket {bucket:?} does not exist at {endpoint} (location {location}); create it first")]
    MissingBucket { bucket: String, endpoint: String, location: String, source: object_store::Error },
    #[error("access to {location} at {endpoint} was denied: {} (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)", error_chain(.source))]
    Denied { endpoint: String, location: String, source: object_store::Error },
    #[error("storage error at {location}: {}", error_chain(.source))]
    Other { location: String, source: object_store::Error },
}

impl StoreError {
    /// Whether retrying later may help ([`crate::is_transient`] on the cause).
    pub fn is_transient(&self) -> bool {
        is_transient(self)
    }
}

/// An opened storage location: the lake or the landing zone.
#[derive(Debug, Clone)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// What the user gave, for messages (never contains secrets: keys come from the environment).
    pub display: String,
    /// Set for a local folder: its absolute path.
    pub local_root: Option<PathBuf>,
    /// Set for S3: the bucket and the endpoint (or "AWS" when none is configured).
    pub s3: Option<S3Info>,
}

#[derive(Debug, Clone)]
pub struct S3Info {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: String,
}

impl Location {
    /// Opens `spec`: `s3://bucket[/prefix]`, `file:///abs/path` or a plain folder path.
    /// A local folder is created when `create` is set, else it must exist.
    pub fn open(what: &'static str, spec: &str, create: bool) -> Result<Location, StoreError> {
        if let Some(rest) = spec.strip_prefix("s3://").or_else(|| spec.strip_prefix("s3a://")) {
            return Self::open_s3(what, spec, rest);
        }
        if spec.contains("://") && !spec.starts_with("file://") {
            return Err(StoreError::Invalid {
                what,
                location: spec.into(),
                message: "unsupported scheme: use a local folder, file:///path or s3://bucket/prefix".into(),
            });
        }
        let path = PathBuf::from(spec.strip_prefix("file://").unwrap_or(spec));
        if spec.is_empty() {
            return Err(StoreError::Invalid { what, location: spec.into(), message: "empty path".into() });
        }
        if create {
            std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
                what,
                location: spec.into(),
                context: "cannot create folder: ",
                source,
            })?;
        } else if !path.is_dir() {
            return Err(StoreError::Invalid { what, location: spec.into(), message: "no such folder".into() });
        }
        let abs = std::fs::canonicalize(&path).map_err(|source| StoreError::Io {
            what,
            location: spec.into(),
            context: "",
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(&abs).map_err(|source| StoreError::Other { location: spec.into(), source })?;
        Ok(Location { store: Arc::new(fs), display: abs.display().to_string(), local_root: Some(abs), s3: None })
    }

    fn open_s3(what: &'static str, spec: &str, rest: &str) -> Result<Location, StoreError> {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty() {
            return Err(StoreError::Invalid { what, location: spec.into(), message: "missing bucket name".into() });
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .or_else(|_| std::env::var("AWS_ENDPOINT"))
            .unwrap_or_else(|_| "AWS".into());
        let s3 = s3_builder(bucket).build().map_err(|source| StoreError::Config { what, location: spec.into(), source })?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Location {
            store,
            display: format!("s3://{bucket}{}{prefix}", if prefix.is_empty() { "" } else { "/" }),
            local_root: None,
            s3: Some(S3Info { bucket: bucket.into(), prefix: prefix.into(), endpoint }),
        })
    }

    /// Makes one cheap request so that a wrong endpoint, a missing bucket or bad credentials
    /// are reported up front with a message naming them, instead of deep inside a stage.
    pub async fn check(&self) -> Result<(), StoreError> {
        if self.s3.is_none() {
            return Ok(());
        }
        let err = match self.store.list_with_delimiter(None).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if is_unreachable(&err) {
            return Err(self.classify(err));
        }
        // The server answered but refused the listing. object_store types a status only for
        // object requests: look one object up to learn whether access is denied (403/401) or
        // the bucket is missing (404: with access to the bucket, the listing would have worked).
        match self.store.head(&Path::from("_medallion/probe")).await {
            Err(probe @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. })) => {
                Err(self.classify(probe))
            }
            Err(object_store::Error::NotFound { .. }) => {
                let s3 = self.s3.as_ref().expect("checked above");
                Err(StoreError::MissingBucket {
                    bucket: s3.bucket.clone(),
                    endpoint: s3.endpoint.clone(),
                    location: self.display.clone(),
                    source: err,
                })
            }
            _ => Err(self.classify(err)),
        }
    }

    /// Turns an object_store error into one that names this location, by its type: an
    /// endpoint that cannot be reached, denied access, or anything else (which keeps the cause).
    pub fn classify(&self, err: object_store::Error) -> StoreError {
        match &self.s3 {
            Some(s3) if is_unreachable(&err) => {
                StoreError::Unreachable { endpoint: s3.endpoint.clone(), location: self.display.clone(), source: err }
            }
            Some(s3)
                if matches!(
                    err,
                    object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
                ) =>
            {
                StoreError::Denied { endpoint: s3.endpoint.clone(), location: self.display.clone(), source: err }
            }
            _ => StoreError::Other { location: self.display.clone(), source: err },
        }
    }

    /// The object_store path of a lake path (see [`path`]).
    pub fn path(&self, p: &LakePath) -> Path {
        path(p)
    }

    /// A user-facing rendering of a lake path inside this location.
    pub fn describe_lake(&self, p: &LakePath) -> String {
        self.describe(&path(p))
    }

    /// The whole contents of each of `paths`, in order (`None`: no such object), read
    /// [`GETS_IN_FLIGHT`] at a time: small objects such as run records, one request each on
    /// S3. The first error stops the rest and names its path.
    pub async fn get_many(&self, paths: Vec<Path>) -> Result<Vec<Option<bytes::Bytes>>, (Path, object_store::Error)> {
        use futures::{StreamExt, TryStreamExt};
        // Spawned tasks (owned futures): a borrowing stream would make callers' futures not
        // provably `Send` (rustc's higher-ranked lifetime limitation).
        futures::stream::iter(paths)
            .map(|path| {
                let store = self.store.clone();
                tokio::spawn(async move {
                    let got = match store.get(&path).await {
                        Ok(r) => r.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    };
                    got.map_err(|e| (path, e))
                })
            })
            .buffered(GETS_IN_FLIGHT)
            .map(|joined| joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())))
            .try_collect()
            .await
    }

    /// A user-facing rendering of a path inside this location.
    pub fn describe(&self, path: &Path) -> String {
        if self.display.ends_with('/') {
            format!("{}{}", self.display, path)
        } else {
            format!("{}/{}", self.display, path)
        }
    }
}

/// Objects [`Location::get_many`] reads at once.
pub const GETS_IN_FLIGHT: usize = 16;

/// Bytes per read when streaming an object: large enough that a local read is one blocking
/// call per few MiB (object_store's own local stream reads 8 KiB at a time) and an S3 read is
/// one ranged GET per few MiB.
pub const READ_CHUNK: u64 = 4 * 1024 * 1024;

/// Streams an object of known size in `READ_CHUNK` ranges, reading one range ahead.
pub fn read_stream(
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
) -> impl futures::Stream<Item = object_store::Result<bytes::Bytes>> + Send + 'static {
    use futures::StreamExt;
    use object_store::ObjectStoreExt;
    let ranges: Vec<std::ops::Range<u64>> =
        (0..size).step_by(READ_CHUNK as usize).map(|start| start..(start + READ_CHUNK).min(size)).collect();
    futures::stream::iter(ranges)
        .map(move |r| {
            let store = store.clone();
            let path = path.clone();
            async move { store.get_range(&path, r).await }
        })
        .buffered(2)
}

/// The S3 client of `bucket`, from the standard `AWS_*` variables, with the lake's retries
/// and `us-east-1` when no region is configured. Every S3 client of the lake is built here.
pub(crate) fn s3_builder(bucket: &str) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry_config());
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    builder
}

/// Retries for transient failures (5xx, timeouts, connection resets) with exponential backoff
/// and jitter, bounded so that an unreachable endpoint is reported within about half a minute.
pub(crate) fn retry_config() -> RetryConfig {
    let max_retries = std::env::var("MEDALLION_S3_MAX_RETRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    RetryConfig {
        backoff: BackoffConfig { init_backoff: Duration::from_millis(200), max_backoff: Duration::from_secs(5), base: 2.0 },
        max_retries,
        retry_timeout: Duration::from_secs(30),
    }
}

/// Hides every credential of a connection string so that it can appear in logs and errors:
/// the userinfo password (`postgres://user:secret@host/db` → `postgres://user:***@host/db`),
/// `password=` (and `sslpassword=`, `pass=`, `pwd=`) query or key-value parameters, and, in a
/// string that does not parse as a URL, everything between the scheme's `//` and the last `@`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.cannot_be_a_base() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let v = if is_secret_key(&k) { "***".to_string() } else { v.into_owned() };
                        (k.into_owned(), v)
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            redact_params(&u.to_string())
        }
        _ => {
            let redacted = match url.split_once("://") {
                Some((scheme, rest)) => match rest.rfind('@') {
                    Some(at) => format!("{scheme}://***{}", &rest[at..]),
                    None => url.to_string(),
                },
                None => url.to_string(),
            };
            redact_params(&redacted)
        }
    }
}

fn is_secret_key(k: &str) -> bool {
    matches!(k.to_ascii_lowercase().as_str(), "password" | "sslpassword" | "pass" | "pwd" | "passwd" | "secret")
}

/// `key=value` pieces (separated by `&`, `?`, `;` or whitespace) whose key names a secret get
/// their value replaced by `***`.
fn redact_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(|c: char| matches!(c, '&' | '?' | ';' | '/') || c.is_whitespace()).map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        out.push_str(&rest[..=eq]);
        let after = &rest[eq + 1..];
        let end = after.find(|c: char| c == '&' || c == ';' || c.is_whitespace()).unwrap_or(after.len());
        if is_secret_key(key) && !after[..end].is_empty() && &after[..end] != "***" {
            out.push_str("***");
        } else {
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://bob:s3cret@db:5432/x"), "postgres://bob:***@db:5432/x");
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("./lake"), "./lake");
        let all = [
            ("postgres://bob@db/x?password=s3cret&sslmode=disable", "postgres://bob@db/x?password=***&sslmode=disable"),
            ("postgres://bob:s3cret@db:notaport/x", "postgres://***@db:notaport/x"),
            ("postgres://bob:s3cret@/x?host=/nonexistent", "postgres://***@/x?host=/nonexistent"),
            ("host=db user=bob password=s3cret dbname=x", "host=db user=bob password=*** dbname=x"),
            ("postgres://db/x?PASSWORD=s3cret", "postgres://db/x?PASSWORD=***"),
        ];
        for (raw, want) in all {
            let got = redact_url(raw);
            assert!(!got.contains("s3cret"), "{raw} -> {got}");
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn local_locations() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Location::open("landing zone", missing.to_str().unwrap(), false).unwrap_err();
        assert!(err.to_string().contains("no such folder"), "{err}");
        let loc = Location::open("lake", missing.to_str().unwrap(), true).unwrap();
        assert!(loc.local_root.is_some());
        assert!(Location::open("lake", "gs://x/y", true).unwrap_err().to_string().contains("unsupported scheme"));
    }

    #[test]
    fn lake_paths_are_object_store_paths_byte_for_byte() {
        use object_store::path::PathPart;
        use schemas::{paths, Dataset};
        let date: schemas::RunDate = "2026-11-20".parse().unwrap();
        for (partner, file) in [("acme", "a b.csv"), ("..", "../../etc/passwd"), ("x", "%41#?*|~[]{}^`\"<>\\é\u{7f}\n"), ("p", ".")] {
            let lp = paths::raw_file(Dataset::Orders, partner, date, "0123456789abcdef", file);
            let expected = Path::from("raw")
                .join(PathPart::from("orders"))
                .join(PathPart::from(format!("partner={partner}").as_str()))
                .join(PathPart::from("ingest_date=2026-11-20"))
                .join(PathPart::from("0123456789abcdef"))
                .join(PathPart::from(file));
            assert_eq!(path(&lp), expected, "{file:?}");
            assert_eq!(path(&lp).as_ref(), lp.as_str());
            assert!(path(&lp).parts().all(|p| p.as_ref() != ".." && p.as_ref() != "."), "{lp}");
        }
        let feed = paths::bronze_feed(Dataset::Orders, "acme", date, "FD00001");
        assert_eq!(
            path(&feed),
            Path::from("bronze/orders/partner=acme/ingest_date=2026-11-20").join("FD00001.parquet")
        );
    }

    #[test]
    fn s3_location_parsing() {
        let loc = Location::open("lake", "s3://bucket/some/prefix/", false).unwrap();
        let s3 = loc.s3.unwrap();
        assert_eq!(s3.bucket, "bucket");
        assert_eq!(s3.prefix, "some/prefix");
        assert_eq!(loc.display, "s3://bucket/some/prefix");
        assert!(Location::open("lake", "s3:///x", false).is_err());
    }
}
