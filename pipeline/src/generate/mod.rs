//! `medallion generate`: deterministic synthetic partner feeds in the landing-zone layout,
//! with every defect class of the contract injected at a controllable rate.
//!
//! The same options always give byte-identical files (a self-contained SplitMix64 generator,
//! one stream per partner), so the demo, the tests and the benchmarks are reproducible.

use chrono::{Duration, NaiveDate};

mod vocab;
use vocab::*;
use object_store::buffered::BufWriter;
use object_store::path::{Path, PathPart};
use lake::Location;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub partners: usize,
    pub days: usize,
    pub start: NaiveDate,
    /// Orders per partner per day; catalog and customer counts scale with it.
    pub rows: usize,
    /// Catalog size per partner (default: half the orders per day, at least 20).
    pub products: Option<usize>,
    pub seed: u64,
    /// Probability (0..=1) that a row carries a defect; 0 gives clean feeds.
    pub defect_rate: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct GenerateSummary {
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub partners: Vec<String>,
    pub dates: Vec<String>,
}

/// SplitMix64: tiny, fast, and stable forever (unlike a library's default generator).
pub struct Generator {
    opts: GenerateOptions,
}

impl Generator {
    pub fn new(opts: GenerateOptions) -> Self {
        Generator { opts }
    }

    pub fn partner_ids(&self) -> Vec<String> {
        (0..self.opts.partners)
            .map(|i| if i < PARTNERS.len() { PARTNERS[i].to_string() } else { format!("partner-{:03}", i + 1) })
            .collect()
    }

    /// Writes every file to the landing zone.
    pub async fn write(&self, landing: &Location, on_file: &(dyn Fn(&str, u64) + Sync)) -> Result<GenerateSummary, String> {
        let mut summary = GenerateSummary { partners: self.partner_ids(), ..Default::default() };
        for d in 0..self.opts.days {
            summary.dates.push((self.opts.start + Duration::days(d as i64)).to_string());
        }
        for (pi, partner) in self.partner_ids().into_iter().enumerate() {
            let mut rng = Rng::new(self.opts.seed.wrapping_mul(1_000_003).wrapping_add(pi as u64));
            let mut state = PartnerState { id: partner, products: Vec::new(), customers: 0, campaigns: 0, next_order: 1, pending: Vec::new() };
            for d in 0..self.opts.days {
                let date = self.opts.start + Duration::days(d as i64);
                for (dataset, name, bytes, rows) in self.day_files(&mut rng, &mut state, date, d, pi) {
                    let path = Path::from_iter([state.id.as_str(), dataset, &date.to_string(), &name].map(PathPart::from));
                    let mut w = BufWriter::new(landing.store.clone(), path.clone());
                    w.write_all(&bytes).await.map_err(|e| format!("{}: {e}", landing.describe(&path)))?;
                    w.shutdown().await.map_err(|e| format!("{}: {e}", landing.describe(&path)))?;
                    on_file(&landing.describe(&path), bytes.len() as u64);
                    summary.files += 1;
                    summary.rows += rows;
                    summary.bytes += bytes.len() as u64;
                }
            }
        }
        Ok(summary)
    }

    /// Every file of one partner and day: (dataset, file name, content, data rows).
    fn day_files(&self, rng: &mut Rng, st: &mut PartnerState, date: NaiveDate, day: usize, pi: usize) -> Vec<(&'static str, String, Vec<u8>, u64)> {
        let dr = self.opts.defect_rate;
        let rows = self.opts.rows.max(1);
        let mut files = Vec::new();
        let mut push = |dataset: &'static str, out: CsvOut, suffix: &str| {
            let rows = out.rows;
            files.push((dataset, format!("{dataset}_{date}{suffix}.csv"), out.buf.into_bytes(), rows));
        };

