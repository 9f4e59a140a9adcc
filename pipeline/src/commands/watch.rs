//! `medallion watch`: completeness-triggered runs (see `crate::watch`), configured by the
//! `[watch]` section of medallion.toml.

use crate::cli::WatchArgs;
use crate::commands::Globals;
use crate::watch::watch;
use crate::{exit, orchestrate, Failure};

pub async fn run(g: &Globals, a: WatchArgs) -> Result<u8, Failure> {
    let mut w = crate::watch::load()?;
    if let Some(p) = a.poll_seconds {
        w.poll = std::time::Duration::from_secs(p.max(1));
    }
    let ctx = orchestrate::context(&g.lake, Some((&a.landing, true)), g.warehouse.as_deref(), a.retries, g.lock_timeout, g.quiet).await?;
    let runs = watch(ctx, w, a.once, None).await?;
    if g.json {
        crate::render::print_json(&serde_json::json!({ "runs": runs }));
    }
    Ok(exit::OK)
}
