//! The contract's value rules (CONTRACT.md §1 "Value rules"), as pure functions on one value.
//! Silver applies them column by column; they are the single definition of what a valid
//! money amount, integer, boolean, date or timestamp is.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

/// Money and decimals are exact: an integer count of 1/10 000 (scale 4).
pub const SCALE: u32 = 4;
pub const SCALE_FACTOR: i64 = 10_000;
/// At most 14 integer digits.
const MAX_INT_DIGITS: usize = 14;

/// Trims and maps empty or whitespace-only values to None.
pub fn normalize(raw: Option<&str>) -> Option<&str> {
    let t = raw?.trim();
    (!t.is_empty()).then_some(t)
}

/// Strings: trimmed, internal runs of whitespace collapsed to one space. None when empty,
/// and None when the value contains NUL (U+0000), which is invalid in any column: no
/// warehouse text type can hold it.
pub fn clean_string(raw: Option<&str>) -> Option<String> {
    let t = normalize(raw)?;
    if has_nul(t) {
        return None;
    }
    if !t.chars().any(char::is_whitespace) {
        return Some(t.to_string());
    }
    let mut out = String::with_capacity(t.len());
    let mut in_space = false;
    for c in t.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    Some(out)
}

/// Whether a value contains NUL (U+0000): invalid in any column (CONTRACT.md §1).
pub fn has_nul(s: &str) -> bool {
    s.as_bytes().contains(&0)
}

/// Each space-separated word: an upper-case first letter, the rest lower-case.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    out
}

/// Money / decimal: `[+-]?[$€£]?(digits | d{1,3}(,ddd)+)(.d{1,4})?`, at most 14 integer
/// digits. Returns the value in units of 1/10 000.
pub fn parse_money(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    let rest = rest.strip_prefix('$').or_else(|| rest.strip_prefix('€')).or_else(|| rest.strip_prefix('£')).unwrap_or(rest);
    let (int_part, frac_part) = match rest.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (rest, None),
    };
    if int_part.is_empty() {
        return None; // ".5"
    }
    let digits: String = if int_part.contains(',') {
        let groups: Vec<&str> = int_part.split(',').collect();
        let first = groups[0];
        if first.is_empty() || first.len() > 3 || !first.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !groups[1..].iter().all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit())) {
            return None;
        }
        groups.concat()
    } else {
        if !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        int_part.to_string()
    };
    let significant = digits.trim_start_matches('0');
    if significant.len() > MAX_INT_DIGITS {
        return None;
    }
    let mut value: i64 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    value = value.checked_mul(SCALE_FACTOR)?;
    if let Some(f) = frac_part {
        if f.is_empty() || f.len() > SCALE as usize || !f.bytes().all(|b| b.is_ascii_digit()) {
            return None; // "5." or "12.34567"
        }
        let frac: i64 = f.parse().ok()?;
        value += frac * 10i64.pow(SCALE - f.len() as u32);
    }
    Some(if neg { -value } else { value })
}

/// Formats a scaled value with exactly 4 decimals (for messages and tests).
pub fn format_scaled(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / SCALE_FACTOR as u64, a % SCALE_FACTOR as u64)
}

/// Integers: optional sign, ASCII digits only, within i64.
pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// Booleans: true/false, t/f, yes/no, y/n, 1/0, case-insensitive.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn strict_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if ![0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| b[i].is_ascii_digit()) {
        return None;
    }
    let y: i32 = s[0..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(y, m, d)
}

fn two(b: &[u8], i: usize) -> Option<u32> {
    let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
    (x.is_ascii_digit() && y.is_ascii_digit()).then(|| ((x - b'0') * 10 + (y - b'0')) as u32)
}

