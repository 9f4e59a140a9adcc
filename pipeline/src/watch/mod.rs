//! `medallion watch`: runs a date as soon as its feeds are complete. Each poll looks at the
//! dates of a short window (never at older history): for each configured partner, only the
//! date folders from the window's first date on are listed (an S3 listing that starts at that
//! key; on a local disk, those folders alone, without following links). A date runs
//!
//! - at once when every configured partner is complete (its required datasets each have a
//!   file, or its `_control/{partner}/{date}/_SUCCESS` marker exists, or every file its
//!   `_control/{partner}/{date}/manifest.json` names is there with the row count it states);
//! - at the deadline (the day after the date, at `deadline` UTC) with what has arrived,
//!   recording and notifying (`missing`) the partners that were not complete;
//! - again when files arrive after its last completed run (late data), once no new file has
//!   come for `debounce_seconds`.
//!
//! Guarantees: every decision is derived from the landing zone and the run ledger (files
//! newer than the date's last completed run), so a watcher killed at any point and restarted
//! loses no trigger; runs go through the lake lock, so no date runs twice at once, whoever
//! else runs. With `archive`, after a successful run the landing files that run landed — same
//! name, size and SHA-256 as the feed registry records — move to `_archive/{date}/…`; a file
//! that did not land is never moved.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use schemas::{Dataset, RunDate};
use serde::Deserialize;

mod config;

pub use config::{load, Rule, Watch};

use crate::notify::{self, Event, Message};
use crate::orchestrate::{self, RunContext};
use crate::stage::Stage;
use crate::Failure;

/// A data file of the landing zone.
#[derive(Debug, Clone)]
struct Seen {
    partner: String,
    dataset: Dataset,
    date: RunDate,
    name: String,
    path: Path,
    size: u64,
    modified: DateTime<Utc>,
}

/// What a poll saw: data files of the window's dates, and the control files present.
#[derive(Debug, Default)]
struct View {
    files: Vec<Seen>,
    /// (partner, date, file name) of `_control/{partner}/{date}/{file}`.
    control: BTreeSet<(String, RunDate, String)>,
}

/// Lists the window `from..` for the configured partners.
async fn scan(landing: &lake::Location, w: &Watch, from: RunDate) -> Result<View, Failure> {
    let mut view = View::default();
    for partner in w.partners.keys() {
        for ds in Dataset::ALL {
            for (date, name, path, size, modified) in list_dates(landing, &[partner, ds.name()], from).await? {
                view.files.push(Seen { partner: partner.clone(), dataset: ds, date, name, path, size, modified });
            }
        }
        for (date, name, ..) in list_dates(landing, &["_control", partner], from).await? {
            view.control.insert((partner.clone(), date, name));
        }
    }
    Ok(view)
}

type Listed = (RunDate, String, Path, u64, DateTime<Utc>);

/// Regular files of `{prefix}/{date}/` for every date folder from `from` on.
async fn list_dates(landing: &lake::Location, prefix: &[&str], from: RunDate) -> Result<Vec<Listed>, Failure> {
    let mut out = Vec::new();
    if let Some(root) = &landing.local_root {
        let dir = prefix.iter().fold(root.clone(), |d, p| d.join(p));
        let Ok(dates) = std::fs::read_dir(&dir) else { return Ok(out) };
        for e in dates.flatten() {
            let (Ok(t), Some(date)) = (e.file_type(), e.file_name().to_str().and_then(|n| n.parse::<RunDate>().ok())) else { continue };
            if !t.is_dir() || date < from {
                continue; // links are never followed
            }
            let Ok(files) = std::fs::read_dir(e.path()) else { continue };
            for f in files.flatten() {
                let (Ok(meta), Some(name)) = (f.path().symlink_metadata(), f.file_name().to_str().map(str::to_string)) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let modified: DateTime<Utc> = meta.modified().map(DateTime::from).unwrap_or_else(|_| Utc::now());
                let path = Path::from_iter(prefix.iter().copied().chain([date.to_string().as_str(), name.as_str()]));
                out.push((date, name, path, meta.len(), modified));
            }
        }
        return Ok(out);
    }
    let base = Path::from_iter(prefix.iter().copied());
    let offset = base.clone().join(from.to_string().as_str());
    let metas: Vec<_> = landing.store.list_with_offset(Some(&base), &offset).try_collect().await.map_err(|e| Failure::from(landing.classify(e)))?;
    for m in metas {
        let parts: Vec<String> = m.location.parts().map(|p| p.as_ref().to_string()).collect();
        let [.., date, name] = &parts[..] else { continue };
        if parts.len() != prefix.len() + 2 {
            continue;
        }
        if let Ok(date) = date.parse::<RunDate>() {
            if date >= from {
                out.push((date, name.clone(), m.location.clone(), m.size, m.last_modified));
            }
        }
    }
    Ok(out)
}

