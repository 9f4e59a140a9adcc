//! The `[watch]` section of medallion.toml: the partners a date waits for and when each is
//! complete, checked before the watcher starts (an unknown key, a dataset name or a rule
//! given twice is a usage error).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveTime;
use schemas::Dataset;
use serde::Deserialize;

use crate::Failure;

/// `[watch]` in medallion.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// Dates looked at: today and the `window_days` before it.
    #[serde(default = "default_window")]
    pub window_days: u32,
    /// `HH:MM` UTC on the day after a date: it then runs with what has arrived.
    pub deadline: Option<String>,
    #[serde(default = "default_debounce")]
    pub debounce_seconds: u64,
    #[serde(default)]
    pub archive: bool,
    pub partners: BTreeMap<String, PartnerRule>,
}

/// When one partner's feeds of a date are complete (exactly one of the three).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PartnerRule {
    /// Each of these datasets has at least one file.
    #[serde(default)]
    pub datasets: Vec<String>,
    /// `_control/{partner}/{date}/_SUCCESS` exists.
    #[serde(default)]
    pub marker: bool,
    /// `_control/{partner}/{date}/manifest.json` exists and every file it names is there
    /// with its row count: `{"files": [{"dataset": "orders", "file": "orders.csv", "rows": 120}]}`.
    #[serde(default)]
    pub manifest: bool,
}

fn default_poll() -> u64 {
    30
}
fn default_window() -> u32 {
    3
}
fn default_debounce() -> u64 {
    120
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Watch {
    pub poll: Duration,
    pub window_days: u32,
    pub deadline: Option<NaiveTime>,
    pub debounce: chrono::Duration,
    pub archive: bool,
    pub partners: BTreeMap<String, Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    Datasets(Vec<Dataset>),
    Marker,
    Manifest,
}

impl WatchConfig {
    pub fn check(self) -> Result<Watch, String> {
        let deadline = match &self.deadline {
            None => None,
            Some(s) => Some(NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("[watch] deadline {s:?}: expected HH:MM (UTC)"))?),
        };
        if self.partners.is_empty() {
            return Err("[watch] needs at least one [watch.partners.<id>] table: the partners a date waits for".into());
        }
        let mut partners = BTreeMap::new();
        for (p, r) in self.partners {
            schemas::contract::validate_partner_id(&p).map_err(|e| format!("[watch.partners.{p}]: {e}"))?;
            let rule = match (r.datasets.is_empty(), r.marker, r.manifest) {
                (false, false, false) => Rule::Datasets(
                    r.datasets
                        .iter()
                        .map(|d| Dataset::parse(d).ok_or_else(|| format!("[watch.partners.{p}]: unknown dataset {d:?}")))
                        .collect::<Result<_, _>>()?,
                ),
                (true, true, false) => Rule::Marker,
                (true, false, true) => Rule::Manifest,
                _ => return Err(format!("[watch.partners.{p}]: give exactly one of datasets = [...], marker = true, manifest = true")),
            };
            partners.insert(p, rule);
        }
        Ok(Watch {
            poll: Duration::from_secs(self.poll_seconds.max(1)),
            window_days: self.window_days,
            deadline,
            debounce: chrono::Duration::seconds(self.debounce_seconds as i64),
            archive: self.archive,
            partners,
        })
    }
}

/// The `[watch]` section of medallion.toml, checked.
pub fn load() -> Result<Watch, Failure> {
    let section = crate::config::section("watch")
        .ok_or_else(|| Failure::usage("watch needs a [watch] section in medallion.toml: the partners a date waits for (see the README, Event-driven runs)"))?;
    let cfg: WatchConfig = section.clone().try_into().map_err(|e| Failure::usage(format!("[watch] in the config file: {e}")))?;
    cfg.check().map_err(Failure::usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        let t: toml::Table = "[watch]\ndeadline = \"04:00\"\n[watch.partners.acme]\ndatasets = [\"orders\", \"products\"]\n[watch.partners.globex]\nmarker = true\n".parse().unwrap();
        let w = t["watch"].clone().try_into::<WatchConfig>().unwrap().check().unwrap();
        assert_eq!(w.partners["acme"], Rule::Datasets(vec![Dataset::Orders, Dataset::Products]));
        assert_eq!(w.partners["globex"], Rule::Marker);
        assert_eq!(w.deadline, NaiveTime::from_hms_opt(4, 0, 0));
        for bad in [
            "[watch]\n[watch.partners.acme]\nmarker = true\nmanifest = true\n",
            "[watch]\n[watch.partners.acme]\n",
            "[watch]\n[watch.partners.acme]\ndatasets = [\"ordrs\"]\n",
            "[watch]\ndeadline = \"4am\"\n[watch.partners.acme]\nmarker = true\n",
            "[watch]\n",
        ] {
            let t: toml::Table = bad.parse().unwrap();
            let r = t["watch"].clone().try_into::<WatchConfig>().map_err(|e| e.to_string()).and_then(|c| c.check());
            assert!(r.is_err(), "{bad}");
        }
    }
}