/// Timestamps, in microseconds since the epoch (UTC): RFC 3339 (`T`/`t` between date and
/// time, optional fraction, then `Z`/`z` or `±HH:MM`, which is required),
/// `YYYY-MM-DD HH:MM:SS` (UTC; no fraction, no zone), or a plain date (midnight UTC).
/// Seconds are required whenever a time is given.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    if s.len() == 10 {
        return Some(strict_date(s)?.and_time(NaiveTime::MIN).and_utc().timestamp_micros());
    }
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    // `get`, not `[..10]`: byte 10 of a hostile value may fall inside a character.
    let date = strict_date(s.get(..10)?)?;
    if !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let space_form = b[10] == b' ';
    if space_form && b.len() != 19 {
        return None; // the space form takes neither a fraction nor a zone
    }
    let (h, mi, sec) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
    let time = NaiveTime::from_hms_opt(h, mi, sec)?;
    let mut i = 19;
    let mut micros: i64 = 0;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start || end - start > 9 {
            return None;
        }
        let frac = &s[start..end];
        let padded = format!("{frac:0<9}");
        let nanos: i64 = padded.parse().ok()?;
        micros = nanos / 1000; // sub-microsecond digits are truncated
        i = end;
    }
    let offset_secs: i64 = match &b[i..] {
        [] if space_form => 0,
        [] => return None, // RFC 3339 needs its `Z` or offset
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let oh = two(rest, 0)? as i64;
            let om = two(rest, 3)? as i64;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_micros();
    Some(local + micros - offset_secs * 1_000_000)
}

/// Dates: `YYYY-MM-DD`, or a timestamp whose UTC date is kept. Days since the epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    if let Some(d) = strict_date(s) {
        return Some((d - epoch).num_days() as i32);
    }
    let ts = parse_timestamp(s)?;
    let d = DateTime::<Utc>::from_timestamp_micros(ts)?.date_naive();
    Some((d - epoch).num_days() as i32)
}

/// Currency: three letters, upper-cased.
pub fn parse_currency(s: &str) -> Option<String> {
    let up = s.to_ascii_uppercase();
    (up.len() == 3 && up.bytes().all(|b| b.is_ascii_uppercase())).then_some(up)
}

/// `^[^@\s]+@[^@\s]+\.[^@\s]+$` on the lower-cased value.
pub fn is_valid_email(s: &str) -> bool {
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else { return false };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    // some '.' with at least one character on each side
    domain.char_indices().any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
}

