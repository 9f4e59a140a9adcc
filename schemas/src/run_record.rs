//! Typed documents that cross stages, defined once: silver writes its run record
//! (`silver/_runs/D.json`, [`SilverRecord`]) and gold reads the same type; the run ledger
//! records [`RunStatus`]es and [`JobStatus`]es; the products diff classifies rows with
//! [`ChangeKind`]. The JSON format is the one the existing records have (same field names,
//! statuses as snake_case strings).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::run_date::RunDate;

/// Where a silver run stands (the `status` of its record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Writing: a crash leaves this, and the next run undoes the writes.
    #[default]
    Running,
    Completed,
    /// Failed; its writes were undone.
    Failed,
    /// A backfill restored silver to before this run: it must run again.
    Superseded,
    /// Crashed; a later run undid its writes.
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Superseded => "superseded",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Where a job (one stage of an orchestrated run) or a whole run stands in the run ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted by `medallion serve` (`POST /v1/runs`), waiting for its worker; a job of a
    /// run that has not reached it yet.
    Queued,
    Running,
    Completed,
    Failed,
    /// Nothing to do (e.g. no feeds for the date).
    Skipped,
    /// The run's process died (e.g. `kill -9`) while it ran: the run that took over its stale
    /// lake lock marked it so, with the dead holder in its error.
    Abandoned,
    /// Cancelled (`DELETE /v1/runs/{id}`) while queued, or stopped at a stage boundary.
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 7] =
        [JobStatus::Queued, JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Skipped, JobStatus::Abandoned, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Skipped => "skipped",
            JobStatus::Abandoned => "abandoned",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|j| j.as_str() == s)
    }

    /// Whether a run in this status is over (nothing will change it any more).
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a products feed row did to its product (silver's `product_changes.change`; the SQL
/// models compare with these strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A SKU not seen before for the partner.
    Inserted,
    /// A compared column changed.
    Updated,
    Unchanged,
    /// The row was rejected.
    Skipped,
    /// The row was superseded by a later row of the same SKU.
    Duplicate,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Inserted => "inserted",
            ChangeKind::Updated => "updated",
            ChangeKind::Unchanged => "unchanged",
            ChangeKind::Skipped => "skipped",
            ChangeKind::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<ChangeKind> {
        [ChangeKind::Inserted, ChangeKind::Updated, ChangeKind::Unchanged, ChangeKind::Skipped, ChangeKind::Duplicate]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Counts of one feed in one run: `rows_read = valid + rejected + duplicate`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FeedStats {
    pub feed_id: String,
    pub partner: String,
    pub dataset: String,
    pub file_name: String,
    pub rows_read: u64,
    pub valid: u64,
    pub rejected: u64,
    pub duplicate: u64,
    pub warnings: BTreeMap<String, u64>,
    pub reasons: BTreeMap<String, u64>,
}

impl FeedStats {
    pub fn balances(&self) -> bool {
        self.rows_read == self.valid + self.rejected + self.duplicate
    }
}

/// The products diff of one partner in one run.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct ProductDiff {
    pub partner: String,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub duplicate: u64,
}

impl ProductDiff {
    pub fn count(&mut self, change: ChangeKind) {
        match change {
            ChangeKind::Inserted => self.inserted += 1,
            ChangeKind::Updated => self.updated += 1,
            ChangeKind::Unchanged => self.unchanged += 1,
            ChangeKind::Skipped => self.skipped += 1,
            ChangeKind::Duplicate => self.duplicate += 1,
        }
    }
}

/// The record of silver's run for one date (`silver/_runs/D.json`), written by silver and
/// read by gold and the pipeline. Fields other than `date` and `status` default when absent,
/// so older records stay readable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SilverRecord {
    pub date: RunDate,
    pub status: RunStatus,
    /// Set when this run first undid the writes of a crashed run of the same lake.
    #[serde(default)]
    pub recovered: Vec<String>,
    #[serde(default)]
    pub feeds: Vec<FeedStats>,
    #[serde(default)]
    pub product_changes: Vec<ProductDiff>,
    /// Items whose order is unknown after the run, per partner.
    #[serde(default)]
    pub orphan_items: BTreeMap<String, u64>,
    /// Orders upserted in this run whose total_amount differs from their items by > 0.01.
    #[serde(default)]
    pub total_mismatch: u64,
    /// Business dates (UTC order dates) whose gold figures this run may change.
    #[serde(default)]
    pub business_dates: Vec<String>,
    /// Products whose name or category changed: gold dates with their items change too.
    #[serde(default)]
    pub renamed_or_recategorised: Vec<(String, String)>,
    #[serde(default)]
    pub versions_before: BTreeMap<String, i64>,
    #[serde(default)]
    pub versions_after: BTreeMap<String, i64>,
    /// Why the run failed (its writes were undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While a sharded run (`--partners`) of this date writes: the date's completed record of
    /// the shards before it, put back if this shard fails or crashes (its own writes are
    /// undone to `versions_before`). Absent from every completed record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_prior: Option<Box<SilverRecord>>,
}

impl SilverRecord {
    /// The record of a run that starts now.
    pub fn new(date: RunDate) -> SilverRecord {
        SilverRecord {
            date,
            status: RunStatus::Running,
            recovered: Vec::new(),
            feeds: Vec::new(),
            product_changes: Vec::new(),
            orphan_items: BTreeMap::new(),
            total_mismatch: 0,
            business_dates: Vec::new(),
            renamed_or_recategorised: Vec::new(),
            versions_before: BTreeMap::new(),
            versions_after: BTreeMap::new(),
            error: None,
            shard_prior: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_snake_case_strings() {
        assert_eq!(serde_json::to_string(&RunStatus::Superseded).unwrap(), "\"superseded\"");
        assert_eq!(serde_json::to_string(&JobStatus::Skipped).unwrap(), "\"skipped\"");
        assert_eq!(JobStatus::parse("failed"), Some(JobStatus::Failed));
        for j in JobStatus::ALL {
            assert_eq!(JobStatus::parse(j.as_str()), Some(j));
            assert_eq!(serde_json::to_string(&j).unwrap(), format!("\"{}\"", j.as_str()));
        }
        assert!(!JobStatus::Queued.is_final() && JobStatus::Cancelled.is_final());
        for c in ["inserted", "updated", "unchanged", "skipped", "duplicate"] {
            assert_eq!(ChangeKind::parse(c).unwrap().as_str(), c);
            assert_eq!(serde_json::to_string(&ChangeKind::parse(c).unwrap()).unwrap(), format!("\"{c}\""));
        }
    }

    #[test]
    fn records_round_trip_and_old_records_read() {
        let mut r = SilverRecord::new("2026-11-20".parse().unwrap());
        r.status = RunStatus::Completed;
        r.versions_after.insert("orders".into(), 3);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"date\":\"2026-11-20\"") && json.contains("\"status\":\"completed\""), "{json}");
        assert!(!json.contains("\"error\""), "{json}");
        let back: SilverRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.versions_after, r.versions_after);
        // The part gold used to read on its own: everything but date and status may be absent.
        let old: SilverRecord = serde_json::from_str(r#"{"date":"2026-11-19","status":"failed"}"#).unwrap();
        assert_eq!(old.status, RunStatus::Failed);
        assert!(serde_json::from_str::<SilverRecord>(r#"{"status":"completed"}"#).is_err());
    }
}