        // products: the whole catalog on day 0, then changes, re-sends and new SKUs.
        let catalog = self.opts.products.unwrap_or((rows / 2).max(20)).max(1);
        let mut out = CsvOut::new(rng, &["sku", "name", "category", "brand", "price", "currency", "quantity", "updated_at"], dr);
        let mut send: Vec<usize> = Vec::new();
        if day == 0 {
            while st.products.len() < catalog {
                let currency = if rng.chance(0.1) { "EUR" } else if rng.chance(0.05) { "GBP" } else { "USD" };
                let p = new_product(rng, &st.id, st.products.len(), currency);
                st.products.push(p);
            }
            send.extend(0..st.products.len());
        } else {
            for (i, p) in st.products.iter_mut().enumerate() {
                if rng.chance(0.08) {
                    p.price_cents = (p.price_cents as f64 * (0.8 + rng.below(40) as f64 / 100.0)) as i64;
                    send.push(i);
                } else if rng.chance(0.05) {
                    p.qty = rng.range(0, 500);
                    send.push(i);
                } else if rng.chance(0.05) {
                    send.push(i); // unchanged re-send
                }
            }
            for _ in 0..(catalog / 20).max(1) {
                let i = st.products.len();
                let p = new_product(rng, &st.id, i, "USD");
                st.products.push(p);
                send.push(i);
            }
        }
        for &i in &send {
            let p = &st.products[i];
            let sku = if rng.chance(dr) { p.sku.to_lowercase() } else { p.sku.clone() };
            let mut f = vec![
                sku,
                odd_case(rng, &p.name, dr),
                odd_case(rng, CATEGORIES[p.category], 0.5),
                if rng.chance(0.05) { String::new() } else { BRANDS[p.brand].to_string() },
                money(rng, p.price_cents, symbol(p.currency)),
                if p.currency == "USD" && rng.chance(0.3) { String::new() } else { odd_case(rng, p.currency, dr).to_lowercase() },
                p.qty.to_string(),
                timestamp(rng, date),
            ];
            if rng.chance(dr) {
                corrupt(rng, &mut f, &[(0, &["", "  "]), (1, &[""]), (2, &[""]), (4, &["", "abc", "-5.00", "12.34567", "1,23", ".5"]), (5, &["US", "dollars"]), (6, &["-3", "3.0", "many"]), (7, &["yesterday", "2026-13-01"])]);
            }
            out.row(rng, dr, &mut f);
            if rng.chance(dr * 0.5) {
                // the same SKU twice in one file: the later row wins
                let mut dup = f.clone();
                dup[6] = (p.qty + 1).to_string();
                if dup.len() >= 8 {
                    out.row(rng, 0.0, &mut dup);
                }
            }
        }
        push("products", out, "");

