//! Landing each discovered file of a run date: hash, claim, raw copy, checks, Parquet.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::file::metadata::KeyValue;
use lake::Location;
use schemas::{paths, Dataset, RunDate};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::csv::CsvReader;
use crate::discover::{discover, Candidate, Ignored};
use lake::registry::{FeedRecord, FeedStatus, Registry};
use crate::sink::{BronzeSink, FileProblem};
use crate::BronzeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LandAction {
    Landed,
    Quarantined,
    /// The same content was landed before for this partner, dataset and date.
    AlreadyLanded,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedOutcome {
    pub action: LandAction,
    pub feed: FeedRecord,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct LandReport {
    pub date: Option<RunDate>,
    pub feeds: Vec<FeedOutcome>,
    pub ignored: Vec<Ignored>,
}

impl LandReport {
    pub fn count(&self, action: LandAction) -> usize {
        self.feeds.iter().filter(|f| f.action == action).count()
    }
    pub fn rows_landed(&self) -> u64 {
        self.feeds.iter().filter(|f| f.action == LandAction::Landed).map(|f| f.feed.rows).sum()
    }
    pub fn bytes_landed(&self) -> u64 {
        self.feeds.iter().filter(|f| f.action == LandAction::Landed).map(|f| f.feed.bytes).sum()
    }
}

pub(crate) fn store_err(loc: &Location, path: &Path, e: object_store::Error) -> BronzeError {
    BronzeError::Store { path: loc.describe(path), source: loc.classify(e) }
}


/// The SHA-256 (hex) and size of an object, read as a stream.
pub async fn hash_file(landing: &Location, path: &Path) -> Result<(String, u64), BronzeError> {
    let size = landing.store.head(path).await.map_err(|e| store_err(landing, path, e))?.size;
    let mut stream = Box::pin(lake::read_stream(landing.store.clone(), path.clone(), size));
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.try_next().await.map_err(|e| store_err(landing, path, e))? {
        hasher.update(&chunk);
    }
    Ok((hex(&hasher.finalize()), size))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lands every file of `date` found in the landing zone. `on_feed` is called as each file
/// finishes (for progress lines).
pub async fn land_date(
    landing: &Location,
    lake: &Location,
    date: RunDate,
    concurrency: usize,
    on_feed: &(dyn Fn(&FeedOutcome) + Sync),
) -> Result<LandReport, BronzeError> {
    land_date_partners(landing, lake, date, None, concurrency, on_feed).await
}

/// [`land_date`] for the files of `partners` only (all partners when `None`): a sharded run
/// lands, and repairs the interrupted landings of, its own partners and nothing else.
pub async fn land_date_partners(
    landing: &Location,
    lake: &Location,
    date: RunDate,
    partners: Option<&BTreeSet<String>>,
    concurrency: usize,
    on_feed: &(dyn Fn(&FeedOutcome) + Sync),
) -> Result<LandReport, BronzeError> {
    let (mut candidates, ignored) = discover(landing, date).await?;
    if let Some(p) = partners {
        candidates.retain(|c| p.contains(&c.partner));
    }
    let mut report = land_candidates(landing, lake, date, candidates, partners, concurrency, on_feed).await?;
    report.date = Some(date);
    report.ignored.splice(0..0, ignored);
    Ok(report)
}

/// Why a feed was given up before it was landed (see [`FeedStatus::Abandoned`]).
pub const CHANGED_WHILE_LANDING: &str = "changed_while_landing";

/// Lands the given files of `date` (all the files of that date in the landing zone): hashes
/// them, abandons the date's unfinished feeds whose content is gone, skips content landed
/// before, claims feed ids in landing order, then writes raw copies and Parquet, several
/// files at a time.
async fn land_candidates(
    landing: &Location,
    lake: &Location,
    date: RunDate,
    candidates: Vec<Candidate>,
    partners: Option<&BTreeSet<String>>,
    concurrency: usize,
    on_feed: &(dyn Fn(&FeedOutcome) + Sync),
) -> Result<LandReport, BronzeError> {
    let registry = Registry::new(lake);
    let ingested_at = chrono::Utc::now();
    // 1. Hash every file and look its content up.
    let hashed: Vec<(Candidate, String, u64, Option<FeedRecord>)> = futures::stream::iter(candidates)
        .map(|c| {
            let registry = &registry;
            async move {
                let (sha, bytes) = hash_file(landing, &c.path).await?;
                let existing = registry.find_by_key(c.date, &c.partner, c.dataset, &sha).await?;
                Ok::<_, BronzeError>((c, sha, bytes, existing))
            }
        })
        .buffered(concurrency.max(1) * 2)
        .try_collect()
        .await?;

    // 2. A feed of this date left `landing` by a crash whose content is no longer in the
    // landing zone (the file was replaced or removed) can never be finished: abandon it, so
    // that it blocks neither silver nor later runs. The file's current content, if any, is a
    // new feed below.
    let mut report = LandReport::default();
    let present: std::collections::HashSet<(&str, Dataset, &str)> =
        hashed.iter().map(|(c, sha, _, _)| (c.partner.as_str(), c.dataset, sha.as_str())).collect();
    for mut rec in registry.feeds_for_date(date).await? {
        let ours = partners.is_none_or(|p| p.contains(&rec.partner));
        if ours && rec.status == FeedStatus::Landing && !present.contains(&(rec.partner.as_str(), rec.dataset, rec.sha256.as_str())) {
            rec.status = FeedStatus::Abandoned;
            rec.reason = Some(CHANGED_WHILE_LANDING.into());
            rec.detail = Some("an interrupted landing whose content is no longer in the landing zone (the file was replaced or removed); its current content, if any, is a new feed".into());
            registry.save(&rec).await?;
            report.ignored.push(Ignored { path: rec.source.clone(), reason: format!("{CHANGED_WHILE_LANDING}: feed {} abandoned: {}", rec.feed_id, rec.detail.as_deref().unwrap_or_default()) });
        }
    }

    // 3. Claim feed ids in landing order; content seen before is reported, not re-landed.
    let mut next = registry.max_feed_number().await?;
    let mut seen_in_run = std::collections::HashSet::new();
    let mut jobs = Vec::new();
    for (c, sha, bytes, existing) in hashed {
        match existing {
            Some(rec) if matches!(rec.status, FeedStatus::Landed | FeedStatus::Quarantined) => {
                let outcome = FeedOutcome { action: LandAction::AlreadyLanded, feed: rec };
                on_feed(&outcome);
                report.feeds.push(outcome);
            }
            _ if !seen_in_run.insert((c.partner.clone(), c.dataset, c.date, sha.clone())) => {
                // The same content twice in one run (two names): landed once.
                let rec = registry.find_by_key(c.date, &c.partner, c.dataset, &sha).await?;
                let mut feed = rec.unwrap_or_else(|| new_record(landing, &c, &sha, bytes, &ingested_at));
                feed.source = landing.describe(&c.path);
                let outcome = FeedOutcome { action: LandAction::AlreadyLanded, feed };
                on_feed(&outcome);
                report.feeds.push(outcome);
            }
            Some(rec) => {
                // A landing that a crash interrupted (or abandoned, and the same content is
                // back): finish it under the same id.
                let mut feed = new_record(landing, &c, &sha, bytes, &ingested_at);
                feed.feed_id = rec.feed_id;
                jobs.push((c, feed));
            }
            None => {
                let mut feed = new_record(landing, &c, &sha, bytes, &ingested_at);
                registry.claim(&mut next, &mut feed).await?;
                jobs.push((c, feed));
            }
        }
    }

    // 4. Land the new files, `concurrency` at a time, each on its own task.
    let landed = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<FeedOutcome, Ignored>> = futures::stream::iter(jobs.into_iter().enumerate())
        .map(|(i, (c, feed))| {
            let landing = landing.clone();
            let lake = lake.clone();
            tokio::spawn(async move {
                lake::fault::point("bronze.land_one", i).await;
                land_one(&landing, &lake, &c, feed).await
            })
        })
        .buffered(concurrency.max(1))
        .map(|joined| match joined {
            Ok(r) => r,
            Err(e) => Err(BronzeError::Input { path: "landing task".into(), message: format!("a landing task failed: {e}") }),
        })
        .inspect_ok(|o| {
            if let Ok(o) = o {
                on_feed(o)
            }
        })
        .and_then(|o| {
            let n = landed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                lake::fault::point("bronze.feed_landed", n).await;
                Ok(o)
            }
        })
        .try_collect()
        .await?;
    for r in results {
        match r {
            Ok(o) => report.feeds.push(o),
            Err(ignored) => report.ignored.push(ignored),
        }
    }
    report.feeds.sort_by(|a, b| a.feed.feed_id.cmp(&b.feed.feed_id));
    Ok(report)
}

fn new_record(landing: &Location, c: &Candidate, sha: &str, bytes: u64, at: &chrono::DateTime<chrono::Utc>) -> FeedRecord {
    FeedRecord {
        feed_id: String::new(),
        partner: c.partner.clone(),
        dataset: c.dataset,
        date: c.date,
        file_name: c.file_name.clone(),
        source: landing.describe(&c.path),
        sha256: sha.into(),
        bytes,
        status: FeedStatus::Landing,
        reason: None,
        detail: None,
        rows: 0,
        malformed_rows: 0,
        columns: Vec::new(),
        extra_columns: Vec::new(),
        renamed_columns: Vec::new(),
        raw_path: paths::raw_file(c.dataset, &c.partner, c.date, sha, &c.file_name).to_string(),
        bronze_path: None,
        ingested_at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    }
}

fn writer_properties(feed: &FeedRecord) -> WriterProperties {
    let mut props = WriterProperties::builder()
        // Dictionaries only where values repeat (see LOW_CARDINALITY_COLUMNS): interning
        // unique ids and amounts was the largest cost of landing.
        .set_dictionary_enabled(false);
    for c in schemas::contract::LOW_CARDINALITY_COLUMNS.iter().chain(&["_feed_id", "_source_file"]) {
        props = props.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(*c), true);
    }
    props
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .set_created_by(format!("medallion {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("medallion.feed_id".into(), feed.feed_id.clone()),
            KeyValue::new("medallion.dataset".into(), feed.dataset.name().to_string()),
            KeyValue::new("medallion.partner".into(), feed.partner.clone()),
            KeyValue::new("medallion.sha256".into(), feed.sha256.clone()),
        ]))
        .build()
}

