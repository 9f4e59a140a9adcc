//! The read endpoints of `medallion serve` over real HTTP against the real binary: products
//! pages equal silver (every SKU exactly once, also while a run upserts products), product
//! detail, analytics equal the warehouse to the cent, feeds reconciliation and rejects pages,
//! auth by role; on a local lake with SQLite and with PostgreSQL, and on SeaweedFS.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{command, local, medallion, postgres, Env};

const READER: &str = "reader-key-0123456789";
const INGEST: &str = "ingest-key-0123456789";
const OPERATOR: &str = "operator-key-0123456789";
const D1: &str = "2026-11-18";
const D2: &str = "2026-11-19";

/// A running `medallion serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `medallion serve` on a free port with a reader, an ingest and an operator key.
pub fn serve(env: &Env, warehouse: &str) -> Server {
    let mut child = command(env, &["serve", "--listen", "127.0.0.1:0", "--warehouse", warehouse])
        .env("MEDALLION_API_KEYS", format!("reader:{READER},ingest:{INGEST},operator:{OPERATOR}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn medallion serve");
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: String = rest.trim_start_matches("http://").chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
                    let _ = tx.send(addr);
                }
            }
        });
    }
    let addr = rx.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("medallion serve did not print its address")
    });
    Server { child, addr }
}

/// A response: status and body as JSON (Null when empty or not JSON).
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
    pub text: String,
}

