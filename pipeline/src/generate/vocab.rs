//! The generator's vocabulary: a reproducible random stream, names and values, CSV writing
//! with the contract's defect classes injected at a given rate.

use chrono::NaiveDate;

pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

pub(super) const PARTNERS: &[&str] = &["acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "cyberdyne", "soylent"];
pub(super) const CATEGORIES: &[&str] = &["electronics", "home & garden", "sports", "toys", "beauty", "books", "clothing", "grocery", "office supplies", "pet care"];
pub(super) const ADJECTIVES: &[&str] = &["Classic", "Ultra", "Eco", "Smart", "Compact", "Deluxe", "Pro", "Mini", "Vintage", "Rugged", "Silent", "Bright"];
pub(super) const NOUNS: &[&str] = &["Lamp", "Backpack", "Blender", "Headphones", "Sneakers", "Notebook", "Kettle", "Drone", "Yoga Mat", "Desk", "Jacket", "Puzzle", "Camera", "Mug"];
pub(super) const BRANDS: &[&str] = &["Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adventure Works", "Proseware"];
pub(super) const FIRST: &[&str] = &["Ana", "Ben", "Chloé", "David", "Emma", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya"];
pub(super) const LAST: &[&str] = &["Smith", "García", "Müller", "Rossi", "Kowalski", "Nguyen", "Okafor", "Silva", "Dubois", "Tanaka", "Olsen", "Haddad"];
pub(super) const COUNTRIES: &[&str] = &["US", "us", "GB", "DE", "FR", "ES", "IT", "NL", "PL", "JP", " ca "];
pub(super) const CHANNELS: &[&str] = &["Email", "social", "SEARCH", "display", "affiliate"];
pub(super) const WAREHOUSES: &[&str] = &["east", "west", "central"];

pub(super) struct Product {
    pub(super) sku: String,
    pub(super) name: String,
    pub(super) category: usize,
    pub(super) brand: usize,
    pub(super) price_cents: i64,
    pub(super) currency: &'static str,
    pub(super) qty: i64,
}

pub(super) fn new_product(rng: &mut Rng, partner: &str, i: usize, currency: &'static str) -> Product {
    Product {
        sku: format!("{}-{:06}", &partner[..partner.len().min(3)].to_uppercase(), i + 1),
        name: format!("{} {}", rng.pick(ADJECTIVES), rng.pick(NOUNS)),
        category: rng.below(CATEGORIES.len() as u64) as usize,
        brand: rng.below(BRANDS.len() as u64) as usize,
        price_cents: rng.range(199, 250_000),
        currency,
        qty: rng.range(0, 500),
    }
}

pub(super) struct PartnerState {
    pub(super) id: String,
    pub(super) products: Vec<Product>,
    pub(super) customers: usize,
    pub(super) campaigns: usize,
    pub(super) next_order: u64,
    /// Orders sent as pending, re-sent later with a final status.
    pub(super) pending: Vec<(String, String, String, usize)>,
}

/// A CSV file being built, with per-file defects (BOM, CRLF, an extra column).
pub(super) struct CsvOut {
    pub(super) buf: String,
    pub(super) crlf: bool,
    pub(super) extra_col: bool,
    pub(super) rows: u64,
}

impl CsvOut {
    pub(super) fn new(rng: &mut Rng, header: &[&str], defect_rate: f64) -> Self {
        let bom = rng.chance(defect_rate * 3.0);
        let crlf = rng.chance(defect_rate * 3.0);
        let extra_col = rng.chance(defect_rate * 3.0);
        let mut out = CsvOut { buf: String::with_capacity(1 << 16), crlf, extra_col, rows: 0 };
        if bom {
            out.buf.push('\u{feff}');
        }
        // Header names in odd casing and spacing now and then: matched case-insensitively.
        let names: Vec<String> = header
            .iter()
            .map(|h| if rng.chance(defect_rate) { format!(" {} ", h.to_uppercase()) } else { h.to_string() })
            .collect();
        let mut names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        if extra_col {
            names.push("partner_note");
        }
        out.line(&names);
        out.rows = 0;
        out
    }

    pub(super) fn line(&mut self, fields: &[&str]) {
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            if f.contains([',', '"', '\n', '\r']) {
                self.buf.push('"');
                self.buf.push_str(&f.replace('"', "\"\""));
                self.buf.push('"');
            } else {
                self.buf.push_str(f);
            }
        }
        self.buf.push_str(if self.crlf { "\r\n" } else { "\n" });
        self.rows += 1;
    }

    pub(super) fn row(&mut self, rng: &mut Rng, defect_rate: f64, fields: &mut Vec<String>) {
        if self.extra_col {
            fields.push(if rng.chance(0.3) { "note, with comma".into() } else { String::new() });
        }
        if rng.chance(defect_rate * 0.2) {
            // malformed row: one field too many or too few
            if rng.chance(0.5) {
                fields.pop();
            } else {
                fields.push("stray".into());
            }
        }
        let refs: Vec<&str> = fields.iter().map(|s| s.as_str()).collect();
        self.line(&refs);
    }
}

pub(super) fn money(rng: &mut Rng, cents: i64, symbol: &str) -> String {
    let whole = cents / 100;
    let frac = cents % 100;
    match rng.below(10) {
        0 if whole >= 1000 => {
            let mut grouped = String::new();
            let digits = whole.to_string();
            for (i, ch) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(ch);
            }
            format!("{symbol}{grouped}.{frac:02}")
        }
        1 => format!("{symbol}{whole}.{frac:02}"),
        2 if frac % 10 == 0 => format!("{whole}.{}", frac / 10),
        3 => format!(" {whole}.{frac:02} "),
        _ => format!("{whole}.{frac:02}"),
    }
}

