//! Pushing a feed into the landing zone at `{partner}/{dataset}/{date}/{file name}`: the one
//! code path of `medallion ingest` (local files) and `POST /v1/feeds` (an HTTP body).
//!
//! Guarantees: the partner id, dataset and file name are checked before any byte is read; the
//! content is streamed (never held whole) into a staging object under `_uploads/` of the
//! landing zone while its SHA-256 and size are computed, then published by a server-side copy
//! to its final name, so the feed appears whole or not at all; the staging object is deleted
//! whatever happens (a refused, oversize or aborted feed leaves nothing behind; only a crash
//! of the process mid-stream can leave a staging object, which bronze never reads). A file
//! of the same name is never overwritten: the same content is "already received", different
//! content is refused.

use std::path::PathBuf;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use lake::Location;
use object_store::path::{Path, PathPart};
use object_store::{ObjectStoreExt, WriteMultipart};
use schemas::contract::{validate_file_name, validate_partner_id};
use schemas::{Dataset, RunDate};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::land::store_err;
use crate::BronzeError;

/// The landing-zone folder of uploads in flight (bronze's discovery never lands from it).
pub const UPLOADS_DIR: &str = "_uploads";

/// Why a feed was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A bad partner id, dataset, date or file name: nothing was read.
    #[error("{0}")]
    Invalid(String),
    #[error("{path} already exists in the landing zone with different content; rename the new file")]
    Conflict { path: String },
    #[error("the feed is larger than the limit of {limit} bytes; nothing was landed")]
    TooLarge { limit: u64 },
    /// The content could not be read (a local file, or an HTTP body the client aborted).
    #[error("reading {what}: {source}")]
    Read { what: String, source: Box<dyn std::error::Error + Send + Sync> },
    #[error(transparent)]
    Bronze(#[from] BronzeError),
}

impl From<IngestError> for BronzeError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Bronze(b) => b,
            IngestError::Read { what, source } => match source.downcast::<std::io::Error>() {
                Ok(io) => BronzeError::Io { path: what, source: *io },
                Err(other) => BronzeError::Input { path: what, message: other.to_string() },
            },
            other => BronzeError::Usage(other.to_string()),
        }
    }
}

/// Where a feed goes, checked: partner id, dataset, date and (when given) file name.
#[derive(Debug, Clone)]
pub struct FeedTarget {
    pub partner: String,
    pub dataset: Dataset,
    pub date: RunDate,
    /// None: named `{dataset}-{first 16 hex digits of its SHA-256}.csv` once streamed, so
    /// the same content sent again has the same name.
    pub file_name: Option<String>,
}

impl FeedTarget {
    pub fn new(partner: &str, dataset: &str, date: RunDate, file_name: Option<&str>) -> Result<FeedTarget, IngestError> {
        validate_partner_id(partner).map_err(IngestError::Invalid)?;
        let ds = Dataset::parse(dataset).ok_or_else(|| {
            IngestError::Invalid(format!("unknown dataset {dataset:?} (expected one of: {})", Dataset::ALL.map(|d| d.name()).join(", ")))
        })?;
        if let Some(name) = file_name {
            validate_file_name(name).map_err(IngestError::Invalid)?;
            if !name.to_ascii_lowercase().ends_with(".csv") {
                return Err(IngestError::Invalid(format!("{name:?}: a feed's file name must end in .csv (bronze reads only .csv files)")));
            }
        }
        Ok(FeedTarget { partner: partner.to_string(), dataset: ds, date, file_name: file_name.map(str::to_string) })
    }

    fn path(&self, file_name: &str) -> Path {
        let date = self.date.to_string();
        Path::from_iter([self.partner.as_str(), self.dataset.name(), date.as_str(), file_name].map(PathPart::from))
    }
}

/// A feed in the landing zone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ingested {
    /// Where it is, as the user sees it (`landing/acme/orders/2026-11-20/orders.csv`).
    pub path: String,
    /// Its key inside the landing zone (`acme/orders/2026-11-20/orders.csv`).
    pub key: String,
    pub sha256: String,
    pub bytes: u64,
    /// The same content was already there under this name: nothing was written.
    pub already_received: bool,
}

fn staging_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    format!("{:016x}.part", h.finish())
}