/// Data rows of a CSV file (the header and empty lines excluded), as bronze counts them.
async fn count_rows(landing: &lake::Location, path: &Path, size: u64) -> Option<u64> {
    let mut reader = bronze::csv::CsvReader::default();
    let mut records: u64 = 0;
    let mut stream = Box::pin(lake::read_stream(landing.store.clone(), path.clone(), size));
    let mut sink = |_: bronze::csv::RecordRef<'_>| -> Result<(), bronze::csv::CsvError> {
        records += 1;
        Ok(())
    };
    while let Some(chunk) = stream.try_next().await.ok()? {
        reader.push(&chunk, &mut sink).ok()?;
    }
    reader.finish(&mut sink).ok()?;
    Some(records.saturating_sub(1))
}

#[derive(Deserialize)]
struct Manifest {
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    dataset: String,
    file: String,
    rows: u64,
}

/// Whether `partner`'s feeds of `date` are complete by its rule, and if not, why.
async fn complete(landing: &lake::Location, view: &View, partner: &str, rule: &Rule, date: RunDate) -> Result<(), String> {
    let files: Vec<&Seen> = view.files.iter().filter(|f| f.partner == partner && f.date == date).collect();
    match rule {
        Rule::Datasets(ds) => {
            let missing: Vec<&str> = ds.iter().filter(|d| !files.iter().any(|f| f.dataset == **d)).map(|d| d.name()).collect();
            if missing.is_empty() { Ok(()) } else { Err(format!("no {} file yet", missing.join(", "))) }
        }
        Rule::Marker => {
            if view.control.contains(&(partner.to_string(), date, "_SUCCESS".into())) { Ok(()) } else { Err("no _SUCCESS marker yet".into()) }
        }
        Rule::Manifest => {
            if !view.control.contains(&(partner.to_string(), date, "manifest.json".into())) {
                return Err("no manifest.json yet".into());
            }
            let path = Path::from_iter(["_control", partner, date.to_string().as_str(), "manifest.json"]);
            let bytes = match landing.store.get(&path).await {
                Ok(r) => r.bytes().await.map_err(|e| format!("manifest.json: {e}"))?,
                Err(e) => return Err(format!("manifest.json: {e}")),
            };
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| format!("manifest.json is not valid: {e}"))?;
            for mf in &m.files {
                let Some(f) = files.iter().find(|f| f.dataset.name() == mf.dataset && f.name == mf.file) else {
                    return Err(format!("{}/{} named by the manifest is not there yet", mf.dataset, mf.file));
                };
                match count_rows(landing, &f.path, f.size).await {
                    Some(n) if n == mf.rows => {}
                    Some(n) => return Err(format!("{}/{} has {n} rows, the manifest says {}", mf.dataset, mf.file, mf.rows)),
                    None => return Err(format!("{}/{} cannot be read as CSV yet", mf.dataset, mf.file)),
                }
            }
            Ok(())
        }
    }
}

/// Why a date runs now.
#[derive(Debug, Clone, PartialEq)]
enum Trigger {
    Complete,
    Deadline { missing: Vec<(String, String)> },
    Late,
}

