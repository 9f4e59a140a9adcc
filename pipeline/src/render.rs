//! Text and JSON rendering of what commands produce. Nothing here decides anything.

use bronze::{FeedOutcome, LandAction};

use crate::ledger;

/// `println!` for a command's output. When stdout's reader has gone (`medallion … | head`),
/// the process ends quietly with status 141 (128 + SIGPIPE), as Unix tools killed by SIGPIPE
/// do, instead of panicking; the work before the print is complete and recorded. (SIGPIPE
/// itself stays ignored: a peer closing a socket must be an error the caller handles.)
#[macro_export]
macro_rules! out {
    () => { $crate::render::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::render::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes to stdout (see [`out!`]); any other write error is reported on stderr, exit 1.
pub fn write_stdout(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut o = Stdout::lock();
    if let Err(e) = o.write_fmt(args).and_then(|_| o.flush()) {
        eprintln!("medallion: error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// Stdout for a command's output (flushed when dropped): a reader that has gone ends the
/// process with 141 (see [`out!`]); other errors are returned.
pub struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    pub fn lock() -> Self {
        Stdout(std::io::stdout().lock())
    }

    fn check<T>(r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(141);
            }
        }
        r
    }
}

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::check(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::check(self.0.flush())
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = self.flush();
    }
}

pub fn print_json(value: &impl serde::Serialize) {
    crate::out!("{}", serde_json::to_string_pretty(value).expect("summaries serialise"));
}

/// One line per stage of a run: `bronze completed, silver completed, gold skipped`.
pub fn stage_list(s: &crate::orchestrate::RunSummary) -> String {
    s.stages.iter().map(|s| format!("{} {}", s["stage"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or(""))).collect::<Vec<_>>().join(", ")
}

/// The bronze report as `medallion bronze --json` prints it.
pub fn bronze_json(report: &bronze::LandReport, lake: &str, seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "date": report.date,
        "lake": lake,
        "landed": report.count(LandAction::Landed),
        "quarantined": report.count(LandAction::Quarantined),
        "already_landed": report.count(LandAction::AlreadyLanded),
        "rows_landed": report.rows_landed(),
        "bytes_landed": report.bytes_landed(),
        "seconds": seconds,
        "feeds": report.feeds,
        "ignored": report.ignored,
    })
}

pub fn print_bronze(date: schemas::RunDate, report: &bronze::LandReport, lake: &str, seconds: f64) {
    crate::out!(
        "bronze {}: {} landed ({} rows, {:.1} MB), {} quarantined, {} already landed, {} ignored in {:.1}s; lake {}",
        date,
        report.count(LandAction::Landed),
        report.rows_landed(),
        report.bytes_landed() as f64 / 1e6,
        report.count(LandAction::Quarantined),
        report.count(LandAction::AlreadyLanded),
        report.ignored.len(),
        seconds,
        lake
    );
}

