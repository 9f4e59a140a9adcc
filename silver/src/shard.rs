//! Sharded silver: a run of one date limited to a set of partners (`--partners`), so that
//! workers on different machines process disjoint partner sets of the same date at once.
//!
//! A shard runs in two phases. [`prepare_shard`] reads, cleans, deduplicates and reconciles its
//! partners' landed feeds: it reads bronze only, so shards do it side by side. [`commit_shard`]
//! writes: the caller holds the shard's partner locks and the lake-wide silver commit lock, so
//! the writes of one shard are one contiguous range of table versions. That keeps the crash
//! safety of an unsharded run: the date's run record is rewritten, before the first write, as
//! `running` with the versions before this shard and the completed record of the shards before
//! it (`shard_prior`); an interrupted or failed shard is undone to those versions by time
//! travel and the earlier shards' record is put back. Every write of a shard is keyed or
//! partitioned by partner (upserts and SCD2 history by partner and key, inventory by snapshot
//! date and partner, the change log, quarantine and feed reconciliation by run date and
//! partner, orphans by partner), so a shard changes no row of another partner.
//!
//! When it completes, the date's record is the merge of every shard so far: the same feeds,
//! counts, products diffs, business dates and orphans as one unsharded run of those partners,
//! with `versions_before` of the first shard and `versions_after` of the last, so gold carries
//! the date as one silver run. [`missing_partners`] tells gold which partners with landed
//! feeds the date's record does not cover yet.

use std::collections::BTreeSet;

use lake::registry::{FeedRecord, FeedStatus, Registry};
use lake::Location;
use schemas::{Dataset, RunDate, RunStatus, SilverRecord};

use crate::delta::Lakehouse;
use crate::recovery::{current_versions, read_record, recover_crashed_runs, rollback, save_record};
use crate::run::{apply, in_landing_order, prepare, replayed, Prepared};
use crate::SilverError;

/// A shard's partners, and the prepared feeds of those it has to apply (see [`prepare_shard`]).
pub struct PreparedShard {
    date: RunDate,
    partners: BTreeSet<String>,
    /// The partners the date's record covers already, with exactly their landed feeds.
    applied: BTreeSet<String>,
    /// The feeds of the other partners, prepared; `None` when every partner is applied.
    prepared: Option<Prepared>,
}

impl PreparedShard {
    pub fn partners(&self) -> &BTreeSet<String> {
        &self.partners
    }
}

/// Reads, cleans and deduplicates the landed feeds of `date` of `partners`; writes nothing.
/// The caller holds the partners' locks, so what the date's record says of them cannot change
/// before [`commit_shard`]. A partner the record covers already with exactly its landed feeds
/// (another shard applied it: overlapping `--partners`, or a re-run) is not applied again; one
/// it covers with other feeds than those landed now is refused ([`SilverError::Input`]):
/// applying them on top would rewrite that partner's first diff of the date, so the whole date
/// is re-run unsharded. Fails with [`SilverError::NothingToDo`] when the partners have no feed
/// that date.
pub async fn prepare_shard(lake: &Location, date: RunDate, partners: &BTreeSet<String>) -> Result<PreparedShard, SilverError> {
    let registry = Registry::new(lake);
    let mut feeds: Vec<FeedRecord> = registry.feeds_for_date(date).await?.into_iter().filter(|f| partners.contains(&f.partner)).collect();
    in_landing_order(&mut feeds);
    if feeds.is_empty() {
        return Err(SilverError::NothingToDo(format!("{date} (partners {})", join(partners))));
    }
    if let Some(f) = feeds.iter().find(|f| f.status == FeedStatus::Landing) {
        return Err(SilverError::Input(format!(
            "feed {} ({}) is still being landed; run bronze for {date} --partners {} again first",
            f.feed_id, f.source, f.partner
        )));
    }
    let mut applied = BTreeSet::new();
    // Another shard may be committing: its `running` record carries the completed one.
    let completed = read_record(lake, date).await?.and_then(|r| match r.status {
        RunStatus::Completed => Some(r),
        RunStatus::Running => r.shard_prior.map(|p| *p),
        _ => None,
    });
    if let Some(rec) = completed {
        let mut changed = Vec::new();
        for p in partners {
            let done: BTreeSet<&str> = rec.feeds.iter().filter(|f| &f.partner == p).map(|f| f.feed_id.as_str()).collect();
            if done.is_empty() {
                continue;
            }
            let landed: BTreeSet<&str> = feeds.iter().filter(|f| &f.partner == p && f.status == FeedStatus::Landed).map(|f| f.feed_id.as_str()).collect();
            if landed == done {
                applied.insert(p.clone());
            } else {
                changed.push(p.as_str());
            }
        }
        if !changed.is_empty() {
            return Err(SilverError::Input(format!(
                "partners {} were applied for {date} already, with other feeds than those landed now; re-run the whole date without --partners (`medallion silver --date {date}`) to apply them",
                changed.join(", ")
            )));
        }
    }
    if !applied.is_empty() {
        tracing::info!("{date}: partners {} were applied already with the same feeds: not applied again", join(&applied));
    }
    feeds.retain(|f| !applied.contains(&f.partner));
    let prepared = if feeds.is_empty() { None } else { Some(prepare(lake, date, &feeds).await?) };
    Ok(PreparedShard { date, partners: partners.clone(), applied, prepared })
}