/// Streams `body` (`what` names it in errors) into the landing zone at `target`, refusing
/// it once it exceeds `max_bytes` (see the module doc for the guarantees).
pub async fn ingest_stream<S, E>(landing: &Location, target: &FeedTarget, what: &str, mut body: S, max_bytes: Option<u64>) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let staging = Path::from_iter([UPLOADS_DIR, &staging_name()].map(PathPart::from));
    let upload = landing.store.put_multipart(&staging).await.map_err(|e| store_err(landing, &staging, e))?;
    let mut writer = WriteMultipart::new(upload);
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    let streamed: Result<(), IngestError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| IngestError::Read { what: what.to_string(), source: e.into() })?;
            bytes += chunk.len() as u64;
            if let Some(limit) = max_bytes.filter(|m| bytes > *m) {
                return Err(IngestError::TooLarge { limit });
            }
            hasher.update(&chunk);
            writer.put(chunk);
            // Back-pressure: at most a few parts in flight, so memory stays bounded.
            writer.wait_for_capacity(4).await.map_err(|e| store_err(landing, &staging, e))?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = streamed {
        let _ = writer.abort().await;
        return Err(e);
    }
    writer.finish().await.map_err(|e| store_err(landing, &staging, e))?;
    let sha256: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let name = target.file_name.clone().unwrap_or_else(|| format!("{}-{}.csv", target.dataset.name(), &sha256[..16]));
    let path = target.path(&name);
    let published = publish(landing, &staging, &path, &sha256).await;
    if let Err(e) = landing.store.delete(&staging).await {
        tracing::warn!("could not delete the staging object {}: {e}", landing.describe(&staging));
    }
    let already_received = published?;
    Ok(Ingested { path: landing.describe(&path), key: path.to_string(), sha256, bytes, already_received })
}

/// Copies the staged feed to `path` unless a file is there; true when that file has the same
/// content (already received), a conflict when it differs.
async fn publish(landing: &Location, staging: &Path, path: &Path, sha256: &str) -> Result<bool, IngestError> {
    let exists = match landing.store.copy_if_not_exists(staging, path).await {
        Ok(()) => return Ok(false),
        Err(object_store::Error::AlreadyExists { .. }) => true,
        // Stores without an atomic conditional copy (S3 unless configured): look, then copy.
        Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => match landing.store.head(path).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(store_err(landing, path, e).into()),
        },
        Err(e) => return Err(store_err(landing, path, e).into()),
    };
    if !exists {
        landing.store.copy(staging, path).await.map_err(|e| store_err(landing, path, e))?;
        return Ok(false);
    }
    let mut existing = landing.store.get(path).await.map_err(|e| store_err(landing, path, e))?.into_stream();
    let mut h = Sha256::new();
    while let Some(chunk) = existing.next().await {
        h.update(chunk.map_err(|e| store_err(landing, path, e))?);
    }
    let theirs: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if theirs == sha256 {
        Ok(true)
    } else {
        Err(IngestError::Conflict { path: landing.describe(path) })
    }
}

/// A local file as a stream of chunks.
fn file_stream(file: tokio::fs::File) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
    Box::pin(futures::stream::try_unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        let n = f.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(buf), f)))
    }))
}

/// `medallion ingest`: copies local files into the landing zone at
/// `{partner}/{dataset}/{date}/{file name}`. Refuses a bad partner id, dataset or file name
/// and anything but a regular file before writing anything, and never overwrites a different
/// file of the same name. Returns where each file is.
pub async fn ingest_files(landing: &Location, partner: &str, dataset: &str, date: RunDate, files: &[PathBuf]) -> Result<Vec<String>, BronzeError> {
    let mut targets = Vec::new();
    for f in files {
        let name = f.file_name().and_then(|n| n.to_str()).ok_or_else(|| BronzeError::Usage(format!("{}: not a file name", f.display())))?;
        // Checked by name first: a bad partner or dataset is reported before a bad file.
        FeedTarget::new(partner, dataset, date, None)?;
        validate_file_name(name).map_err(BronzeError::Usage)?;
        // Only regular files: a symlink is never followed (it could point anywhere, e.g.
        // /etc/passwd), and a directory, FIFO, socket or device is named for what it is.
        let kind = match std::fs::symlink_metadata(f) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such file"),
            Err(source) => return Err(BronzeError::Io { path: f.display().to_string(), source }),
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                let t = m.file_type();
                if t.is_file() {
                    None
                } else if t.is_symlink() {
                    Some("is a symbolic link (not followed: pass the file it points to)")
                } else if t.is_dir() {
                    Some("is a directory")
                } else if t.is_fifo() {
                    Some("is a FIFO (named pipe)")
                } else if t.is_socket() {
                    Some("is a socket")
                } else {
                    Some("is a device, not a regular file")
                }
            }
        };
        if let Some(kind) = kind {
            return Err(BronzeError::Usage(format!("{}: {kind}; only regular files can be ingested", f.display())));
        }
        let target = FeedTarget { file_name: Some(name.to_string()), ..FeedTarget::new(partner, dataset, date, None)? };
        targets.push((f, target));
    }
    let mut out = Vec::new();
    for (f, target) in targets {
        let file = tokio::fs::File::open(f).await.map_err(|source| BronzeError::Io { path: f.display().to_string(), source })?;
        let done = ingest_stream(landing, &target, &f.display().to_string(), file_stream(file), None).await?;
        out.push(done.path);
    }
    Ok(out)
}