pub fn print_status(st: &ledger::Status) {
    let s = |v: &serde_json::Value, k: &str| match &v[k] {
        serde_json::Value::String(x) => x.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    crate::out!("{:<40} {:<10} {:<9} {:<10} {:<24} {}", "run", "date", "kind", "status", "started", "stages");
    for r in &st.runs {
        let jobs: Vec<String> = r["jobs"]
            .as_array()
            .map(|a| a.iter().map(|j| format!("{} {}{}", s(j, "stage"), s(j, "status"), if s(j, "attempts").parse::<u32>().unwrap_or(1) > 1 { format!(" ({} attempts)", s(j, "attempts")) } else { String::new() })).collect())
            .unwrap_or_default();
        crate::out!("{:<40} {:<10} {:<9} {:<10} {:<24} {}", s(r, "run_id"), s(r, "run_date"), s(r, "kind"), s(r, "status"), s(r, "started_at"), jobs.join(", "));
        if let Some(p) = r["partners"].as_str() {
            crate::out!("    sharded run of partners {p}");
        }
        if let Some(e) = r["error"].as_str() {
            crate::out!("    {}: {e}", s(r, "status"));
        }
    }
    if !st.feeds.is_empty() {
        crate::out!();
        crate::out!("{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9} {:>9} {:>9}  {}", "feed", "date", "partner", "dataset", "status", "read", "valid", "rejected", "dup", "check / reason");
        for f in &st.feeds {
            let n = |k: &str| s(f, k).parse::<u64>().ok();
            let check = match (n("rows_read"), n("valid"), n("rejected"), n("duplicate")) {
                (Some(r), Some(v), Some(j), Some(d)) if r == v + j + d => "balanced".to_string(),
                (Some(_), Some(_), Some(_), Some(_)) => "UNBALANCED".to_string(),
                _ => format!("{} {}", s(f, "reason"), s(f, "detail")).trim().to_string(),
            };
            crate::out!(
                "{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9} {:>9} {:>9}  {check}",
                s(f, "feed_id"), s(f, "run_date"), s(f, "partner_id"), s(f, "dataset"), s(f, "status"), s(f, "rows_read"), s(f, "valid"), s(f, "rejected"), s(f, "duplicate")
            );
        }
    }
    for d in &st.product_diffs {
        crate::out!(
            "products {} {}: {} inserted, {} updated, {} unchanged, {} skipped, {} duplicate",
            s(d, "run_date"), s(d, "partner_id"), s(d, "inserted"), s(d, "updated"), s(d, "unchanged"), s(d, "skipped"), s(d, "duplicate")
        );
    }
}

pub fn print_gold(r: &gold::GoldReport) {
    for m in &r.migrations {
        crate::out!("applied migration {m}");
    }
    for c in &r.checks {
        crate::out!("check {:<34} {}", c.name, if c.passed() { "ok" } else { "FAILED" });
    }
    crate::out!("{:<22} {:>9} {:>9}  {}", "table", "rows", "replaced", "dates");
    for t in &r.tables {
        let dates = if t.dates.len() > 4 { format!("{} .. {} ({} dates)", t.dates[0], t.dates[t.dates.len() - 1], t.dates.len()) } else { t.dates.join(", ") };
        crate::out!("{:<22} {:>9} {:>9}  {dates}", t.table, t.rows, t.rows_deleted);
    }
    crate::out!(
        "gold {}: published {} silver run(s) ({}){} to {} in {:.1}s (compute {:.1}s); {} lake files written, {} removed",
        r.date,
        r.silver_runs.len(),
        r.silver_runs.join(", "),
        if r.full { ", full rebuild" } else { "" },
        r.warehouse,
        r.compute_seconds + r.publish_seconds,
        r.compute_seconds,
        r.lake_files_written,
        r.lake_files_removed
    );
}

pub fn print_silver(r: &silver::SilverReport, seconds: f64) {
    crate::out!("{:<9} {:<12} {:<11} {:>9} {:>9} {:>9} {:>9}  {}", "feed", "partner", "dataset", "read", "valid", "rejected", "dup", "reasons / warnings");
    for f in &r.feeds {
        let mut notes: Vec<String> = f.reasons.iter().map(|(k, v)| format!("{k}={v}")).collect();
        notes.extend(f.warnings.iter().map(|(k, v)| format!("warn {k}={v}")));
        crate::out!(
            "{:<9} {:<12} {:<11} {:>9} {:>9} {:>9} {:>9}  {}",
            f.feed_id, f.partner, f.dataset, f.rows_read, f.valid, f.rejected, f.duplicate, notes.join(", ")
        );
    }
    for d in &r.product_changes {
        crate::out!(
            "products {}: {} inserted, {} updated, {} unchanged, {} skipped, {} duplicate",
            d.partner, d.inserted, d.updated, d.unchanged, d.skipped, d.duplicate
        );
    }
    let orphans: u64 = r.orphan_items.values().sum();
    crate::out!(
        "silver {}: {} feeds reconciled; {} orphan items; {} total_mismatch warnings; business dates touched: {} in {:.1}s",
        r.date,
        r.feeds.len(),
        orphans,
        r.total_mismatch,
        if r.business_dates.is_empty() { "none".to_string() } else { r.business_dates.join(", ") },
        seconds
    );
}

pub fn log_feed(o: &FeedOutcome) {
    let f = &o.feed;
    if crate::logging::json() {
        // The same message, with the feed's identity as fields for log shippers.
        let span = tracing::info_span!("feed", feed_id = %f.feed_id, partner = %f.partner, dataset = f.dataset.name());
        return span.in_scope(|| log_feed_text(o));
    }
    log_feed_text(o)
}

fn log_feed_text(o: &FeedOutcome) {
    let f = &o.feed;
    match o.action {
        LandAction::Landed => {
            let drift = if f.extra_columns.is_empty() { String::new() } else { format!("; schema drift: extra columns {}", f.extra_columns.join(", ")) };
            let malformed = if f.malformed_rows > 0 { format!(", {} malformed", f.malformed_rows) } else { String::new() };
            tracing::info!("{} landed {} ({} rows{malformed}, {} bytes){drift}", f.feed_id, f.source, f.rows, f.bytes);
        }
        LandAction::Quarantined => tracing::warn!(
            "{} quarantined {}: {} — {}",
            f.feed_id,
            f.source,
            f.reason.as_deref().unwrap_or("?"),
            f.detail.as_deref().unwrap_or("")
        ),
        LandAction::AlreadyLanded => tracing::info!("{} already landed: {} (same content), skipped", f.feed_id, f.source),
    }
}