pub(super) fn symbol(currency: &str) -> &'static str {
    match currency {
        "EUR" => "€",
        "GBP" => "£",
        _ => "$",
    }
}

pub(super) fn timestamp(rng: &mut Rng, date: NaiveDate) -> String {
    let h = rng.range(0, 23);
    let m = rng.range(0, 59);
    let s = rng.range(0, 59);
    match rng.below(6) {
        0 => format!("{date} {h:02}:{m:02}:{s:02}"),
        1 => {
            // an offset that keeps the UTC date: local = UTC + 2h, only when it stays the same day
            if h <= 21 {
                format!("{date}T{:02}:{m:02}:{s:02}+02:00", h + 2)
            } else {
                format!("{date}T{h:02}:{m:02}:{s:02}Z")
            }
        }
        2 => format!("{date}t{h:02}:{m:02}:{s:02}.{:03}z", rng.below(1000)),
        _ => format!("{date}T{h:02}:{m:02}:{s:02}Z"),
    }
}

pub(super) fn odd_case(rng: &mut Rng, s: &str, defect_rate: f64) -> String {
    if !rng.chance(defect_rate * 2.0) {
        return s.to_string();
    }
    match rng.below(3) {
        0 => s.to_uppercase(),
        1 => format!("  {}  ", s.replace(' ', "   ")),
        _ => s.to_lowercase(),
    }
}

/// Blanks or corrupts one required field of a row (by index) to exercise row rejection.
pub(super) fn corrupt(rng: &mut Rng, fields: &mut [String], choices: &[(usize, &[&str])]) {
    let (idx, bad) = rng.pick(choices);
    fields[*idx] = rng.pick(bad).to_string();
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_stable() {
        let mut r = Rng::new(42);
        let first: Vec<u64> = (0..3).map(|_| r.next()).collect();
        let mut r2 = Rng::new(42);
        assert_eq!(first, (0..3).map(|_| r2.next()).collect::<Vec<_>>());
        // pinned: changing the generator silently would change every generated data set
        assert_eq!(Rng::new(0).next(), 7_960_286_522_194_355_700);
    }

    #[test]
    fn money_formats() {
        let mut r = Rng::new(1);
        for _ in 0..200 {
            let s = money(&mut r, 123_456_789, "$");
            let t = s.trim();
            assert!(t == "$1,234,567.89" || t == "$1234567.89" || t == "1234567.89", "{s}");
        }
    }
}