/// Two letters A–Z (after upper-casing).
pub fn is_valid_country(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(normalize(Some("  ")), None);
        assert_eq!(normalize(Some("")), None);
        assert_eq!(normalize(None), None);
        assert_eq!(clean_string(Some("  Big \t  Blue\n Lamp ")), Some("Big Blue Lamp".into()));
        assert_eq!(clean_string(Some("Big\0Lamp")), None, "NUL is invalid in any column");
        assert_eq!(clean_string(Some("\0")), None);
        assert!(has_nul("a\0") && !has_nul("a"));
        assert_eq!(title_case("home & garden"), "Home & Garden");
        assert_eq!(title_case("HOME & GARDEN"), "Home & Garden");
        assert_eq!(title_case("o'neil's toys"), "O'neil's Toys");
        assert_eq!(title_case("électronique"), "Électronique");
    }

    #[test]
    fn money() {
        let ok = [
            ("$1,234.50", 12_345_000),
            ("1234.5", 12_345_000),
            ("0", 0),
            ("-$5.00", -50_000),
            ("+€12", 120_000),
            ("£1,234,567", 12_345_670_000),
            ("12.3456", 123_456),
            ("99999999999999.9999", 999_999_999_999_999_999),
            ("00012.00", 120_000),
        ];
        for (s, v) in ok {
            assert_eq!(parse_money(s), Some(v), "{s}");
        }
        for s in [".5", "5.", "1,23", "12.34567", "$-5", "abc", "1,2345", ",123", "1.2.3", "", "$", "1 234", "123456789012345", "12,34.5", "1e5", "--1", "+-1", "$$1", "USD 5"] {
            assert_eq!(parse_money(s), None, "{s}");
        }
        assert_eq!(format_scaled(12_345_000), "1234.5000");
        assert_eq!(format_scaled(-50), "-0.0050");
    }

    #[test]
    fn ints_and_bools() {
        assert_eq!(parse_int("3"), Some(3));
        assert_eq!(parse_int("+3"), Some(3));
        assert_eq!(parse_int("-12"), Some(-12));
        for s in ["3.0", "3,000", "", "+", "1e3", " 3", "9223372036854775808", "٣"] {
            assert_eq!(parse_int(s), None, "{s}");
        }
        assert_eq!(parse_int("9223372036854775807"), Some(i64::MAX));
        for (s, v) in [("TRUE", true), ("f", false), ("Yes", true), ("n", false), ("1", true), ("0", false)] {
            assert_eq!(parse_bool(s), Some(v), "{s}");
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bool("2"), None);
    }

    fn ts(s: &str) -> Option<String> {
        parse_timestamp(s).map(|us| DateTime::<Utc>::from_timestamp_micros(us).unwrap().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts("2026-11-20T13:45:00Z").unwrap(), "2026-11-20T13:45:00.000000Z");
        assert_eq!(ts("2026-11-20t13:45:00z").unwrap(), "2026-11-20T13:45:00.000000Z");
        assert_eq!(ts("2026-11-20T13:45:00+02:00").unwrap(), "2026-11-20T11:45:00.000000Z");
        assert_eq!(ts("2026-11-20T01:00:00+02:00").unwrap(), "2026-11-19T23:00:00.000000Z");
        assert_eq!(ts("2026-11-20T23:30:00-01:00").unwrap(), "2026-11-21T00:30:00.000000Z");
        assert_eq!(ts("2026-11-20T13:45:00.123456789Z").unwrap(), "2026-11-20T13:45:00.123456Z");
        assert_eq!(ts("2026-11-20T13:45:00.5+00:00").unwrap(), "2026-11-20T13:45:00.500000Z");
        assert_eq!(ts("2026-11-20 13:45:00").unwrap(), "2026-11-20T13:45:00.000000Z");
        assert_eq!(ts("2026-11-20").unwrap(), "2026-11-20T00:00:00.000000Z");
        for s in ["2026-11-20T13:45", "2026-11-20T13:45Z", "2026-11-31", "2026-11-20T25:00:00Z", "11/20/2026", "2026-11-20T13:45:00+0200", "2026-11-20T13:45:00 Z", "2026-1-20", "20261120", "2026-11-20T13:45:00.Z", "yesterday",
            // CONTRACT.md §1: RFC 3339 needs its zone; the space form takes no zone nor fraction
            "2026-11-15T10:00:00", "2026-11-15t10:00:00.5", "2026-11-15 10:00:00Z", "2026-11-15 10:00:00z",
            "2026-11-15 10:00:00.5", "2026-11-15 10:00:00+02:00", "2026-11-15 10:00:00 ", "2026-11-20T13:45:00Z\0",
            // byte 10 inside a character (found by the fuzz test below: it panicked)
            "2026-11-2\u{e9}T10:00:00Z", "a \u{1f300}  \u{a13}\u{1ee29}\u{1a90} "] {
            assert_eq!(ts(s), None, "{s}");
        }
    }

    #[test]
    fn dates() {
        let d = |s| parse_date(s).map(|n| (NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(n as i64)).to_string());
        assert_eq!(d("2026-11-20").unwrap(), "2026-11-20");
        assert_eq!(d("2026-11-20T01:00:00+02:00").unwrap(), "2026-11-19", "a timestamp keeps its UTC date");
        assert_eq!(d("2026-02-30"), None);
        assert_eq!(d("20261120"), None);
        assert_eq!(d("2026-11-15 10:00:00").unwrap(), "2026-11-15");
        for s in ["2026-11-15T10:00:00", "2026-11-15 10:00:00Z", "2026-11-15 10:00:00.5", "2026-11-15\0"] {
            assert_eq!(d(s), None, "{s}: a date-typed column takes only what a timestamp column takes");
        }
    }

    #[test]
    fn codes() {
        assert_eq!(parse_currency("eur").as_deref(), Some("EUR"));
        assert_eq!(parse_currency("US"), None);
        assert_eq!(parse_currency("dollars"), None);
        assert_eq!(parse_currency("€ur"), None);
        assert!(is_valid_email("a.b@example.com"));
        assert!(!is_valid_email("a@b"));
        assert!(!is_valid_email("x @y.com"));
        assert!(!is_valid_email("a@@b.com"));
        assert!(!is_valid_email("a@b."));
        assert!(!is_valid_email("a@.b"));
        assert!(is_valid_email("a@b.c.d"));
        assert!(is_valid_country("US"));
        assert!(!is_valid_country("USA"));
        assert!(!is_valid_country("U1"));
    }
}