/// Streams one file: the raw copy and the Parquet conversion in the same pass, so memory is
/// bounded by one batch whatever the file size. A file that changed since it was hashed is
/// abandoned (`Err(Ignored)`, registry status `abandoned`): the next run lands its final content.
pub(crate) async fn land_one(landing: &Location, lake: &Location, c: &Candidate, mut feed: FeedRecord) -> Result<Result<FeedOutcome, Ignored>, BronzeError> {
    let raw_path = Path::from(feed.raw_path.as_str());
    let bronze_path = lake.path(&paths::bronze_feed(c.dataset, &c.partner, c.date, &feed.feed_id));
    let raw_exists = match lake.store.head(&raw_path).await {
        Ok(meta) => meta.size == feed.bytes,
        Err(object_store::Error::NotFound { .. }) => false,
        Err(e) => return Err(store_err(lake, &raw_path, e)),
    };
    let mut raw_writer = (!raw_exists).then(|| BufWriter::new(lake.store.clone(), raw_path.clone()));

    let ingested_at_us = chrono::DateTime::parse_from_rfc3339(&feed.ingested_at).map(|t| t.timestamp_micros()).unwrap_or(0);
    let mut sink = BronzeSink::new(c.dataset, &feed.feed_id, &c.file_name, ingested_at_us);
    let mut reader = CsvReader::default();
    let mut problem: Option<FileProblem> = None;
    let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
    let mut hasher = Sha256::new();

    let mut stream = Box::pin(lake::read_stream(landing.store.clone(), c.path.clone(), feed.bytes));
    let mut more = true;
    let mut vanished = false;
    while more {
        let chunk = match stream.try_next().await {
            Ok(chunk) => chunk,
            // A file truncated or removed while it is read: abandoned below, not an error.
            Err(e) => match landing.store.head(&c.path).await {
                Ok(meta) if meta.size == feed.bytes => return Err(store_err(landing, &c.path, e)),
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                    vanished = true;
                    break;
                }
                Err(_) => return Err(store_err(landing, &c.path, e)),
            },
        };
        match &chunk {
            Some(chunk) => {
                hasher.update(chunk);
                if let Some(w) = raw_writer.as_mut() {
                    w.write_all(chunk).await.map_err(|source| BronzeError::Io { path: lake.describe(&raw_path), source })?;
                }
                if problem.is_none() {
                    if let Err(p) = reader.push(chunk, &mut |rec| sink.record(rec)) {
                        problem = Some(p);
                    }
                }
            }
            None => {
                more = false;
                if problem.is_none() {
                    if let Err(p) = reader.finish(&mut |rec| sink.record(rec)) {
                        problem = Some(p);
                    }
                }
                if problem.is_none() {
                    if sink.header.is_none() {
                        problem = Some(FileProblem { reason: "empty_file", detail: "the file has no header row".into() });
                    } else {
                        sink.flush();
                    }
                }
            }
        }
        if problem.is_none() && !sink.batches.is_empty() {
            let w = match writer.as_mut() {
                Some(w) => w,
                None => {
                    let schema = sink.header.as_ref().expect("batches imply a header").schema.clone();
                    let out = BufWriter::new(lake.store.clone(), bronze_path.clone());
                    let w = AsyncArrowWriter::try_new(out, schema, Some(writer_properties(&feed)))
                        .map_err(|source| BronzeError::Parquet { path: lake.describe(&bronze_path), source })?;
                    writer.insert(w)
                }
            };
            for batch in sink.batches.drain(..) {
                w.write(&batch).await.map_err(|source| BronzeError::Parquet { path: lake.describe(&bronze_path), source })?;
            }
        }
        sink.batches.clear();
    }

    let sha = hex(&hasher.finalize());
    let size_now = match landing.store.head(&c.path).await {
        Ok(meta) => Some(meta.size),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => return Err(store_err(landing, &c.path, e)),
    };
    if vanished || sha != feed.sha256 || size_now != Some(feed.bytes) {
        if let Some(w) = writer {
            let _ = w.into_inner().abort().await;
        }
        if let Some(mut w) = raw_writer {
            let _ = w.abort().await;
        }
        feed.status = FeedStatus::Abandoned;
        feed.reason = Some(CHANGED_WHILE_LANDING.into());
        feed.detail = Some("the file changed while it was being landed; the next run lands its final content".into());
        Registry::new(lake).save(&feed).await?;
        return Ok(Err(Ignored {
            path: feed.source.clone(),
            reason: format!("{CHANGED_WHILE_LANDING}: feed {} abandoned: the file changed while it was being landed; run bronze again once the upload is complete", feed.feed_id),
        }));
    }
    if let Some(mut w) = raw_writer {
        w.shutdown().await.map_err(|source| BronzeError::Io { path: lake.describe(&raw_path), source })?;
    }
    feed.rows = sink.rows;
    feed.malformed_rows = sink.malformed;
    if let Some(h) = &sink.header {
        feed.columns = h.columns.clone();
        feed.extra_columns = h.extra.clone();
        feed.renamed_columns = h.renamed.clone();
    }
    let action = match problem {
        Some(p) => {
            if let Some(w) = writer {
                let _ = w.into_inner().abort().await;
            }
            // A quarantined file contributes no rows.
            feed.rows = 0;
            feed.malformed_rows = 0;
            feed.status = FeedStatus::Quarantined;
            feed.reason = Some(p.reason.into());
            feed.detail = Some(p.detail);
            feed.bronze_path = None;
            LandAction::Quarantined
        }
        None => {
            let w = writer.expect("a file with a header has a batch");
            w.close().await.map_err(|source| BronzeError::Parquet { path: lake.describe(&bronze_path), source })?;
            feed.status = FeedStatus::Landed;
            feed.bronze_path = Some(bronze_path.to_string());
            LandAction::Landed
        }
    };
    Registry::new(lake).save(&feed).await?;
    Ok(Ok(FeedOutcome { action, feed }))
}

#[allow(dead_code)]
fn _assert_send(l: &Location) -> Arc<dyn object_store::ObjectStore> {
    l.store.clone()
}