        // customers: a base on day 0, a few new and updated ones every day.
        let target = st.customers + if day == 0 { (rows / 2).max(10) } else { (rows / 10).max(2) };
        let mut out = CsvOut::new(rng, &["customer_id", "email", "first_name", "last_name", "country", "signup_date"], dr);
        let updates = if day == 0 { 0 } else { (rows / 50).max(1) };
        let ids: Vec<usize> = (st.customers..target).chain((0..updates).map(|_| rng.below(st.customers.max(1) as u64) as usize)).collect();
        for c in ids {
            let first = *rng.pick(FIRST);
            let last = *rng.pick(LAST);
            let email = if rng.chance(dr) {
                rng.pick(&["not-an-email", "a@b", "x @y.com"]).to_string()
            } else {
                format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), c)
            };
            let mut f = vec![
                format!("C{:06}", c + 1),
                if rng.chance(dr) { email.to_uppercase() } else { email },
                if rng.chance(0.03) { String::new() } else { odd_case(rng, first, dr) },
                if rng.chance(0.03) { String::new() } else { last.to_string() },
                if rng.chance(dr) { rng.pick(&["USA", "U1", "12"]).to_string() } else { rng.pick(COUNTRIES).to_string() },
                (date - Duration::days(rng.range(0, 900))).to_string(),
            ];
            if rng.chance(dr) {
                corrupt(rng, &mut f, &[(0, &["", " "]), (5, &["2026-02-30", "20261120", "soon"])]);
            }
            out.row(rng, dr, &mut f);
        }
        st.customers = target;
        push("customers", out, "");

        // campaigns: a few on day 0, one more now and then.
        let new_campaigns = if day == 0 { 4 } else if rng.chance(0.3) { 1 } else { 0 };
        if new_campaigns > 0 {
            let mut out = CsvOut::new(rng, &["campaign_id", "name", "channel", "start_date", "end_date", "budget"], dr);
            for _ in 0..new_campaigns {
                st.campaigns += 1;
                let budget_cents = rng.range(50_000, 5_000_000);
                let start = date - Duration::days(rng.range(0, 10));
                let mut f = vec![
                    format!("CMP-{:03}", st.campaigns),
                    format!("{} {}", rng.pick(&["Black Friday", "Spring Sale", "Back to School", "Summer Deals", "Clearance"]), 2026),
                    rng.pick(CHANNELS).to_string(),
                    start.to_string(),
                    if rng.chance(0.2) { String::new() } else { (start + Duration::days(rng.range(5, 40))).to_string() },
                    if rng.chance(0.15) { String::new() } else if rng.chance(0.1) { "0".into() } else { money(rng, budget_cents, "$") },
                ];
                if rng.chance(dr * 3.0) {
                    f[4] = (start - Duration::days(3)).to_string(); // invalid_range
                }
                out.row(rng, 0.0, &mut f);
            }
            push("campaigns", out, "");
        }

        // orders and their items; some late (an earlier business date), some pending that
        // a later day completes or returns, some cancelled.
        let mut orders = CsvOut::new(rng, &["order_id", "customer_id", "order_date", "status", "currency", "campaign_id", "total_amount"], dr);
        let mut items = CsvOut::new(rng, &["order_id", "line_number", "sku", "quantity", "unit_price", "discount", "returned"], dr);
        let resolved = std::mem::take(&mut st.pending);
        for (order_id, customer, ts, _lines) in resolved {
            let status = if rng.chance(0.8) { "completed" } else if rng.chance(0.5) { "returned" } else { "Canceled" };
            let mut f = vec![order_id, customer, ts, status.into(), String::new(), String::new(), String::new()];
            orders.row(rng, 0.0, &mut f);
        }
        for _ in 0..rows {
            let order_id = format!("O{}-{:07}", pi + 1, st.next_order);
            st.next_order += 1;
            let customer = format!("C{:06}", rng.below(st.customers.max(1) as u64) + 1 + if rng.chance(0.02) { 900_000 } else { 0 });
            let odate = if day > 0 && rng.chance(0.05) { date - Duration::days(rng.range(1, day.min(3) as i64)) } else { date };
            let ts = timestamp(rng, odate);
            let r = rng.below(100);
            let status = match r {
                0..=64 => "completed",
                65..=79 => "pending",
                80..=86 => "returned",
                87..=92 => "cancelled",
                _ => "COMPLETED",
            };
            let currency = if rng.chance(0.1) { "eur" } else { "USD" };
            let lines = rng.range(1, 4) as usize;
            let mut total_exact: i128 = 0;
            for line in 1..=lines {
                let p = &st.products[rng.below(st.products.len() as u64) as usize];
                let sku = if rng.chance(0.01) { "UNKNOWN-SKU".to_string() } else { p.sku.clone() };
                let qty = rng.range(1, 5);
                let discount = *rng.pick(&["", "", "", "0", "0.1", "0.25", "0.05"]);
                let returned = if status == "completed" && rng.chance(0.05) { rng.pick(&["true", "yes", "Y", "1"]).to_string() } else { rng.pick(&["", "false", "no", "0", "N"]).to_string() };
                let disc_bp: i64 = match discount {
                    "0.1" => 1000,
                    "0.25" => 2500,
                    "0.05" => 500,
                    _ => 0,
                };
                // exact, in 1/10 000 of a cent; rounded once for the order total
                total_exact += p.price_cents as i128 * qty as i128 * (10_000 - disc_bp) as i128;
                let mut f = vec![order_id.clone(), line.to_string(), sku, qty.to_string(), money(rng, p.price_cents, "$"), discount.to_string(), returned];
                if rng.chance(dr) {
                    corrupt(rng, &mut f, &[(1, &["0", "x", ""]), (3, &["0", "-1", "2.5", ""]), (4, &["", "free", "-1.00"]), (5, &["1.5", "-0.1", "ten"]), (6, &["maybe"])]);
                }
                items.row(rng, dr, &mut f);
                if rng.chance(dr * 0.3) {
                    items.row(rng, 0.0, &mut f.clone()); // duplicate key in one file
                }
            }
            let total_cents = ((total_exact + 5_000) / 10_000) as i64;
            let total = if rng.chance(dr) { money(rng, total_cents + 500, "$") } else if rng.chance(0.2) { String::new() } else { money(rng, total_cents, "$") };
            let campaign = if st.campaigns > 0 && rng.chance(0.3) { format!("CMP-{:03}", rng.range(1, st.campaigns as i64)) } else { String::new() };
            let mut f = vec![order_id.clone(), customer.clone(), ts.clone(), odd_case(rng, status, dr), currency.into(), campaign, total];
            if rng.chance(dr) {
                corrupt(rng, &mut f, &[(1, &["", " "]), (2, &["", "2026-11-31", "11/20/2026", "2026-11-20T10:00"]), (3, &["shipped", ""]), (4, &["US", "dollars"]), (6, &["1.2.3"])]);
            }
            orders.row(rng, dr, &mut f);
            if status == "pending" && rng.chance(0.6) {
                st.pending.push((order_id, customer, ts, lines));
            }
        }
        push("orders", orders, "");
        push("order_items", items, "");

        // inventory: a snapshot of every SKU in one or two warehouses.
        let mut out = CsvOut::new(rng, &["sku", "warehouse", "quantity_on_hand", "reorder_level"], dr);
        for p in &st.products {
            for w in WAREHOUSES.iter().take(1 + (p.sku.len() % 2)) {
                let mut f = vec![p.sku.clone(), w.to_string(), rng.range(0, 300).to_string(), if rng.chance(0.2) { String::new() } else { rng.range(0, 50).to_string() }];
                if rng.chance(dr) {
                    corrupt(rng, &mut f, &[(2, &["-1", "", "lots"]), (3, &["-5", "1.5"])]);
                }
                out.row(rng, dr, &mut f);
            }
        }
        push("inventory", out, "");

        // File-level defects, as extra files so the day's main feeds survive: a header
        // missing a required column, a Latin-1 (not UTF-8) file, and broken CSV.
        if dr > 0.0 && (day + pi) % 3 == 0 {
            let mut out = CsvOut::new(rng, &["customer_id", "email", "country"], 0.0);
            out.line(&["C999001", "late@example.com", "US"]);
            let mut o2 = out;
            o2.buf = o2.buf.replace("customer_id", "cust_id");
            push("customers", o2, "_missing_column");
        }
        if dr > 0.0 && (day + pi) % 3 == 1 {
            let mut bytes = b"sku,name,category,price\n".to_vec();
            bytes.extend_from_slice(b"LAT-1,Caf\xe9 Cr\xe8me,grocery,3.50\n");
            files.push(("products", format!("products_{date}_latin1.csv"), bytes, 1));
        }
        if dr > 0.0 && (day + pi) % 3 == 2 {
            let bytes = b"campaign_id,name,start_date\nCMP-900,\"Unterminated,2026-11-01\n".to_vec();
            files.push(("campaigns", format!("campaigns_{date}_broken.csv"), bytes, 1));
        }
        files
    }
}

