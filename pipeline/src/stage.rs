//! The three stages behind one entry point. `medallion bronze|silver|gold` and `run --stages`
//! all reach a stage through [`Stage::run`], called by `orchestrate::run_date`: one code path,
//! so the same lock, ledger records and retries apply however a stage is started.

use std::fmt;

use schemas::RunDate;

use crate::ledger;
use crate::orchestrate::RunContext;

/// A pipeline stage, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Bronze,
    Silver,
    Gold,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Bronze, Stage::Silver, Stage::Gold];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Bronze => "bronze",
            Stage::Silver => "silver",
            Stage::Gold => "gold",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|x| x.name() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stage produced, typed: commands render it, the ledger stores its summary.
#[derive(Debug)]
pub enum StageReport {
    Bronze(bronze::LandReport),
    Silver(Box<silver::SilverReport>),
    Gold(Box<gold::GoldReport>),
    /// Nothing to do (no feeds, nothing landed, nothing to publish), and why.
    Skipped(String),
}

/// How one stage ended.
#[derive(Debug)]
pub struct StageOutcome {
    pub stage: Stage,
    pub report: StageReport,
    pub seconds: f64,
}

impl StageOutcome {
    pub fn skipped(&self) -> bool {
        match &self.report {
            StageReport::Skipped(_) => true,
            StageReport::Bronze(r) => r.feeds.is_empty(),
            _ => false,
        }
    }

    /// Rows the stage handled (landed, read, published).
    pub fn rows(&self) -> Option<u64> {
        match &self.report {
            StageReport::Bronze(r) => Some(r.rows_landed()),
            StageReport::Silver(r) => Some(r.feeds.iter().map(|f| f.rows_read).sum()),
            StageReport::Gold(r) => Some(r.tables.iter().map(|t| t.rows).sum()),
            StageReport::Skipped(_) => None,
        }
    }

    /// The summary the ledger keeps for the stage's job.
    pub fn summary(&self) -> serde_json::Value {
        match &self.report {
            StageReport::Bronze(r) => serde_json::json!({
                "landed": r.count(bronze::LandAction::Landed),
                "quarantined": r.count(bronze::LandAction::Quarantined),
                "already_landed": r.count(bronze::LandAction::AlreadyLanded),
                "ignored": r.ignored.len(),
            }),
            StageReport::Silver(r) => serde_json::json!({
                "feeds": r.feeds.len(),
                "business_dates": r.business_dates,
                "product_changes": r.product_changes,
                "orphan_items": r.orphan_items,
            }),
            StageReport::Gold(r) => serde_json::to_value(r).unwrap_or_default(),
            StageReport::Skipped(_) => serde_json::json!({}),
        }
    }

    /// One line for the progress log.
    pub fn line(&self) -> String {
        match &self.report {
            StageReport::Bronze(r) => format!(
                "{} landed ({} rows), {} quarantined, {} already landed",
                r.count(bronze::LandAction::Landed),
                r.rows_landed(),
                r.count(bronze::LandAction::Quarantined),
                r.count(bronze::LandAction::AlreadyLanded)
            ),
            StageReport::Silver(r) => format!(
                "{} feeds reconciled, {} rows read, {} rejected, {} duplicate",
                r.feeds.len(),
                r.feeds.iter().map(|f| f.rows_read).sum::<u64>(),
                r.feeds.iter().map(|f| f.rejected).sum::<u64>(),
                r.feeds.iter().map(|f| f.duplicate).sum::<u64>()
            ),
            StageReport::Gold(r) => format!(
                "{} rows published for {} order dates ({} silver runs)",
                r.tables.iter().map(|t| t.rows).sum::<u64>(),
                r.order_dates.len(),
                r.silver_runs.len()
            ),
            StageReport::Skipped(why) => why.clone(),
        }
    }
}

/// Why a stage failed, with the library error kept as the cause.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Bronze(#[from] bronze::BronzeError),
    #[error(transparent)]
    Silver(#[from] silver::SilverError),
    #[error(transparent)]
    Gold(#[from] gold::GoldError),
    #[error("the run ledger: {0}")]
    Ledger(#[from] gold::WarehouseError),
    #[error("{0}")]
    Config(String),
}

impl StageError {
    /// Whether running the stage again may succeed (a service unreachable, a dropped
    /// connection): decided from the error's type, never its text.
    pub fn is_transient(&self) -> bool {
        match self {
            StageError::Bronze(e) => e.is_transient(),
            StageError::Silver(e) => e.is_transient(),
            StageError::Gold(e) => e.is_transient(),
            StageError::Ledger(e) => e.is_transient(),
            StageError::Config(_) => false,
        }
    }
}

impl Stage {
    /// Runs this stage for `date`. The caller holds the lake lock and records the attempt.
    pub async fn run(self, ctx: &RunContext, wh: &mut gold::Warehouse, date: RunDate) -> Result<StageReport, StageError> {
        match self {
            Stage::Bronze => {
                let on_feed = |o: &bronze::FeedOutcome| {
                    if !ctx.quiet {
                        crate::render::log_feed(o);
                    }
                };
                let report = if ctx.options.bronze_from_raw {
                    bronze::reland_date(&ctx.lake, date, ctx.options.concurrency, &on_feed).await?
                } else {
                    let landing = ctx.landing.as_ref().ok_or_else(|| StageError::Config("bronze needs a landing zone".into()))?;
                    bronze::land_date_partners(landing, &ctx.lake, date, ctx.options.partners.as_ref(), ctx.options.concurrency, &on_feed).await?
                };
                for ig in &report.ignored {
                    tracing::warn!("ignored {}: {}", ig.path, ig.reason);
                }
                Ok(StageReport::Bronze(report))
            }
            Stage::Silver => {
                let registry = bronze::Registry::new(&ctx.lake);
                let partners = ctx.options.partners.as_ref();
                match crate::orchestrate::run_silver(ctx, date).await {
                    Ok(r) => {
                        for rec in &r.recovered {
                            tracing::warn!("recovered from an interrupted run: {rec}");
                        }
                        let feeds = registry.feeds_for_date(date).await.map_err(bronze::BronzeError::from)?;
                        ledger::sync_feeds_of(wh, date, &feeds, Some(&r), partners).await?;
                        Ok(StageReport::Silver(Box::new(r)))
                    }
                    Err(silver::SilverError::NothingToDo(d)) => {
                        let feeds = registry.feeds_for_date(date).await.map_err(bronze::BronzeError::from)?;
                        ledger::sync_feeds_of(wh, date, &feeds, None, partners).await?;
                        Ok(StageReport::Skipped(format!("no feeds were landed for {d} (run bronze first)")))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Stage::Gold => {
                // Every shard of the date must have completed silver.
                crate::orchestrate::gold_ready(ctx, date).await?;
                match gold::run_gold(&ctx.lake, wh, date, &gold::GoldOptions { full: ctx.options.full, engine: ctx.options.engine.clone() }).await {
                    Ok(r) => Ok(StageReport::Gold(Box::new(r))),
                    Err(gold::GoldError::NothingToDo(m)) => Ok(StageReport::Skipped(m)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}