/// Writes a prepared shard and merges it into the date's run record (see the module
/// documentation). The caller holds the shard's partner locks and the silver commit lock.
/// Returns the date's record limited to the shard's partners; partners applied before (see
/// [`prepare_shard`]) report, like an unsharded re-run, a products diff of only `unchanged`.
pub async fn commit_shard(lake: &Location, shard: PreparedShard) -> Result<SilverRecord, SilverError> {
    let PreparedShard { date, partners, applied, prepared } = shard;
    let lh = Lakehouse::new(lake)?;
    let recovered = recover_crashed_runs(lake, &lh).await?;
    let prior = read_record(lake, date).await?.filter(|r| r.status == RunStatus::Completed);
    let Some(prepared) = prepared else {
        let prior = prior.ok_or_else(|| SilverError::Input(format!("the silver record of {date} changed while the shard held its partners' locks")))?;
        tracing::info!("re-running {date} for partners {}: their feeds were all applied already; nothing new to apply", join(&partners));
        return Ok(replayed(only(prior, &partners), recovered));
    };
    let todo: BTreeSet<String> = partners.difference(&applied).cloned().collect();
    if let Some(p) = &prior {
        // Never two applications of one partner in a record (the partner locks guarantee it).
        let twice: Vec<&str> = p.feeds.iter().map(|f| f.partner.as_str()).filter(|x| todo.contains(*x)).collect();
        if let Some(x) = twice.first() {
            return Err(SilverError::Input(format!("partner {x} was applied for {date} by another run while this shard prepared it; run the shard again")));
        }
    }

    let mut report = SilverRecord::new(date);
    report.recovered = recovered;
    report.versions_before = current_versions(&lh).await?;
    report.shard_prior = prior.clone().map(Box::new);
    save_record(lake, &report).await?;
    report.shard_prior = None;
    match apply(lake, &lh, prepared, Some(&todo), &mut report).await {
        Ok(()) => {
            let merged = merge(prior, report);
            save_record(lake, &merged).await?;
            let mut own = only(merged, &partners);
            if !applied.is_empty() {
                // The partners applied before count as re-run: only `unchanged` products.
                let again = replayed(only(own.clone(), &applied), Vec::new());
                own.product_changes.retain(|d| !applied.contains(&d.partner));
                own.product_changes.extend(again.product_changes);
                own.product_changes.sort_by(|a, b| a.partner.cmp(&b.partner));
            }
            Ok(own)
        }
        Err(e) => {
            match rollback(&lh, &report.versions_before).await {
                Ok(undone) => {
                    let record = match prior {
                        Some(p) => p,
                        None => SilverRecord { status: RunStatus::Failed, recovered: undone, error: Some(e.to_string()), ..report },
                    };
                    if let Err(se) = save_record(lake, &record).await {
                        tracing::error!("could not restore the run record of {date} after a failed shard: {se}; the next run will");
                    }
                }
                Err(re) => tracing::error!("could not undo the failed shard of {date} (partners {}): {re}; the next run will", join(&todo)),
            }
            Err(e)
        }
    }
}

/// The partners with feeds landed (or being landed) for `date` that the date's completed
/// silver record does not cover: the shards gold must wait for. Empty when silver has no
/// completed record of the date (gold says so itself).
pub async fn missing_partners(lake: &Location, date: RunDate) -> Result<Vec<String>, SilverError> {
    let Some(rec) = read_record(lake, date).await?.filter(|r| r.status == RunStatus::Completed) else { return Ok(Vec::new()) };
    let covered: BTreeSet<&str> = rec.feeds.iter().map(|f| f.partner.as_str()).collect();
    let expected: BTreeSet<String> = Registry::new(lake)
        .feeds_for_date(date)
        .await?
        .into_iter()
        .filter(|f| matches!(f.status, FeedStatus::Landed | FeedStatus::Landing))
        .map(|f| f.partner)
        .collect();
    Ok(expected.into_iter().filter(|p| !covered.contains(p.as_str())).collect())
}