/// Fuzzing the value rules, seeded by the committed corpus `schemas/fuzz/values.txt` (one
/// value per line; then mutations of them and generated text, `MEDALLION_FUZZ_CASES` cases
/// each, default 2000): no input makes a parser panic, what a parser accepts is written back
/// in a form that parses to the same value, and cleaning is idempotent.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<String> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/values.txt");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let v: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(v.len() >= 40, "the committed corpus is there");
        v
    }

    fn cases() -> u32 {
        std::env::var("MEDALLION_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    }

    /// Every parser on `s`; `Err` names the broken invariant.
    fn check(s: &str) -> Result<(), String> {
        if let Some(v) = parse_money(s) {
            if parse_money(&format_scaled(v)) != Some(v) {
                return Err(format!("money {s:?} -> {v} does not round-trip"));
            }
        }
        if let Some(i) = parse_int(s) {
            if parse_int(&i.to_string()) != Some(i) {
                return Err(format!("int {s:?} does not round-trip"));
            }
        }
        if let Some(us) = parse_timestamp(s) {
            let t = DateTime::<Utc>::from_timestamp_micros(us).ok_or_else(|| format!("timestamp {s:?} -> {us} is out of range"))?;
            if parse_timestamp(&t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()) != Some(us) {
                return Err(format!("timestamp {s:?} does not round-trip"));
            }
        }
        if let Some(d) = parse_date(s) {
            let day = chrono::NaiveDate::from_num_days_from_ce_opt(d + 719_163).ok_or_else(|| format!("date {s:?} -> {d} is out of range"))?;
            if parse_date(&day.format("%Y-%m-%d").to_string()) != Some(d) {
                return Err(format!("date {s:?} does not round-trip"));
            }
        }
        if let Some(c) = parse_currency(s) {
            if parse_currency(&c).as_deref() != Some(c.as_str()) {
                return Err(format!("currency {s:?} is not idempotent"));
            }
        }
        let cleaned = clean_string(Some(s));
        if clean_string(cleaned.as_deref()) != cleaned {
            return Err(format!("cleaning {s:?} is not idempotent"));
        }
        let _ = (parse_bool(s), title_case(s), is_valid_email(s), is_valid_country(s), has_nul(s), normalize(Some(s)));
        Ok(())
    }

    #[test]
    fn corpus_values_hold_every_invariant() {
        for v in corpus() {
            check(&v).unwrap_or_else(|e| panic!("corpus value {v:?}: {e}"));
        }
        // The contract's invalid timestamp forms (CONTRACT.md: a zone is required, and the
        // space form takes neither a zone nor a fraction).
        for bad in ["2026-11-15T10:00:00", "2026-11-15 10:00:00Z", "2026-11-15 10:00:00.5"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    fn mutated() -> impl Strategy<Value = String> {
        (prop::sample::select(corpus()), proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>(), any::<char>()), 0..4)).prop_map(|(s, edits)| {
            let mut chars: Vec<char> = s.chars().collect();
            for (i, insert, c) in edits {
                let at = i.index(chars.len() + 1);
                if insert || at == chars.len() {
                    chars.insert(at, c);
                } else {
                    chars[at] = c;
                }
            }
            chars.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        #[test]
        fn mutated_corpus_holds_every_invariant(s in mutated()) {
            if let Err(e) = check(&s) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}|[0-9T:Z+. ,$€£-]{0,30}|2026-11-[0-9é ]{1,20}") {
            let _ = parse_money(&s);
            let _ = parse_int(&s);
            let _ = parse_bool(&s);
            let _ = parse_timestamp(&s);
            let _ = parse_date(&s);
            let _ = parse_currency(&s);
            let _ = clean_string(Some(&s));
            let _ = title_case(&s);
            let _ = is_valid_email(&s);
        }

        #[test]
        fn arbitrary_bytes_as_text_never_panic(b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let s = String::from_utf8_lossy(&b);
            let _ = parse_timestamp(&s);
            let _ = parse_date(&s);
            let _ = parse_money(&s);
        }

        #[test]
        fn ints_round_trip(i in any::<i64>()) {
            prop_assert_eq!(parse_int(&i.to_string()), Some(i));
        }

        #[test]
        fn money_round_trips(v in -999_999_999_999_999_999i64..=999_999_999_999_999_999) {
            prop_assert_eq!(parse_money(&format_scaled(v)), Some(v));
        }

        #[test]
        fn timestamps_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_999_999) {
            let t = DateTime::<Utc>::from_timestamp_micros(us).unwrap();
            prop_assert_eq!(parse_timestamp(&t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()), Some(us));
            let secs = us.div_euclid(1_000_000) * 1_000_000;
            prop_assert_eq!(parse_timestamp(&t.format("%Y-%m-%d %H:%M:%S").to_string()), Some(secs));
            prop_assert_eq!(parse_timestamp(&t.format("%Y-%m-%dT%H:%M:%S").to_string()), None, "RFC 3339 needs a zone");
        }
    }
}
