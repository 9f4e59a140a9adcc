//! Re-landing a date from the lake's immutable raw copies (`backfill --from-raw`): every feed
//! the registry holds for the date is read again from `raw/` — never from the landing zone,
//! which may be archived or gone — and its bronze Parquet rewritten under the same feed id,
//! so a fix in how files are read reaches history while feed ids, ingestion times and thus
//! silver and gold stay what a first landing with the fixed reader would have produced.
//!
//! Guarantees: a raw copy the registry does not record, or one whose bytes no longer hash to the recorded SHA-256 stops the date
//! with an error naming it (the lake is damaged; nothing is rewritten); each Parquet file is
//! replaced whole (object stores publish an object atomically), so a crash leaves either the
//! old or the new file; feeds that were abandoned are left alone.

use futures::{StreamExt, TryStreamExt};
use lake::registry::{FeedRecord, FeedStatus, Registry};
use lake::Location;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use schemas::{paths, Dataset, RunDate};

use crate::discover::{Candidate, Ignored};
use crate::land::{hash_file, land_one, store_err, FeedOutcome, LandReport};
use crate::BronzeError;

/// The feeds of `date` that can be re-landed from their raw copies, each raw copy checked
/// against its recorded size and SHA-256, and those that cannot, with why.
pub async fn raw_feeds(lake: &Location, date: RunDate) -> Result<(Vec<(Candidate, FeedRecord)>, Vec<Ignored>), BronzeError> {
    let records = Registry::new(lake).feeds_for_date(date).await?;
    let known: std::collections::HashSet<&str> = records.iter().map(|r| r.raw_path.as_str()).collect();
    if let Some(orphan) = raw_copies(lake, date).await?.into_iter().find(|p| !known.contains(p.as_ref())) {
        return Err(BronzeError::Input {
            path: lake.describe(&orphan),
            message: "a raw copy the feed registry does not record (the registry is damaged or was removed): nothing was re-landed".into(),
        });
    }
    let mut ignored = Vec::new();
    let mut jobs = Vec::new();
    for rec in records {
        if rec.status == FeedStatus::Abandoned {
            ignored.push(Ignored { path: rec.source.clone(), reason: format!("feed {} was abandoned: not re-landed", rec.feed_id) });
            continue;
        }
        let raw = Path::from(rec.raw_path.as_str());
        let raw_size = match lake.store.head(&raw).await {
            Ok(meta) => Some(meta.size),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(store_err(lake, &raw, e)),
        };
        if raw_size != Some(rec.bytes) {
            if rec.status == FeedStatus::Landing {
                // Interrupted before its raw copy was complete: there is nothing to replay.
                ignored.push(Ignored { path: rec.source.clone(), reason: format!("feed {} was interrupted before its raw copy was complete: not re-landed", rec.feed_id) });
                continue;
            }
            return Err(BronzeError::Input {
                path: lake.describe(&raw),
                message: format!("the raw copy of feed {} is {} (recorded {} bytes): the lake is damaged, nothing was re-landed", rec.feed_id, raw_size.map_or("missing".to_string(), |n| format!("{n} bytes")), rec.bytes),
            });
        }
        let (sha, _) = hash_file(lake, &raw).await?;
        if sha != rec.sha256 {
            return Err(BronzeError::Input {
                path: lake.describe(&raw),
                message: format!("the raw copy of feed {} hashes to {sha}, not its recorded sha256 {}: the lake is damaged, nothing was re-landed", rec.feed_id, rec.sha256),
            });
        }
        let c = Candidate { partner: rec.partner.clone(), dataset: rec.dataset, date: rec.date, file_name: rec.file_name.clone(), path: raw };
        jobs.push((c, rec));
    }
    Ok((jobs, ignored))
}

/// Every raw copy of `date` in the lake (`raw/{dataset}/partner={p}/ingest_date={date}/…`).
async fn raw_copies(lake: &Location, date: RunDate) -> Result<Vec<Path>, BronzeError> {
    let mut out = Vec::new();
    for ds in Dataset::ALL {
        let base = Path::from_iter([paths::RAW, ds.name()]);
        let partners = lake.store.list_with_delimiter(Some(&base)).await.map_err(|e| store_err(lake, &base, e))?;
        for partner in partners.common_prefixes {
            let day = partner.clone().join(format!("ingest_date={date}").as_str());
            let files: Vec<_> = lake.store.list(Some(&day)).try_collect().await.map_err(|e| store_err(lake, &day, e))?;
            out.extend(files.into_iter().map(|m| m.location));
        }
    }
    Ok(out)
}

/// Re-lands every landed, quarantined or interrupted feed of `date` from its raw copy.
pub async fn reland_date(
    lake: &Location,
    date: RunDate,
    concurrency: usize,
    on_feed: &(dyn Fn(&FeedOutcome) + Sync),
) -> Result<LandReport, BronzeError> {
    let (jobs, ignored) = raw_feeds(lake, date).await?;
    let mut report = LandReport { date: Some(date), ignored, ..LandReport::default() };
    let outcomes: Vec<Result<FeedOutcome, Ignored>> = futures::stream::iter(jobs)
        .map(|(c, rec)| async move { land_one(lake, lake, &c, rec).await })
        .buffered(concurrency.max(1))
        .inspect_ok(|o| {
            if let Ok(o) = o {
                on_feed(o)
            }
        })
        .try_collect()
        .await?;
    for o in outcomes {
        match o {
            Ok(o) => report.feeds.push(o),
            Err(ignored) => report.ignored.push(ignored),
        }
    }
    report.feeds.sort_by(|a, b| a.feed.feed_id.cmp(&b.feed.feed_id));
    Ok(report)
}
