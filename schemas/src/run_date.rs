//! [`RunDate`]: the logical date of a run (`YYYY-MM-DD`), validated once at the edge (command
//! line, file names, records) and passed as a type from there on.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

/// A run date. Displays, parses and serialises as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunDate(NaiveDate);

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("the epoch is a date"),
};

impl RunDate {
    pub fn new(date: NaiveDate) -> RunDate {
        RunDate(date)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// Days since 1970-01-01 (Arrow's `Date32`).
    pub fn days_since_epoch(self) -> i32 {
        (self.0 - EPOCH).num_days() as i32
    }

    /// The date `days` after 1970-01-01 (`None` when out of range).
    pub fn from_days(days: i32) -> Option<RunDate> {
        EPOCH.checked_add_signed(chrono::Duration::days(days as i64)).map(RunDate)
    }

    /// The next day.
    pub fn succ(self) -> Option<RunDate> {
        self.0.succ_opt().map(RunDate)
    }

    /// The previous day.
    pub fn pred(self) -> Option<RunDate> {
        self.0.pred_opt().map(RunDate)
    }

    /// Every date from `self` to `last`, both included.
    pub fn iter_to(self, last: RunDate) -> impl Iterator<Item = RunDate> {
        std::iter::successors(Some(self), move |d| d.succ().filter(|n| *n <= last)).take_while(move |d| *d <= last)
    }
}

impl fmt::Display for RunDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that widths and alignment (`{:<12}`) apply as to a string.
        f.pad(&self.0.format("%Y-%m-%d").to_string())
    }
}

impl FromStr for RunDate {
    type Err = String;

    /// Run dates are `YYYY-MM-DD` (exactly ten characters).
    fn from_str(s: &str) -> Result<RunDate, String> {
        let invalid = || format!("invalid date {s:?}: expected YYYY-MM-DD");
        if s.len() != 10 {
            return Err(invalid());
        }
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map(RunDate).map_err(|_| invalid())
    }
}

impl From<NaiveDate> for RunDate {
    fn from(d: NaiveDate) -> RunDate {
        RunDate(d)
    }
}

impl From<RunDate> for NaiveDate {
    fn from(d: RunDate) -> NaiveDate {
        d.0
    }
}

impl PartialEq<str> for RunDate {
    fn eq(&self, other: &str) -> bool {
        other.parse::<RunDate>().is_ok_and(|o| o == *self)
    }
}

impl serde::Serialize for RunDate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for RunDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RunDate, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_displays_and_serialises() {
        let d: RunDate = "2026-11-20".parse().unwrap();
        assert_eq!(d.to_string(), "2026-11-20");
        assert_eq!(format!("[{d:<12}]"), "[2026-11-20  ]");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2026-11-20\"");
        assert_eq!(serde_json::from_str::<RunDate>("\"2026-11-20\"").unwrap(), d);
        assert!(serde_json::from_str::<RunDate>("\"2026-1-20\"").is_err());
        assert_eq!("2026-1-20".parse::<RunDate>().unwrap_err(), "invalid date \"2026-1-20\": expected YYYY-MM-DD");
        assert!("2026-02-30".parse::<RunDate>().is_err());
    }

    #[test]
    fn days_and_iteration() {
        let d: RunDate = "1970-01-02".parse().unwrap();
        assert_eq!(d.days_since_epoch(), 1);
        assert_eq!(RunDate::from_days(1), Some(d));
        let a: RunDate = "2026-02-27".parse().unwrap();
        let b: RunDate = "2026-03-01".parse().unwrap();
        let all: Vec<String> = a.iter_to(b).map(|d| d.to_string()).collect();
        assert_eq!(all, ["2026-02-27", "2026-02-28", "2026-03-01"]);
        assert_eq!(b.iter_to(a).count(), 0);
        assert_eq!(a.succ().unwrap().pred(), Some(a));
    }
}