/// Polls until stopped (or once); returns what ran, for `--json`. `wake` cuts the wait
/// between two polls short (an S3 event notification arrived).
pub async fn watch(ctx: RunContext, w: Watch, once: bool, wake: Option<std::sync::Arc<tokio::sync::Notify>>) -> Result<Vec<serde_json::Value>, Failure> {
    let landing = ctx.landing.clone().ok_or_else(|| Failure::usage("watch needs a landing zone"))?;
    let mut ran = Vec::new();
    let mut waiting_said: BTreeMap<RunDate, String> = BTreeMap::new();
    let mut failed_at: BTreeMap<RunDate, DateTime<Utc>> = BTreeMap::new();
    loop {
        let now = Utc::now();
        let today = RunDate::new(now.date_naive());
        let from = RunDate::new(today.date() - chrono::Days::new(w.window_days as u64));
        let view = scan(&landing, &w, from).await?;
        let dates: BTreeSet<RunDate> = view.files.iter().map(|f| f.date).collect();
        // When each date last completed, read once per poll (the connection is closed before
        // any run takes the lock).
        let mut last_done = BTreeMap::new();
        if !dates.is_empty() {
            let mut wh = orchestrate::connect(&ctx).await?;
            for d in &dates {
                last_done.insert(*d, crate::ledger::last_done_start(&mut wh, *d).await.map_err(Failure::from)?);
            }
            wh.close().await;
        }
        for date in dates {
            if ctx.stop.load(Ordering::SeqCst) {
                break;
            }
            let last = last_done.get(&date).copied().flatten();
            let Some(trigger) = decide(&landing, &w, &view, date, last, now, &mut waiting_said).await else { continue };
            if failed_at.get(&date).is_some_and(|t| now - *t < chrono::Duration::seconds(300).max(chrono::Duration::from_std(w.poll).unwrap_or_default())) {
                continue; // a failed date is retried, but not at every poll
            }
            let outcome = run_one(&ctx, &landing, &w, date, &trigger).await;
            if outcome["status"] == "completed" || outcome["status"] == "skipped" {
                failed_at.remove(&date);
            } else {
                failed_at.insert(date, now);
            }
            ran.push(outcome);
        }
        if once || ctx.stop.load(Ordering::SeqCst) {
            return Ok(ran);
        }
        let until = std::time::Instant::now() + w.poll;
        while std::time::Instant::now() < until {
            if ctx.stop.load(Ordering::SeqCst) {
                return Ok(ran);
            }
            let tick = tokio::time::sleep(Duration::from_millis(200));
            match &wake {
                Some(n) => {
                    tokio::select! {
                        _ = tick => {},
                        _ = n.notified() => break,
                    }
                }
                None => tick.await,
            }
        }
    }
}

/// Whether `date` runs now, and why: `last` is when its last completed run started.
async fn decide(
    landing: &lake::Location,
    w: &Watch,
    view: &View,
    date: RunDate,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    waiting_said: &mut BTreeMap<RunDate, String>,
) -> Option<Trigger> {
    let new: Vec<&Seen> = view.files.iter().filter(|f| f.date == date && last.is_none_or(|t| f.modified > t)).collect();
    if new.is_empty() {
        return None;
    }
    if last.is_some() {
        let newest = new.iter().map(|f| f.modified).max().expect("not empty");
        return (now - newest >= w.debounce).then_some(Trigger::Late);
    }
    let mut missing = Vec::new();
    for (p, rule) in &w.partners {
        if let Err(why) = complete(landing, view, p, rule, date).await {
            missing.push((p.clone(), why));
        }
    }
    if missing.is_empty() {
        return Some(Trigger::Complete);
    }
    let due = w.deadline.map(|t| date.succ().unwrap_or(date).date().and_time(t).and_utc());
    if due.is_some_and(|d| now >= d) {
        return Some(Trigger::Deadline { missing });
    }
    let said: Vec<String> = missing.iter().map(|(p, why)| format!("{p}: {why}")).collect();
    let line = format!("watch: {date} waits for {}", said.join("; "));
    if waiting_said.get(&date) != Some(&line) {
        crate::logging::progress(&line);
        waiting_said.insert(date, line);
    }
    None
}

