//! `medallion watch`: completeness-triggered runs (see `crate::watch`), configured by the
//! `[watch]` section of medallion.toml.

use crate::cli::WatchArgs;
use crate::commands::Globals;
use crate::watch::{watch, WatchConfig};
use crate::{config, exit, orchestrate, Failure};

pub async fn run(g: &Globals, a: WatchArgs) -> Result<u8, Failure> {
    let section = config::section("watch").ok_or_else(|| Failure::usage("watch needs a [watch] section in medallion.toml: the partners a date waits for (see the README, Event-driven runs)"))?;
    let cfg: WatchConfig = section.clone().try_into().map_err(|e| Failure::usage(format!("[watch] in the config file: {e}")))?;
    let mut w = cfg.check().map_err(Failure::usage)?;
    if let Some(p) = a.poll_seconds {
        w.poll = std::time::Duration::from_secs(p.max(1));
    }
    let ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    let runs = watch(ctx, w, a.once).await?;
    if g.json {
        crate::render::print_json(&serde_json::json!({ "runs": runs }));
    }
    Ok(exit::OK)
}
