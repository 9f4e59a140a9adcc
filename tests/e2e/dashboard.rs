//! The dashboard over HTTP (the browser test is scripts/browser_test.sh), and `serve --watch`
//! with S3 event notifications.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::server::{request, Body, Server, INGEST_KEY, OPERATOR_KEY, READER_KEY};

fn gen(env: &Env, partners: &str, days: &str, start: &str, out: &str) {
    medallion(env, &["generate", "--partners", partners, "--days", days, "--rows", "20", "--start-date", start, "--out", out, "-q"]).ok();
}

/// Pages need a reader key (header or the cookie `/login` sets); the overview shows the runs,
/// four charts and the products diff; a date shows each feed's reconciliation, balanced; a
/// value a partner sent is HTML-escaped.
#[test]
fn dashboard_pages_show_runs_reconciliation_and_charts() {
    let env = local();
    let today = chrono::Utc::now().date_naive();
    let start = (today - chrono::Days::new(2)).format("%Y-%m-%d").to_string();
    gen(&env, "2", "2", &start, &env.landing);
    let d = (today - chrono::Days::new(1)).format("%Y-%m-%d").to_string();
    // Written straight to disk: object_store would percent-encode the name.
    let evil = std::path::Path::new(&env.landing).join(format!("acme/orders/{d}/x<script>alert(1)<x>.csv"));
    std::fs::write(&evil, b"order_id,customer_id,order_date\n").unwrap();
    for day in [&start, &d] {
        medallion(&env, &["run", "--date", day, "-q"]).ok();
    }
    let s = Server::start(&env, &[], &[]);
    let anonymous = s.get("/", None);
    assert_eq!((anonymous.status, anonymous.header("location")), (303, Some("/login")));
    assert_eq!(s.get("/", Some(INGEST_KEY)).status, 303, "an ingest key may not read");

    let started = Instant::now();
    let page = s.get("/?days=30", Some(READER_KEY));
    let took = started.elapsed();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let html = page.text();
    assert_eq!(html.matches("<svg").count(), 4, "four charts");
    assert!(!html.contains("no data yet"), "every chart has data on a run lake");
    assert!(html.contains(&format!("href=\"/dashboard/date/{d}\"")) && html.contains("badge completed"), "the runs timeline");
    assert!(html.contains("Products diff") && html.contains("acme"));
    assert!(took < Duration::from_secs(5), "the overview took {took:?}");

    let date = s.get(&format!("/dashboard/date/{d}"), Some(OPERATOR_KEY)).text();
    assert!(date.contains("class=\"reconciliation\"") && date.contains("<span class=\"ok\">✓</span>"), "reconciliation shown");
    assert!(!date.contains("<span class=\"bad\">"), "every feed balances");
    assert!(date.contains("quarantined") && date.contains("missing_column"), "quarantined files with their reason");
    assert!(!date.contains("<script>") && date.contains("x&lt;script&gt;alert(1)&lt;x&gt;.csv"), "partner values are escaped");
    assert_eq!(s.get("/dashboard/date/not-a-date", Some(READER_KEY)).status, 400);

    // Signing in with a form sets the cookie the pages accept.
    let bad = request(&s.addr, "POST", "/login", None, &[("Content-Type", "application/x-www-form-urlencoded")], Body::Whole(format!("key={INGEST_KEY}").into_bytes()));
    assert_eq!(bad.status, 401);
    let ok = request(&s.addr, "POST", "/login", None, &[("Content-Type", "application/x-www-form-urlencoded")], Body::Whole(format!("key={READER_KEY}").into_bytes()));
    assert_eq!(ok.status, 303);
    let cookie = ok.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    assert!(ok.header("set-cookie").unwrap().contains("HttpOnly") && ok.header("set-cookie").unwrap().contains("SameSite=Strict"));
    let with_cookie = request(&s.addr, "GET", "/", None, &[("Cookie", &cookie)], Body::None);
    assert_eq!(with_cookie.status, 200);
    assert!(!s.stderr().contains(READER_KEY), "keys never reach the log");
}

/// `serve --watch`: files arrive, an S3 event notification (as MinIO posts it) makes the
/// watcher look at once — the date runs long before the next poll — and the run is in the
/// ledger like any other; SIGTERM stops the service and its watcher cleanly.
#[test]
fn serve_watch_runs_a_date_on_an_s3_event() {
    let Some(env) = s3("serve-watch") else { return };
    let d = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).format("%Y-%m-%d").to_string();
    let staging = env.dir.path().join("staging");
    gen(&env, "1", "1", &d, staging.to_str().unwrap());
    let conf = env.dir.path().join("conf").join("medallion.toml");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(&conf, "[watch]\npoll_seconds = 3600\n[watch.partners.acme]\ndatasets = [\"orders\", \"order_items\"]\n").unwrap();
    let wh = format!("sqlite://{}/wh.db", env.dir.path().display());
    let s = Server::start(&env, &["--watch", "--warehouse", &wh], &[("MEDALLION_CONFIG", conf.to_str().unwrap())]);
    // The first poll found nothing; now the files arrive.
    std::thread::sleep(Duration::from_secs(1));
    let mut stack = vec![staging.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                put_landing(&env, e.path().strip_prefix(&staging).unwrap().to_str().unwrap(), &std::fs::read(e.path()).unwrap());
            }
        }
    }
    let event = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("bucket/acme/orders/{d}/orders_{d}.csv"),
        "Records": [{ "eventName": "s3:ObjectCreated:Put", "s3": { "bucket": { "name": "b" }, "object": { "key": format!("acme/orders/{d}/orders+{d}.csv") } } }]
    });
    assert_eq!(s.post_json("/v1/events/s3", None, &event).status, 401);
    assert_eq!(s.post_json("/v1/events/s3", Some(READER_KEY), &event).status, 403);
    assert_eq!(s.post_json("/v1/events/s3", Some(INGEST_KEY), &serde_json::json!({ "Records": [] })).status, 400);
    let r = s.post_json("/v1/events/s3", Some(INGEST_KEY), &event);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["keys"][0], format!("acme/orders/{d}/orders {d}.csv"), "keys are decoded");
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let runs = s.get(&format!("/v1/runs?date={d}"), Some(READER_KEY)).json();
        if let Some(r) = runs["runs"].as_array().and_then(|a| a.iter().find(|r| r["kind"] == "watch" && r["status"] == "completed")) {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no watch run after the event\n{}", s.stderr());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(run["run_date"], d, "{run}");
    s.terminate();
    let mut s = s;
    let status = s.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
    assert!(s.stderr().contains("the watcher polls now") || s.stderr().contains("S3 event notification"), "{}", s.stderr());
}
