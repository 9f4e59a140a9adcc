//! Notifications: webhooks fired when a run fails (or, opted in, succeeds), when a file is
//! quarantined, when a feed's rejects pass a threshold, and when a partner is missing at the
//! watch deadline. Targets come from `[[notify]]` tables in medallion.toml (or one JSON target
//! from `MEDALLION_NOTIFY_URL`), in Slack-compatible (`{"text": …}`) or generic JSON form.
//!
//! Guarantees: delivery never blocks or fails a run — each message is sent on its own task,
//! retried with backoff on a connection error, a timeout, 429 or 5xx (never on another 4xx),
//! and the process waits for pending deliveries at most [`FLUSH_WAIT`] before it exits. A
//! webhook URL is a secret (Slack's carries its token in the path): messages and logs name a
//! target by scheme and host only.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::orchestrate::RunSummary;
use crate::stage::{StageOutcome, StageReport};

/// How long the process waits for undelivered notifications before exiting.
pub const FLUSH_WAIT: Duration = Duration::from_secs(20);
const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Failure,
    Success,
    Quarantine,
    Rejects,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"text": "…"}`: Slack incoming webhooks and the many tools that accept their shape.
    Slack,
    /// `{"event", "title", "date", "run_id", "details", "host", "sent_at"}`.
    #[default]
    Json,
}

/// One `[[notify]]` table of medallion.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The webhook URL, or `url_env`: the environment variable holding it (keeps the secret
    /// out of the file).
    pub url: Option<String>,
    pub url_env: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// Events sent to this target (default: failure, quarantine, rejects, missing).
    #[serde(default = "default_events")]
    pub on: Vec<Event>,
    /// Rejected ÷ read above which a feed fires `rejects` (default 0.05).
    #[serde(default = "default_threshold")]
    pub reject_threshold: f64,
}

fn default_events() -> Vec<Event> {
    vec![Event::Failure, Event::Quarantine, Event::Rejects, Event::Missing]
}

fn default_threshold() -> f64 {
    0.05
}

#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// Scheme and host: what messages may show of the URL.
    display: String,
    format: Format,
    on: Vec<Event>,
    reject_threshold: f64,
}

struct Notifier {
    targets: Vec<Target>,
    client: reqwest::Client,
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

static NOTIFIER: OnceLock<Notifier> = OnceLock::new();

/// A URL shown without its path, query or credentials.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "<invalid URL>".into(),
    }
}

/// Reads the targets (medallion.toml's `[[notify]]`, then `MEDALLION_NOTIFY_URL`). Call once,
/// before the first run.
pub fn init(section: Option<&toml::Value>) -> Result<(), String> {
    let mut configs: Vec<TargetConfig> = match section {
        None => Vec::new(),
        Some(v) => v.clone().try_into().map_err(|e| format!("[[notify]] in the config file: {e}"))?,
    };
    if let Ok(url) = std::env::var("MEDALLION_NOTIFY_URL") {
        if !url.is_empty() {
            configs.push(TargetConfig { url: Some(url), url_env: None, format: Format::Json, on: default_events(), reject_threshold: default_threshold() });
        }
    }
    let mut targets = Vec::new();
    for (i, c) in configs.into_iter().enumerate() {
        let url = match (&c.url, &c.url_env) {
            (Some(u), None) => u.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| format!("notify target {}: environment variable {var} is not set", i + 1))?,
            _ => return Err(format!("notify target {}: give exactly one of url and url_env", i + 1)),
        };
        let parsed = url::Url::parse(&url).map_err(|_| format!("notify target {}: not a URL: {}", i + 1, display_url(&url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("notify target {}: only http and https webhooks are supported", i + 1));
        }
        if !(0.0..=1.0).contains(&c.reject_threshold) {
            return Err(format!("notify target {}: reject_threshold must be between 0 and 1", i + 1));
        }
        targets.push(Target { display: display_url(&url), url, format: c.format, on: c.on, reject_threshold: c.reject_threshold });
    }
    if targets.is_empty() {
        return Ok(());
    }
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| format!("notifications: {e}"))?;
    let _ = NOTIFIER.set(Notifier { targets, client, pending: Mutex::new(Vec::new()) });
    Ok(())
}

/// One notification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message {
    pub event: Event,
    pub title: String,
    pub date: Option<schemas::RunDate>,
    pub run_id: Option<String>,
    pub details: serde_json::Value,
}

impl Message {
    fn body(&self, format: Format) -> serde_json::Value {
        match format {
            Format::Slack => {
                let icon = match self.event {
                    Event::Failure => ":red_circle:",
                    Event::Success => ":large_green_circle:",
                    Event::Quarantine | Event::Rejects | Event::Missing => ":warning:",
                };
                serde_json::json!({ "text": format!("{icon} medallion: {}", self.title) })
            }
            Format::Json => serde_json::json!({
                "event": self.event,
                "title": self.title,
                "date": self.date,
                "run_id": self.run_id,
                "details": self.details,
                "host": crate::lock::hostname(),
                "sent_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
        }
    }
}

/// Sends `m` to every target subscribed to its event, in the background.
pub fn send(m: Message) {
    send_filtered(m, |_| true)
}

fn send_filtered(m: Message, wants: impl Fn(&Target) -> bool) {
    let Some(n) = NOTIFIER.get() else { return };
    for t in n.targets.iter().filter(|t| t.on.contains(&m.event) && wants(t)) {
        let (client, target, body) = (n.client.clone(), t.clone(), m.body(t.format));
        let task = tokio::spawn(async move { deliver(&client, &target, &body).await });
        n.pending.lock().expect("notification list").push(task);
    }
}

async fn deliver(client: &reqwest::Client, t: &Target, body: &serde_json::Value) {
    for attempt in 1..=ATTEMPTS {
        let request = client.post(&t.url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
        let retry = match request.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                let s = r.status();
                tracing::warn!("notification to {} refused: HTTP {s} (attempt {attempt} of {ATTEMPTS})", t.display);
                s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS
            }
            // The error names the URL: keep it out of the log.
            Err(e) => {
                let why = if e.is_timeout() { "timed out" } else if e.is_connect() { "cannot connect" } else { "request failed" };
                tracing::warn!("notification to {} failed: {why} (attempt {attempt} of {ATTEMPTS})", t.display);
                true
            }
        };
        if !retry || attempt == ATTEMPTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500 * (1 << attempt))).await;
    }
    tracing::warn!("notification to {} was not delivered", t.display);
}

/// Waits for the notifications still being delivered, at most [`FLUSH_WAIT`].
pub async fn flush() {
    let Some(n) = NOTIFIER.get() else { return };
    let tasks: Vec<_> = std::mem::take(&mut *n.pending.lock().expect("notification list"));
    if tasks.is_empty() {
        return;
    }
    if tokio::time::timeout(FLUSH_WAIT, futures::future::join_all(tasks)).await.is_err() {
        tracing::warn!("gave up waiting for notifications after {}s", FLUSH_WAIT.as_secs());
    }
}

/// The notifications of a finished run of one date: its failure or success, its quarantined
/// files and its feeds whose rejects passed a target's threshold.
pub fn run_finished(summary: &RunSummary, stages: &[StageOutcome]) {
    if NOTIFIER.get().is_none() {
        return;
    }
    let (date, run_id) = (Some(summary.date), Some(summary.run_id.clone()));
    match summary.status {
        schemas::JobStatus::Failed | schemas::JobStatus::Abandoned => send(Message {
            event: Event::Failure,
            title: format!("run {} of {} failed: {}", summary.run_id, summary.date, summary.error.as_deref().unwrap_or("unknown error")),
            date,
            run_id: run_id.clone(),
            details: serde_json::json!({ "error": summary.error, "stages": summary.stages }),
        }),
        schemas::JobStatus::Completed => send(Message {
            event: Event::Success,
            title: format!("run {} of {} completed", summary.run_id, summary.date),
            date,
            run_id: run_id.clone(),
            details: serde_json::json!({ "stages": summary.stages }),
        }),
        _ => {}
    }
    for o in stages {
        match &o.report {
            StageReport::Bronze(r) => {
                for f in r.feeds.iter().filter(|f| f.action == bronze::LandAction::Quarantined) {
                    let f = &f.feed;
                    send(Message {
                        event: Event::Quarantine,
                        title: format!(
                            "{} quarantined {} of partner {} ({}, {}): {}",
                            summary.date,
                            f.file_name,
                            f.partner,
                            f.dataset.name(),
                            f.feed_id,
                            f.reason.as_deref().unwrap_or("?")
                        ),
                        date,
                        run_id: run_id.clone(),
                        details: serde_json::json!({ "feed_id": f.feed_id, "partner": f.partner, "dataset": f.dataset.name(), "file_name": f.file_name, "reason": f.reason, "detail": f.detail }),
                    });
                }
            }
            StageReport::Silver(r) => {
                for f in r.feeds.iter().filter(|f| f.rows_read > 0) {
                    let rate = f.rejected as f64 / f.rows_read as f64;
                    let m = Message {
                        event: Event::Rejects,
                        title: format!(
                            "{} feed {} of partner {} ({}): {} of {} rows rejected ({:.1} %)",
                            summary.date,
                            f.feed_id,
                            f.partner,
                            f.dataset,
                            f.rejected,
                            f.rows_read,
                            rate * 100.0
                        ),
                        date,
                        run_id: run_id.clone(),
                        details: serde_json::json!({ "feed_id": f.feed_id, "partner": f.partner, "dataset": f.dataset, "rows_read": f.rows_read, "rejected": f.rejected, "reasons": f.reasons }),
                    };
                    send_filtered(m, |t| rate > t.reject_threshold);
                }
            }
            _ => {}
        }
    }
}

/// A run that ended in an error before it could record its stages.
pub fn run_failed(date: schemas::RunDate, run_id: Option<&str>, error: &str) {
    send(Message {
        event: Event::Failure,
        title: format!("run of {date} failed: {error}"),
        date: Some(date),
        run_id: run_id.map(str::to_string),
        details: serde_json::json!({ "error": error }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_secret_parts() {
        assert_eq!(display_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"), "https://hooks.slack.com/…");
        assert_eq!(display_url("http://user:pw@example.com:8080/hook?token=s3cret"), "http://example.com/…");
        assert_eq!(display_url("not a url s3cret"), "<invalid URL>");
    }

    #[test]
    fn config_tables_are_checked() {
        let t: toml::Table = "[[notify]]\nurl = \"https://x.example/hook\"\nformat = \"slack\"\non = [\"failure\", \"success\"]\n".parse().unwrap();
        let v: Vec<TargetConfig> = t["notify"].clone().try_into().unwrap();
        assert_eq!((v[0].format, v[0].on.clone(), v[0].reject_threshold), (Format::Slack, vec![Event::Failure, Event::Success], 0.05));
        let bad: toml::Table = "[[notify]]\nurl = \"https://x.example/hook\"\nonn = [\"failure\"]\n".parse().unwrap();
        assert!(bad["notify"].clone().try_into::<Vec<TargetConfig>>().is_err(), "a typo is an error");
        let m = Message { event: Event::Failure, title: "t".into(), date: None, run_id: None, details: serde_json::json!({}) };
        assert_eq!(m.body(Format::Slack), serde_json::json!({ "text": ":red_circle: medallion: t" }));
        assert_eq!(m.body(Format::Json)["event"], "failure");
    }
}