/// GET `path` (with query) with an optional API key, over a plain TCP connection.
pub fn get(server: &Server, path: &str, key: Option<&str>) -> Resp {
    let mut s = TcpStream::connect(&server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", server.addr).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    let text = String::from_utf8_lossy(&body).to_string();
    Resp { status, content_type: header("content-type").unwrap_or_default(), body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

#[track_caller]
fn ok(server: &Server, path: &str) -> Value {
    let r = get(server, path, Some(READER));
    assert_eq!(r.status, 200, "GET {path}: {}", r.text);
    r.body
}

#[track_caller]
fn refused(server: &Server, path: &str, status: u16) -> Value {
    let r = get(server, path, Some(READER));
    assert_eq!(r.status, status, "GET {path}: {}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "GET {path}");
    assert_eq!(r.body["status"].as_u64(), Some(status as u64), "{}", r.text);
    r.body
}

/// Every item of a cursor-paginated listing, following next_cursor; and the pages' count.
fn all_pages(server: &Server, path: &str, items: &str) -> (Vec<Value>, usize) {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for pages in 1.. {
        let url = match &next {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_string(),
        };
        let page = ok(server, &url);
        out.extend(page[items].as_array().unwrap_or_else(|| panic!("{url}: {page}")).iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => return (out, pages),
        }
        assert!(pages < 10_000, "{path}: endless listing");
    }
    unreachable!()
}

/// Percent-encodes a path segment or query value.
fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// `medallion sql --json` rows.
fn sql(env: &Env, query: &str) -> Vec<Value> {
    medallion(env, &["sql", "--json", query]).ok().json()["rows"].as_array().unwrap().clone()
}

fn keys(items: &[Value]) -> Vec<(String, String)> {
    items.iter().map(|p| (p["partner_id"].as_str().unwrap().to_string(), p["sku"].as_str().unwrap().to_string())).collect()
}

/// A lake with two run dates of generated feeds (defects included) in `warehouse`.
fn lake_with_two_days(env: &Env, warehouse: &str) {
    medallion(env, &["generate", "--partners", "3", "--days", "2", "--rows", "40", "--defect-rate", "0.1", "--start-date", D1, "--out", &env.landing, "-q"]).ok();
    for d in [D1, D2] {
        medallion(env, &["run", "--date", d, "-q", "--warehouse", warehouse]).ok();
    }
}

/// Money as the warehouse holds it, with two places (SQLite stores REAL).
fn cents(v: &str) -> String {
    format!("{:.2}", v.parse::<f64>().unwrap_or_else(|_| panic!("{v}")))
}

fn read_endpoints(env: Env, warehouse: &str) {
    lake_with_two_days(&env, warehouse);
    let server = serve(&env, warehouse);

    // Auth: no key 401 with WWW-Authenticate, an ingest-only key 403, reader and operator 200.
    for path in ["/v1/products", "/v1/analytics/daily-sales", "/v1/feeds"] {
        let r = get(&server, path, None);
        assert_eq!((r.status, r.content_type.as_str()), (401, "application/problem+json"), "{path}: {}", r.text);
        assert_eq!(get(&server, path, Some("not-a-key")).status, 401, "{path}");
        let r = get(&server, path, Some(INGEST));
        assert_eq!(r.status, 403, "{path}: {}", r.text);
        assert!(!r.text.contains(INGEST), "the key is never echoed");
        assert_eq!(get(&server, path, Some(OPERATOR)).status, 200, "{path}: operator includes reader");
    }

    // Products: pages of 7 equal silver's current table, every SKU exactly once, in order.
    let silver = sql(&env, "SELECT partner_id, sku, name, category FROM silver.products ORDER BY partner_id, sku");
    assert!(silver.len() > 20, "{}", silver.len());
    let (items, pages) = all_pages(&server, "/v1/products?limit=7", "items");
    assert_eq!(keys(&items), keys(&silver));
    assert_eq!(pages, silver.len().div_ceil(7));
    for (a, b) in items.iter().zip(&silver) {
        assert_eq!((&a["name"], &a["category"]), (&b["name"], &b["category"]));
        let price = a["price"].as_str().unwrap();
        assert!(price.split_once('.').is_some_and(|(_, f)| f.len() >= 2), "money is a decimal string: {price}");
    }
    // Filters: one partner, one category, changed_since.
    let partner = items[0]["partner_id"].as_str().unwrap().to_string();
    let (mine, _) = all_pages(&server, &format!("/v1/products?partner={partner}&limit=5"), "items");
    assert_eq!(keys(&mine), keys(&silver).into_iter().filter(|(p, _)| *p == partner).collect::<Vec<_>>());
    let category = items[0]["category"].as_str().unwrap().to_string();
    let in_category = sql(&env, &format!("SELECT partner_id, sku FROM silver.products WHERE category = '{category}' ORDER BY partner_id, sku"));
    let (got, _) = all_pages(&server, &format!("/v1/products?category={}&limit=4", enc(&category)), "items");
    assert_eq!(keys(&got), keys(&in_category));
    let changed = sql(&env, &format!("SELECT partner_id, sku FROM silver.products WHERE last_changed_date >= DATE '{D2}' ORDER BY partner_id, sku"));
    let (recent, _) = all_pages(&server, &format!("/v1/products?changed_since={D2}&limit=50"), "items");
    assert_eq!(keys(&recent), keys(&changed));
    assert!(!changed.is_empty() && changed.len() < silver.len(), "{} of {}", changed.len(), silver.len());
    // Cursors: garbage, a cursor of another listing, bad limits, bad dates are 400.
    let first = ok(&server, "/v1/products?limit=3");
    let c = first["next_cursor"].as_str().unwrap();
    refused(&server, "/v1/products?cursor=bm9wZQ", 400);
    refused(&server, "/v1/products?cursor=%%%", 400);
    refused(&server, &format!("/v1/products?cursor={c}&partner={partner}"), 400);
    refused(&server, "/v1/products?limit=0", 400);
    refused(&server, "/v1/products?limit=1001", 400);
    refused(&server, "/v1/products?changed_since=2026-13-01", 400);
    refused(&server, "/v1/products?partner=Not%20A%20Partner", 400);

    // Product detail: the row, its history (oldest first, last current) and change log.
    let p = &items[items.len() / 2];
    let (pp, sku) = (p["partner_id"].as_str().unwrap(), p["sku"].as_str().unwrap());
    let detail = ok(&server, &format!("/v1/products/{pp}/{}", enc(sku)));
    assert_eq!(detail["product"], *p);
    let history = detail["history"].as_array().unwrap();
    assert!(!history.is_empty());
    assert_eq!(history.iter().filter(|h| h["is_current"] == true).count(), 1);
    assert_eq!(history.last().unwrap()["is_current"], true);
    let silver_history = sql(&env, &format!("SELECT COUNT(*) AS n FROM silver.products_history WHERE partner_id = '{pp}' AND sku = '{sku}'"));
    assert_eq!(history.len() as i64, silver_history[0]["n"].as_i64().unwrap());
    assert!(!detail["changes"].as_array().unwrap().is_empty());
    refused(&server, &format!("/v1/products/{pp}/NO-SUCH-SKU"), 404);

    // Analytics: every endpoint's pages equal the warehouse table, money to the cent.
    let wh_rows = crate::common::warehouse_gold(warehouse);
    for (endpoint, table) in [
        ("daily-sales", "daily_sales"),
        ("category-kpis", "category_kpis"),
        ("order-kpis", "order_kpis"),
        ("partner-revenue", "partner_revenue"),
        ("inventory", "inventory_status"),
        ("campaigns", "campaign_performance"),
    ] {
        let t = gold::models::table(table).unwrap();
        let (rows, _) = all_pages(&server, &format!("/v1/analytics/{endpoint}?limit=4"), "rows");
        let mut got: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                t.columns
                    .iter()
                    .map(|c| match (&r[&c.name], c.ty) {
                        (Value::Null, _) => "NULL".to_string(),
                        (Value::String(s), gold::models::GoldType::Money) => {
                            assert!(s.split_once('.').is_some_and(|(_, f)| f.len() == 2), "{table}.{}: {s}", c.name);
                            cents(s)
                        }
                        (Value::String(s), _) => s.clone(),
                        (Value::Number(n), gold::models::GoldType::Ratio) => format!("{:.12e}", n.as_f64().unwrap()),
                        (Value::Bool(b), _) => b.to_string(),
                        (v, _) => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        got.sort();
        assert_eq!(got, wh_rows[table], "{endpoint}");
        assert!(!got.is_empty() || table == "campaign_performance", "{endpoint} has rows");
    }
    // Filters and refusals.
    let (d2_sales, _) = all_pages(&server, &format!("/v1/analytics/daily-sales?from={D2}&to={D2}&partner={partner}"), "rows");
    assert!(d2_sales.iter().all(|r| r["order_date"] == D2 && r["partner_id"] == partner.as_str()));
    let want = wh_rows["daily_sales"].iter().filter(|r| r[0] == D2 && r[1] == partner).count();
    assert_eq!(d2_sales.len(), want);
    refused(&server, "/v1/analytics/daily-sales?from=2026-02-30", 400);
    refused(&server, &format!("/v1/analytics/daily-sales?from={D2}&to={D1}"), 400);
    refused(&server, "/v1/analytics/order-kpis?partner=acme", 400);
    refused(&server, "/v1/analytics/inventory?currency=USD", 400);
    refused(&server, "/v1/analytics/daily-sales?currency=usd", 400);
    let c = ok(&server, "/v1/analytics/daily-sales?limit=1")["next_cursor"].as_str().unwrap().to_string();
    refused(&server, &format!("/v1/analytics/order-kpis?cursor={c}"), 400);

    // Feeds: every feed once across pages, reconciliation balanced and equal to the ledger.
    let registry = medallion(&env, &["feeds", "--json"]).ok().json()["feeds"].as_array().unwrap().clone();
    let (feeds, _) = all_pages(&server, "/v1/feeds?limit=4", "items");
    let ids: Vec<&str> = feeds.iter().map(|f| f["feed_id"].as_str().unwrap()).collect();
    assert_eq!(ids, registry.iter().map(|f| f["feed_id"].as_str().unwrap()).collect::<Vec<_>>());
    let ledger: BTreeMap<String, Value> = medallion(&env, &["status", "--json", "--warehouse", warehouse, "--date", D1])
        .ok()
        .json()["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["feed_id"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    let d1: Vec<&Value> = feeds.iter().filter(|f| f["date"] == D1).collect();
    assert_eq!(d1.len(), ledger.len());
    for f in &d1 {
        let l = &ledger[f["feed_id"].as_str().unwrap()];
        assert_eq!((&f["status"], &f["partner"], &f["dataset"]), (&l["status"], &l["partner_id"], &l["dataset"]));
        if f["status"] == "landed" {
            let s = &f["silver"];
            assert_eq!(s["balanced"], true, "{f}");
            for k in ["rows_read", "valid", "rejected", "duplicate"] {
                assert_eq!(s[k], l[k], "{k} of {f}");
            }
        } else {
            assert!(f["reason"].is_string(), "a quarantined feed says why: {f}");
        }
    }
    let (by_date, _) = all_pages(&server, &format!("/v1/feeds?date={D1}&status=landed&limit=3"), "items");
    assert_eq!(by_date.len(), d1.iter().filter(|f| f["status"] == "landed").count());
    let (by_partner, _) = all_pages(&server, &format!("/v1/feeds?partner={partner}&limit=2"), "items");
    assert_eq!(by_partner.len(), feeds.iter().filter(|f| f["partner"] == partner.as_str()).count());
    let one = ok(&server, &format!("/v1/feeds/{}", ids[0]));
    assert_eq!(one, feeds[0]);
    refused(&server, "/v1/feeds/FD99999", 404);
    refused(&server, "/v1/feeds/nope", 400);
    refused(&server, "/v1/feeds?status=great", 400);

    // Rejects: a feed's quarantined rows, in pages of 3, equal its rejected count and silver.
    let f = feeds.iter().filter(|f| f["silver"]["rejected"].as_u64().unwrap_or(0) > 3).max_by_key(|f| f["silver"]["rejected"].as_u64()).expect("a feed with rejects");
    let id = f["feed_id"].as_str().unwrap();
    let (rejects, pages) = all_pages(&server, &format!("/v1/feeds/{id}/rejects?limit=3"), "items");
    assert_eq!(rejects.len() as u64, f["silver"]["rejected"].as_u64().unwrap());
    assert!(pages > 1);
    let rows = sql(&env, &format!("SELECT _row_number, reason FROM silver.quarantine WHERE _feed_id = '{id}' ORDER BY _row_number"));
    let got: Vec<(i64, String)> = rejects.iter().map(|r| (r["row_number"].as_i64().unwrap(), r["reason"].as_str().unwrap().to_string())).collect();
    let want: Vec<(i64, String)> = rows.iter().map(|r| (r["_row_number"].as_i64().unwrap(), r["reason"].as_str().unwrap().to_string())).collect();
    assert_eq!(got, want);
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for (_, r) in &got {
        *reasons.entry(r.clone()).or_default() += 1;
    }
    assert_eq!(serde_json::to_value(&reasons).unwrap(), f["silver"]["reasons"]);
    assert!(rejects.iter().all(|r| r["raw"].is_string()));
    let quiet = feeds.iter().find(|f| f["silver"]["rejected"] == 0 || f["silver"].is_null()).expect("a feed without rejects");
    assert_eq!(ok(&server, &format!("/v1/feeds/{}/rejects", quiet["feed_id"].as_str().unwrap()))["items"], Value::Array(vec![]));
}

#[test]
fn read_endpoints_sqlite() {
    let env = local();
    let wh = format!("sqlite://{}/warehouse.db", env.lake);
    read_endpoints(env, &wh);
}

#[test]
fn read_endpoints_s3() {
    let Some(env) = crate::common::s3("serve_read") else { return };
    let wh = format!("sqlite://{}/warehouse.db", env.dir.path().display());
    read_endpoints(env, &wh);
}

#[test]
fn read_endpoints_postgres() {
    let Some(pg) = postgres("serve_read") else { return };
    read_endpoints(local(), &pg.url);
}

/// Cursor pagination under concurrent writes: a listing started on day 1's catalogue is paged
/// through while the run of day 2 upserts products (held right after its products commit,
/// then let go); every SKU of the first page's snapshot appears exactly once and none of day
/// 2's new SKUs does.
#[test]
fn products_pages_hold_one_snapshot_while_a_run_writes() {
    let env = local();
    let wh = format!("sqlite://{}/warehouse.db", env.lake);
    medallion(&env, &["generate", "--partners", "3", "--days", "2", "--rows", "60", "--start-date", D1, "--out", &env.landing, "-q"]).ok();
    medallion(&env, &["run", "--date", D1, "-q", "--warehouse", &wh]).ok();
    let before = sql(&env, "SELECT partner_id, sku FROM silver.products ORDER BY partner_id, sku");
    let server = serve(&env, &wh);

    let first = ok(&server, "/v1/products?limit=5");
    let version = first["snapshot_version"].as_i64().unwrap();
    let mut items: Vec<Value> = first["items"].as_array().unwrap().clone();
    let mut next = first["next_cursor"].as_str().map(str::to_string);
    let page = |next: &mut Option<String>, items: &mut Vec<Value>| {
        let c = next.take().expect("more pages");
        let p = ok(&server, &format!("/v1/products?limit=5&cursor={c}"));
        assert_eq!(p["snapshot_version"].as_i64(), Some(version));
        items.extend(p["items"].as_array().unwrap().iter().cloned());
        *next = p["next_cursor"].as_str().map(str::to_string);
    };

    // Day 2's run, held right after silver committed its products upsert.
    let gate = env.dir.path().join("gate");
    let mut run = command(&env, &["run", "--date", D2, "-q", "--warehouse", &wh])
        .env("MEDALLION_FAULT", format!("silver.dataset#0:pause={}", gate.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = gate.with_extension("reached");
    let t0 = Instant::now();
    while !reached.exists() {
        assert!(t0.elapsed() < Duration::from_secs(300), "the run never reached its products commit");
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    let latest_now = ok(&server, "/v1/products?limit=1")["snapshot_version"].as_i64().unwrap();
    assert!(latest_now > version, "the run committed products ({latest_now} > {version})");
    // Half of the rest while the run is held, the rest while it goes on (and after).
    for _ in 0..(before.len() / 10) {
        page(&mut next, &mut items);
    }
    std::fs::write(&gate, b"go").unwrap();
    while next.is_some() {
        page(&mut next, &mut items);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = run.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let got = keys(&items);
    let unique: BTreeSet<&(String, String)> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "no SKU repeated");
    assert_eq!(got, keys(&before), "exactly the first page's snapshot");
    let after = sql(&env, "SELECT partner_id, sku FROM silver.products ORDER BY partner_id, sku");
    assert!(after.len() > before.len(), "day 2 added SKUs ({} -> {})", before.len(), after.len());
    // A new listing reads the new catalogue.
    let (fresh, _) = all_pages(&server, "/v1/products?limit=100", "items");
    assert_eq!(keys(&fresh), keys(&after));
}
