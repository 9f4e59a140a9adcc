//! `medallion feeds`: the feed registry, every landed or quarantined file with its counts and
//! reason.

use bronze::Registry;

use crate::cli::FeedsArgs;
use crate::commands::Globals;
use crate::{config, exit, render, Failure};

pub async fn run(g: &Globals, a: FeedsArgs) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, true).await?;
    let registry = Registry::new(&lake);
    let feeds = match &a.date {
        Some(d) => registry.feeds_for_date(*d).await?,
        None => registry.all_feeds().await?,
    };
    if g.json {
        // One JSON object (never a bare array), like every command's --json.
        render::print_json(&serde_json::json!({ "feeds": feeds }));
        return Ok(exit::OK);
    }
    crate::out!("{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9}  {}", "feed", "date", "partner", "dataset", "status", "rows", "bytes", "file / reason");
    for f in &feeds {
        let note = match (&f.reason, &f.detail) {
            (Some(r), Some(d)) => format!("{}  [{r}: {d}]", f.file_name),
            _ if !f.extra_columns.is_empty() => format!("{}  (extra columns: {})", f.file_name, f.extra_columns.join(", ")),
            _ => f.file_name.clone(),
        };
        crate::out!("{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9}  {note}", f.feed_id, f.date, f.partner, f.dataset.name(), f.status.as_str(), f.rows, f.bytes);
    }
    Ok(exit::OK)
}