async fn run_one(ctx: &RunContext, landing: &lake::Location, w: &Watch, date: RunDate, trigger: &Trigger) -> serde_json::Value {
    let why = match trigger {
        Trigger::Complete => "every partner is complete".to_string(),
        Trigger::Late => "files arrived after its last run".to_string(),
        Trigger::Deadline { missing } => {
            let list: Vec<String> = missing.iter().map(|(p, why)| format!("{p} ({why})")).collect();
            format!("the deadline passed; missing: {}", list.join(", "))
        }
    };
    crate::logging::progress(&format!("watch: running {date}: {why}"));
    let missing: Vec<&str> = match trigger {
        Trigger::Deadline { missing } => missing.iter().map(|(p, _)| p.as_str()).collect(),
        _ => Vec::new(),
    };
    let result = orchestrate::run_locked(ctx, date, "watch", &Stage::ALL, &format!("medallion watch ({date})")).await;
    let (status, run_id, error) = match &result {
        Ok(o) => (o.summary.status.as_str().to_string(), Some(o.summary.run_id.clone()), o.summary.error.clone()),
        Err(f) => ("failed".to_string(), None, Some(f.message.clone())),
    };
    if let Trigger::Deadline { missing: m } = trigger {
        for (p, why) in m {
            notify::send(Message {
                event: Event::Missing,
                title: format!("{date}: partner {p} was missing at the deadline ({why}); the date ran without it"),
                date: Some(date),
                run_id: run_id.clone(),
                details: serde_json::json!({ "partner": p, "why": why }),
            });
        }
    }
    let trigger_name = match trigger {
        Trigger::Complete => "complete",
        Trigger::Deadline { .. } => "deadline",
        Trigger::Late => "late",
    };
    let record = serde_json::json!({
        "date": date, "trigger": trigger_name, "missing": missing, "status": status, "run_id": run_id, "error": error,
        "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    // The lake keeps why each date ran (and who was missing): `_medallion/watch/{date}.json`.
    let path = Path::from_iter(["_medallion", "watch", &format!("{date}.json")]);
    if let Err(e) = ctx.lake.store.put(&path, serde_json::to_vec_pretty(&record).unwrap_or_default().into()).await {
        tracing::warn!("could not record the watch trigger of {date}: {e}");
    }
    if w.archive && matches!(status.as_str(), "completed" | "skipped") {
        match archive(landing, &ctx.lake, date).await {
            Ok(n) if n > 0 => crate::logging::progress(&format!("watch: archived {n} landed file(s) of {date} to _archive/{date}/")),
            Ok(_) => {}
            Err(e) => tracing::warn!("archiving {date}: {e}"),
        }
    }
    crate::logging::progress(&format!("watch: {date} {status}{}", error.map(|e| format!(": {e}")).unwrap_or_default()));
    record
}

/// Moves the landing files of `date` that landed (same name, size and SHA-256 as a landed or
/// quarantined feed of the registry) to `_archive/{date}/{partner}/{dataset}/{file}`.
async fn archive(landing: &lake::Location, lake: &lake::Location, date: RunDate) -> Result<usize, String> {
    let records = bronze::Registry::new(lake).feeds_for_date(date).await.map_err(|e| e.to_string())?;
    let landed: Vec<_> = records.iter().filter(|r| matches!(r.status, bronze::FeedStatus::Landed | bronze::FeedStatus::Quarantined)).collect();
    let (candidates, _) = bronze::discover(landing, date).await.map_err(|e| e.to_string())?;
    let mut moved = 0;
    for c in candidates {
        let Ok(meta) = landing.store.head(&c.path).await else { continue };
        let matching: Vec<_> = landed.iter().filter(|r| r.partner == c.partner && r.dataset == c.dataset && r.file_name == c.file_name && r.bytes == meta.size).collect();
        if matching.is_empty() {
            continue;
        }
        let (sha, _) = bronze::hash_file(landing, &c.path).await.map_err(|e| e.to_string())?;
        if !matching.iter().any(|r| r.sha256 == sha) {
            continue; // replaced since it landed: not this run's file
        }
        let to = Path::from_iter(["_archive", date.to_string().as_str(), c.partner.as_str(), c.dataset.name(), c.file_name.as_str()]);
        landing.store.rename(&c.path, &to).await.map_err(|e| format!("{}: {e}", landing.describe(&c.path)))?;
        moved += 1;
    }
    Ok(moved)
}
