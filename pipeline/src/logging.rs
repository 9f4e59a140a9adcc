//! Logs: human lines on stderr by default, or one JSON object per line (`--log-format json`,
//! `MEDALLION_LOG_FORMAT`, `log_format` in medallion.toml) for log shippers, each carrying the
//! run id, date, stage, partner and feed id it is about as fields. Progress lines that are
//! plain text in the human format go through the same JSON logger, so stderr is all JSON.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::LogFormat;

static JSON: AtomicBool = AtomicBool::new(false);

/// Whether logs are JSON lines.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Installs the global logger. `MEDALLION_LOG` (an `EnvFilter`) overrides the levels.
pub fn init(quiet: bool, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDALLION_LOG").unwrap_or_else(|_| {
        // Our own progress at info; libraries (delta-rs, DataFusion, object_store) only warn.
        tracing_subscriber::EnvFilter::new(if quiet {
            "warn,deltalake_core=error"
        } else {
            "warn,deltalake_core=error,medallion=info,bronze=info,silver=info,gold=info,schemas=info,lake=info"
        })
    });
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .without_time()
            .init(),
        LogFormat::Json => {
            JSON.store(true, Ordering::Relaxed);
            tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_current_span(false)
                .with_span_list(true)
                .flatten_event(true)
                .init()
        }
    }
}

/// A progress line (a stage finished, a scheduler tick): as is on stderr in the human format,
/// an info event in the JSON one (inside the current run and stage spans).
pub fn progress(line: &str) {
    if json() {
        tracing::info!(target: "medallion", "{line}");
    } else {
        eprintln!("{line}");
    }
}

/// The span of one run of one date: its fields are on every JSON line logged inside it.
pub fn run_span(run_id: &str, date: schemas::RunDate, kind: &str) -> tracing::Span {
    if json() {
        tracing::info_span!("run", run_id = %run_id, date = %date, kind = %kind)
    } else {
        tracing::Span::none()
    }
}

/// The span of one stage of a run, inside the run's span.
pub fn stage_span(run: &tracing::Span, stage: &str) -> tracing::Span {
    if json() {
        tracing::info_span!(parent: run, "stage", stage = %stage)
    } else {
        tracing::Span::none()
    }
}
