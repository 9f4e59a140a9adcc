//! Run records and time travel: reading and writing `silver/_runs/D.json`, undoing the writes
//! of a failed or crashed run, and restoring silver to before a date for a backfill. After any
//! of these, every silver table is at a version some completed run left it at. An interrupted
//! sharded run is undone the same way, and the record of the shards before it is put back.

use std::collections::BTreeMap;

use object_store::{ObjectStoreExt, PutPayload};
use lake::Location;
use schemas::{paths, RunDate, RunStatus};

use crate::delta::Lakehouse;
use crate::SilverError;
use crate::run::*;

/// For a backfill from `date`: puts every silver table back to its state before `date`, that
/// is after the last completed run of an earlier date (empty when there is none), with Delta
/// time travel (`restore` commits the old state as a new version). The records of runs of
/// `date` and later are marked `superseded`. Returns what was restored and the dates of the
/// superseded runs (a clean sequential history must run them again).
pub async fn restore_before(lake: &Location, date: RunDate) -> Result<(Vec<String>, Vec<String>), SilverError> {
    let lh = Lakehouse::new(lake)?;
    recover_crashed_runs(lake, &lh).await?;
    let mut base: Option<SilverReport> = None;
    let mut later = Vec::new();
    for (d, rec) in read_records(lake).await? {
        if d < date {
            if rec.status == RunStatus::Completed {
                base = Some(rec);
            }
        } else if matches!(rec.status, RunStatus::Completed | RunStatus::Superseded) {
            later.push(d);
        }
    }
    let versions = base.map(|b| b.versions_after).unwrap_or_default();
    let undone = rollback(&lh, &versions).await.map_err(|e| match e {
        SilverError::Delta(d) => SilverError::Input(format!(
            "cannot restore silver to its state before {date}: {d} (files older than the vacuum retention are gone; `medallion maintain --retention-hours` keeps more history)"
        )),
        other => other,
    })?;
    for &d in &later {
        if let Some(mut rec) = read_record(lake, d).await? {
            rec.status = RunStatus::Superseded;
            save_record(lake, &rec).await?;
        }
    }
    Ok((undone, later.iter().map(RunDate::to_string).collect()))
}

/// The dates of every silver run record, in order (names that are not dates are skipped).
pub(crate) async fn record_dates(lake: &Location) -> Result<Vec<RunDate>, SilverError> {
    use futures::TryStreamExt;
    let prefix = lake.path(&paths::silver_runs());
    let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| SilverError::store(lake, &prefix, e))?;
    let mut dates: Vec<RunDate> =
        metas.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json")?.parse().ok()).collect();
    dates.sort();
    Ok(dates)
}

/// Every existing silver table's current version.
pub(crate) async fn current_versions(lh: &Lakehouse) -> Result<BTreeMap<String, i64>, SilverError> {
    let mut out = BTreeMap::new();
    for t in all_tables() {
        if let Some(table) = lh.open(t).await? {
            if let Some(v) = Lakehouse::version(&table) {
                out.insert(t.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Restores every table to its version in `before`; tables absent from it are emptied.
pub(crate) async fn rollback(lh: &Lakehouse, before: &BTreeMap<String, i64>) -> Result<Vec<String>, SilverError> {
    let mut undone = Vec::new();
    for t in all_tables() {
        let Some(table) = lh.open(t).await? else { continue };
        let Some(now) = Lakehouse::version(&table) else { continue };
        match before.get(t) {
            Some(&v) if now > v => {
                lh.restore(table, v).await?;
                undone.push(format!("{t}: version {now} -> {v}"));
            }
            None if now > 0 => {
                lh.restore(table, 0).await?;
                undone.push(format!("{t}: emptied"));
            }
            _ => {}
        }
    }
    Ok(undone)
}

pub(crate) async fn save_record(lake: &Location, report: &SilverReport) -> Result<(), SilverError> {
    let path = run_record_path(lake, report.date);
    let body = serde_json::to_vec_pretty(report).expect("report serialises");
    lake.store.put(&path, PutPayload::from(body)).await.map_err(|e| SilverError::store(lake, &path, e))?;
    Ok(())
}

/// Reads a run's record, if any.
pub async fn read_record(lake: &Location, date: RunDate) -> Result<Option<SilverReport>, SilverError> {
    Ok(read_records_at(lake, vec![date]).await?.pop().flatten().map(|(_, r)| r))
}

/// Every run record, in date order.
pub(crate) async fn read_records(lake: &Location) -> Result<Vec<(RunDate, SilverReport)>, SilverError> {
    Ok(read_records_at(lake, record_dates(lake).await?).await?.into_iter().flatten().collect())
}

/// The records of `dates`, in their order (`None`: no record), read a few at a time.
async fn read_records_at(lake: &Location, dates: Vec<RunDate>) -> Result<Vec<Option<(RunDate, SilverReport)>>, SilverError> {
    let paths: Vec<_> = dates.iter().map(|d| run_record_path(lake, *d)).collect();
    let bodies = lake.get_many(paths.clone()).await.map_err(|(path, e)| SilverError::store(lake, &path, e))?;
    bodies
        .into_iter()
        .zip(paths)
        .map(|(body, path)| {
            let Some(b) = body else { return Ok(None) };
            let r: SilverReport = serde_json::from_slice(&b).map_err(|source| SilverError::Record { path: lake.describe(&path), source })?;
            Ok(Some((r.date, r)))
        })
        .collect()
}

/// Undoes the writes of runs that crashed (status `running`): every table goes back to the
/// version recorded before that run's first write. Returns what was restored.
pub(crate) async fn recover_crashed_runs(lake: &Location, lh: &Lakehouse) -> Result<Vec<String>, SilverError> {
    let mut restored = Vec::new();
    for (date, rec) in read_records(lake).await? {
        if rec.status != RunStatus::Running {
            continue;
        }
        let undone = rollback(lh, &rec.versions_before).await?;
        restored.extend(undone.into_iter().map(|u| format!("{u} (run {date} was interrupted)")));
        let mut rec = rec;
        match rec.shard_prior.take() {
            // An interrupted shard: the record of the shards before it stands again.
            Some(prior) => save_record(lake, &prior).await?,
            None => {
                rec.status = RunStatus::Abandoned;
                save_record(lake, &rec).await?;
            }
        }
    }
    Ok(restored)
}
