//! Hostile input (issue 10 §1): one partner's file must never block a date, or later dates,
//! for everyone. Each scenario puts a bad file beside a good one and checks that the good one
//! goes through, the bad one is reported with a reason, and later runs still work.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const D: &str = "2026-11-20";
const D2: &str = "2026-11-21";
const GOOD: &str = "sku,name,category,price\nG-1,Lamp,home,12.50\nG-2,Desk,office,3.00\n";

fn bronze_json(env: &Env, date: &str) -> serde_json::Value {
    medallion(env, &["bronze", "--date", date, "--json"]).ok().json()
}

/// The `ignored` entries of a bronze report whose path contains `needle`.
fn ignored_reasons(r: &serde_json::Value, needle: &str) -> Vec<String> {
    r["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["path"].as_str().unwrap().contains(needle))
        .map(|i| i["reason"].as_str().unwrap().to_string())
        .collect()
}

fn landed_files(r: &serde_json::Value) -> Vec<String> {
    r["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["action"] == "landed")
        .map(|f| f["feed"]["file_name"].as_str().unwrap().to_string())
        .collect()
}

fn csv(env: &Env, q: &str) -> String {
    medallion(env, &["sql", q, "--format", "csv"]).ok().stdout
}

/// The local folder of a landing zone's date folder, created.
fn date_dir(env: &Env, partner: &str, dataset: &str, date: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(&env.landing).join(partner).join(dataset).join(date);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs bronze with a deadline: a hang (e.g. reading a FIFO) fails the test instead of
/// blocking the suite.
fn bronze_within(env: &Env, date: &str, limit: Duration) -> serde_json::Value {
    let mut child = command(env, &["bronze", "--date", date, "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bronze still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "bronze failed:\n{stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

// 1. A NUL inside a quoted value: quarantined in silver as invalid_<column>; PostgreSQL gold
// publishes, and so do later dates.
#[test]
fn nul_in_a_value_is_quarantined_and_postgres_still_publishes() {
    let env = local();
    let Some(pg) = postgres("nul") else { return };
    ingest(&env, "acme", "products", D, "p.csv", b"sku,name,category,price,brand\nA-1,\"Lamp\0 deluxe\",home,12.50,b\nA-2,Desk,office,3.00,\"x\0\"\n");
    ingest(&env, "beta", "products", D, "p.csv", GOOD.as_bytes());
    ingest(&env, "beta", "customers", D, "c.csv", b"customer_id,email,country\nC1,\"a\0@b.co\",us\nC2,a@b.co,us\n");
    ingest(&env, "beta", "orders", D, "o.csv", b"order_id,customer_id,order_date,status\nO1,C2,2026-11-20T10:00:00Z,completed\n");
    ingest(&env, "beta", "order_items", D, "i.csv", b"order_id,line_number,sku,quantity,unit_price\nO1,1,G-1,2,12.50\n");
    medallion(&env, &["run", "--date", D, "-q", "--warehouse", &pg.url]).ok();
    assert_eq!(
        csv(&env, "SELECT partner_id, dataset, reason FROM silver.quarantine ORDER BY partner_id, dataset, reason"),
        "partner_id,dataset,reason\nacme,products,invalid_brand\nacme,products,invalid_name\nbeta,customers,invalid_email\n"
    );
    let names = pg_query(&pg.url, "SELECT partner_id, sku, name FROM gold.dim_products ORDER BY partner_id, sku");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|r| !r[2].as_deref().unwrap().contains('\0')));
    // later dates run, for every partner
    ingest(&env, "acme", "products", D2, "p.csv", b"sku,name,category,price\nA-1,Lamp,home,12.50\n");
    medallion(&env, &["run", "--date", D2, "-q", "--warehouse", &pg.url]).ok();
    assert_eq!(pg_query(&pg.url, "SELECT COUNT(*) FROM gold.dim_products")[0][0].as_deref(), Some("3"));
}

// 2. A file that changes while bronze lands it, or is replaced after a crash, is abandoned
// with a reason; the next run lands its final content and silver runs.
both!(file_changed_while_landing_is_abandoned, changed_while_landing);
both!(file_replaced_after_a_crash_is_abandoned, replaced_after_crash);

fn changed_while_landing(env: Env) {
    put_landing(&env, "acme/products/2026-11-20/p.csv", GOOD.as_bytes());
    put_landing(&env, "beta/products/2026-11-20/p.csv", GOOD.as_bytes());
    let gate = env.dir.path().join("gate");
    let child = command(&env, &["bronze", "--date", D, "--json", "--concurrency", "1"])
        .env("MEDALLION_FAULT", format!("bronze.land_one#0:pause={}", gate.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = env.dir.path().join("gate.reached");
    let start = Instant::now();
    while !reached.exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "bronze never reached bronze.land_one");
        std::thread::sleep(Duration::from_millis(20));
    }
    // acme's upload goes on while bronze lands it
    let changed = "sku,name,category,price\nA-1,Lamp,home,12.50\nA-2,Desk,office,3.00\nA-3,Sofa,home,99.00\n";
    put_landing(&env, "acme/products/2026-11-20/p.csv", changed.as_bytes());
    std::fs::write(&gate, b"go").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons = ignored_reasons(&r, "acme/products");
    assert!(reasons.len() == 1 && reasons[0].starts_with("changed_while_landing"), "{r:#}");
    assert_eq!(landed_files(&r), vec!["p.csv"], "beta landed: {r:#}");
    let feeds = medallion(&env, &["feeds", "--date", D, "--json"]).ok().json();
    assert!(feeds.to_string().contains("\"abandoned\""), "{feeds:#}");
    // silver is not blocked, and the next bronze run lands the final content
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    let r = bronze_json(&env, D);
    assert_eq!(landed_files(&r), vec!["p.csv"], "{r:#}");
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    assert_eq!(csv(&env, "SELECT COUNT(*) AS n FROM silver.products WHERE partner_id = 'acme'"), "n\n3\n");
}

fn replaced_after_crash(env: Env) {
    put_landing(&env, "acme/products/2026-11-20/p.csv", GOOD.as_bytes());
    let out = command(&env, &["bronze", "--date", D, "-q"]).env("MEDALLION_FAULT", "bronze.land_one#0:abort").output().unwrap();
    assert_ne!(out.status.code(), Some(0), "the fault point aborts bronze");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fault injection"));
    // the partner re-sends a corrected file under the same name
    put_landing(&env, "acme/products/2026-11-20/p.csv", b"sku,name,category,price\nA-9,Chair,home,5.00\n");
    let r = bronze_json(&env, D);
    let reasons = ignored_reasons(&r, "acme/products");
    assert!(reasons.iter().any(|x| x.starts_with("changed_while_landing: feed FD00001")), "{r:#}");
    assert_eq!(landed_files(&r), vec!["p.csv"]);
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    assert_eq!(csv(&env, "SELECT sku FROM silver.products"), "sku\nA-9\n");
    // a re-run is quiet: nothing left to abandon, nothing new to land
    let r = bronze_json(&env, D);
    assert!(r["ignored"].as_array().unwrap().is_empty(), "{r:#}");
    assert_eq!(r["already_landed"], 1, "{r:#}");
    medallion(&env, &["run", "--date", D2, "-q"]).ok();
}

// (No partner here is named "evil": bronze::evil_partner_is_refused_on_s3_before_any_write
// lists the whole test bucket for that name.)
// 3. Header names that collide with internal names: helper columns of silver, lineage
// columns of bronze, hive partition columns of the lake.
both!(header_names_never_collide_with_internal_ones, colliding_headers);

fn colliding_headers(env: Env) {
    let hostile = "sku,_present_sku,name,_raw_sku,category,price,_reason,partner,ingest_date,_feed_id,_raw_line\n\
                   E-1,false,Lamp,zz,home,1.00,no,other,1999-01-01,FD99999,x\n\
                   E-2,true,,zz,home,1.00,no,other,1999-01-01,FD99999,x\n";
    ingest(&env, "rogue", "products", D, "p.csv", hostile.as_bytes());
    ingest(&env, "good", "products", D, "p.csv", GOOD.as_bytes());
    let r = bronze_json(&env, D);
    assert_eq!(r["landed"], 2, "{r:#}");
    let rogue = r["feeds"].as_array().unwrap().iter().find(|f| f["feed"]["partner"] == "rogue").unwrap();
    let renamed = rogue["feed"]["renamed_columns"].as_array().unwrap();
    assert_eq!(renamed.len(), 7, "{rogue:#}");
    assert!(rogue["feed"]["extra_columns"].as_array().unwrap().contains(&serde_json::json!("extra_partner")), "{rogue:#}");
    for _ in 0..2 {
        medallion(&env, &["silver", "--date", D, "-q"]).ok(); // and again: a re-run too
    }
    assert_eq!(csv(&env, "SELECT partner_id, sku FROM silver.products ORDER BY partner_id, sku"), "partner_id,sku\ngood,G-1\ngood,G-2\nrogue,E-1\n");
    assert_eq!(csv(&env, "SELECT reason FROM silver.quarantine"), "reason\nmissing_name\n");
    assert_eq!(
        csv(&env, "SELECT partner, ingest_date, sku, extra_partner FROM bronze.products ORDER BY partner, sku"),
        "partner,ingest_date,sku,extra_partner\ngood,2026-11-20,G-1,\ngood,2026-11-20,G-2,\nrogue,2026-11-20,E-1,other\nrogue,2026-11-20,E-2,other\n"
    );
    // the raw copy keeps the header as sent
    let raw = read_lake(&env, rogue["feed"]["raw_path"].as_str().unwrap()).unwrap();
    assert_eq!(raw, hostile.as_bytes());
    medallion(&env, &["gold", "--date", D, "-q"]).ok();
}

// 4. File names a partner can send: control characters, names too long for the lake, names
// that are not UTF-8. Reported, never fatal.
#[test]
fn hostile_file_names_are_reported_not_fatal() {
    use std::os::unix::ffi::OsStrExt;
    let env = local();
    let dir = date_dir(&env, "acme", "products", D);
    std::fs::write(dir.join("good.csv"), GOOD).unwrap();
    let long = format!("{}x.csv", "é".repeat(97));
    assert_eq!(long.len(), 199, "within the 200-byte rule, 597 bytes once percent-encoded");
    let ascii_long = format!("{}.csv", "a".repeat(196));
    let bad = ["new\nline.csv", "tab\there.csv", "cr\r.csv", "del\u{7f}.csv", long.as_str()];
    for (i, name) in bad.iter().chain([&ascii_long.as_str(), &"we#ird %41 n?me é.csv"]).enumerate() {
        std::fs::write(dir.join(name), format!("{GOOD}Z-{i},Other,x,1\n")).unwrap(); // distinct contents
    }
    std::fs::write(dir.join(std::ffi::OsStr::from_bytes(b"latin\xe9.csv")), GOOD).unwrap();
    let r = bronze_within(&env, D, Duration::from_secs(120));
    let mut landed = landed_files(&r);
    landed.sort();
    assert_eq!(landed, vec![ascii_long.clone(), "good.csv".to_string(), "we#ird %41 n?me é.csv".to_string()], "{r:#}");
    let ignored = r["ignored"].as_array().unwrap();
    assert_eq!(ignored.len(), bad.len() + 1, "{r:#}");
    assert!(ignored.iter().any(|i| i["reason"].as_str().unwrap().contains("not UTF-8")), "{r:#}");
    assert!(ignored.iter().any(|i| i["reason"].as_str().unwrap().contains("percent-encoded")), "{r:#}");
    assert!(ignored.iter().all(|i| !i["path"].as_str().unwrap().contains('\n')), "paths are printable: {r:#}");
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
    medallion(&env, &["bronze", "--date", D, "-q"]).ok(); // and again
    // `ingest` refuses what discovery would ignore
    let p = file(&env, &long, GOOD.as_bytes());
    let refused = medallion(&env, &["ingest", "--partner", "acme", "--dataset", "products", "--date", D, p.to_str().unwrap()]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("percent-encoded"), "{}", refused.stderr);
}

// 5. FIFOs and symbolic links in a local landing zone: never read, never followed.
#[test]
fn fifos_and_symlinks_are_not_landed() {
    use std::os::unix::fs::symlink;
    let env = local();
    let dir = date_dir(&env, "acme", "products", D);
    std::fs::write(dir.join("good.csv"), GOOD).unwrap();
    let st = std::process::Command::new("mkfifo").arg(dir.join("pipe.csv")).status().expect("mkfifo");
    assert!(st.success());
    symlink("/etc/passwd", dir.join("passwd.csv")).unwrap();
    // a CSV outside the landing zone, linked as a file and through a partner folder
    let outside = env.dir.path().join("outside");
    let outside_day = outside.join("products").join(D);
    std::fs::create_dir_all(&outside_day).unwrap();
    std::fs::write(outside_day.join("secret.csv"), "sku,name,category,price\nS-1,Secret,x,1\n").unwrap();
    symlink(outside_day.join("secret.csv"), dir.join("linked.csv")).unwrap();
    symlink(&outside, std::path::Path::new(&env.landing).join("rogue")).unwrap();
    symlink(&outside_day, date_dir(&env, "beta", "products", "x").parent().unwrap().join(D)).unwrap();
    let r = bronze_within(&env, D, Duration::from_secs(60));
    assert_eq!(landed_files(&r), vec!["good.csv"], "{r:#}");
    assert_eq!(r["feeds"].as_array().unwrap().len(), 1, "{r:#}");
    for needle in ["pipe.csv", "passwd.csv", "linked.csv", "/rogue", "beta/products/2026-11-20"] {
        let reasons = ignored_reasons(&r, needle);
        assert!(reasons.len() == 1 && reasons[0].starts_with("not_a_regular_file"), "{needle}: {r:#}");
    }
    let raw = list_lake(&env, "raw");
    assert_eq!(raw.len(), 1, "only good.csv has a raw copy: {raw:?}");
    medallion(&env, &["silver", "--date", D, "-q"]).ok();
}

// 4b. On S3, a key with a control character cannot be listed at all (object_store refuses
// the whole listing): that folder is reported, every other folder lands.
#[test]
fn s3_key_with_a_control_character_is_reported_not_fatal() {
    let Some(env) = s3("ctlkey") else { return };
    put_landing(&env, "beta/products/2026-11-20/p.csv", GOOD.as_bytes());
    put_landing(&env, "acme/customers/2026-11-20/c.csv", b"customer_id,email\nC1,a@b.co\n");
    put_landing(&env, "acme/products/2026-11-20/good.csv", GOOD.as_bytes());
    // A raw S3 PUT (object_store would percent-encode the newline).
    let (bucket, prefix) = env.landing.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the test services"));
    let url = format!("{}/{bucket}/{prefix}/acme/products/2026-11-20/new%0Aline.csv", var("AWS_ENDPOINT_URL").trim_end_matches('/'));
    let raw = move |method: &str| {
        std::process::Command::new("curl")
            .args(["-sS", "-f", "-X", method, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--data-binary", "sku,name,category,price\n", "--aws-sigv4"])
            .arg(format!("aws:amz:{}:s3", var("AWS_REGION")))
            .arg("--user")
            .arg(format!("{}:{}", var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")))
            .arg(&url)
            .status()
            .expect("curl")
            .success()
    };
    /// The key must not outlive the test: other tests list the whole bucket.
    struct Delete<F: Fn(&str) -> bool>(F);
    impl<F: Fn(&str) -> bool> Drop for Delete<F> {
        fn drop(&mut self) {
            (self.0)("DELETE");
        }
    }
    assert!(raw("PUT"), "raw S3 PUT of a key with a newline");
    let _cleanup = Delete(raw);
    let r = bronze_within(&env, D, Duration::from_secs(120));
    let mut landed: Vec<String> = r["feeds"].as_array().unwrap().iter().map(|f| format!("{}/{}", f["feed"]["partner"].as_str().unwrap(), f["feed"]["file_name"].as_str().unwrap())).collect();
    landed.sort();
    assert_eq!(landed, vec!["acme/c.csv", "beta/p.csv"], "{r:#}");
    let reasons = ignored_reasons(&r, "acme/products/2026-11-20");
    assert!(reasons.len() == 1 && reasons[0].starts_with("cannot list this folder"), "{r:#}");
}