/// The completed record of the shards so far, `prior`, with `shard` added: the record one
/// unsharded run of all their partners would have left (feeds in landing order per dataset,
/// diffs by partner), spanning from the first shard's versions to the last one's.
fn merge(prior: Option<SilverRecord>, shard: SilverRecord) -> SilverRecord {
    let mut m = match prior {
        None => shard,
        Some(mut m) => {
            m.feeds.extend(shard.feeds);
            m.product_changes.extend(shard.product_changes);
            m.orphan_items.extend(shard.orphan_items);
            m.total_mismatch += shard.total_mismatch;
            m.business_dates.extend(shard.business_dates);
            m.renamed_or_recategorised.extend(shard.renamed_or_recategorised);
            m.recovered.extend(shard.recovered);
            m.versions_after = shard.versions_after;
            m
        }
    };
    let rank = |d: &str| Dataset::ALL.iter().position(|x| x.name() == d).unwrap_or(usize::MAX);
    m.feeds.sort_by(|a, b| (rank(&a.dataset), &a.partner, &a.file_name, &a.feed_id).cmp(&(rank(&b.dataset), &b.partner, &b.file_name, &b.feed_id)));
    m.product_changes.sort_by(|a, b| a.partner.cmp(&b.partner));
    m.business_dates.sort();
    m.business_dates.dedup();
    m.renamed_or_recategorised.sort();
    m.renamed_or_recategorised.dedup();
    m.status = RunStatus::Completed;
    m.error = None;
    m.shard_prior = None;
    m
}

/// `rec` limited to `partners` (a re-run shard reports its own partners only).
fn only(mut rec: SilverRecord, partners: &BTreeSet<String>) -> SilverRecord {
    rec.feeds.retain(|f| partners.contains(&f.partner));
    rec.product_changes.retain(|d| partners.contains(&d.partner));
    rec.orphan_items.retain(|p, _| partners.contains(p));
    rec.renamed_or_recategorised.retain(|(p, _)| partners.contains(p));
    rec
}

fn join(partners: &BTreeSet<String>) -> String {
    partners.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{FeedStats, ProductDiff};

    fn feed(id: &str, partner: &str, dataset: &str) -> FeedStats {
        FeedStats { feed_id: id.into(), partner: partner.into(), dataset: dataset.into(), file_name: "f.csv".into(), ..Default::default() }
    }

    /// Merged shards read like one run: feeds per dataset in partner order, diffs by partner,
    /// dates and counts combined, versions from the first shard's start to the last one's end.
    #[test]
    fn merging_shards_gives_the_unsharded_record() {
        let d: RunDate = "2026-11-20".parse().unwrap();
        let mut a = SilverRecord::new(d);
        a.feeds = vec![feed("FD2", "b", "products"), feed("FD3", "b", "orders")];
        a.product_changes = vec![ProductDiff { partner: "b".into(), inserted: 2, ..Default::default() }];
        a.business_dates = vec!["2026-11-19".into()];
        a.total_mismatch = 1;
        a.versions_before = [("orders".to_string(), 1)].into();
        a.versions_after = [("orders".to_string(), 2)].into();
        let first = merge(None, a);
        let mut b = SilverRecord::new(d);
        b.feeds = vec![feed("FD1", "a", "products"), feed("FD4", "a", "orders")];
        b.product_changes = vec![ProductDiff { partner: "a".into(), updated: 1, ..Default::default() }];
        b.business_dates = vec!["2026-11-18".into(), "2026-11-19".into()];
        b.orphan_items = [("a".to_string(), 3)].into();
        b.total_mismatch = 2;
        b.versions_before = [("orders".to_string(), 2)].into();
        b.versions_after = [("orders".to_string(), 3)].into();
        let m = merge(Some(first), b);
        let ids: Vec<&str> = m.feeds.iter().map(|f| f.feed_id.as_str()).collect();
        assert_eq!(ids, ["FD1", "FD2", "FD4", "FD3"], "products feeds first, then orders, by partner");
        assert_eq!(m.product_changes.iter().map(|p| p.partner.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.business_dates, ["2026-11-18", "2026-11-19"]);
        assert_eq!((m.total_mismatch, m.orphan_items.get("a").copied()), (3, Some(3)));
        assert_eq!((m.versions_before["orders"], m.versions_after["orders"]), (1, 3));
        assert_eq!(m.status, RunStatus::Completed);
        assert!(m.shard_prior.is_none());
        let a_only = only(m, &["a".to_string()].into());
        assert_eq!(a_only.feeds.iter().map(|f| f.feed_id.as_str()).collect::<Vec<_>>(), ["FD1", "FD4"]);
    }
}
