//! `medallion serve` over real HTTP against the real binary: upload -> run -> poll -> the
//! ledger agrees (local lake + SQLite, and SeaweedFS + PostgreSQL), auth by role, refused
//! uploads leaving nothing behind, cancelling queued and running runs, SIGTERM during a run,
//! queued runs surviving a restart, the OpenAPI document, the docs page and the metrics.

pub mod server;

use std::time::{Duration, Instant};

use crate::common::*;
use server::{request, Body, Server, INGEST_KEY, OPERATOR_KEY, READER_KEY};

const D: &str = "2026-11-18";

/// Every file of the env's landing zone (staging objects included), sorted.
fn landing_files(env: &Env) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt as _;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loc = lake::Location::open("landing zone", &env.landing, true).unwrap();
        let _ = loc.store.head(&object_store::path::Path::from("x")).await;
        let mut v: Vec<String> = loc.store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        v.sort();
        v
    })
}

/// Generated clean feeds in a scratch folder: (partner, dataset, date, file name, content).
fn generated(env: &Env, partners: &str) -> Vec<(String, String, String, String, Vec<u8>)> {
    let out = env.dir.path().join("generated");
    medallion(env, &["generate", "--partners", partners, "--days", "1", "--rows", "20", "--start-date", D, "--defect-rate", "0", "--out", out.to_str().unwrap(), "-q"]).ok();
    let mut files = Vec::new();
    for p in std::fs::read_dir(&out).unwrap() {
        let p = p.unwrap().path();
        for ds in std::fs::read_dir(&p).unwrap() {
            let ds = ds.unwrap().path();
            for f in std::fs::read_dir(ds.join(D)).unwrap() {
                let f = f.unwrap().path();
                let name = |x: &std::path::Path| x.file_name().unwrap().to_str().unwrap().to_string();
                files.push((name(&p), name(&ds), D.to_string(), name(&f), std::fs::read(&f).unwrap()));
            }
        }
    }
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    files
}

both!(upload_run_poll_and_the_ledger_agrees, upload_run_poll);

fn upload_run_poll(env: Env) {
    // Local: the SQLite default in the lake; S3: PostgreSQL.
    let pg = if env.lake.starts_with("s3://") { postgres("serve") } else { None };
    if env.lake.starts_with("s3://") && pg.is_none() {
        return;
    }
    let wh: Vec<&str> = pg.as_ref().map(|p| vec!["--warehouse", p.url.as_str()]).unwrap_or_default();
    let srv = Server::start(&env, &wh, &[]);
    let files = generated(&env, "1");
    let mut run_id = None;
    for (i, (partner, dataset, date, name, content)) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let q = format!("partner={partner}&dataset={dataset}&date={date}&name={name}{}", if last { "&run=true" } else { "" });
        let r = srv.upload(&q, Some(INGEST_KEY), content);
        assert_eq!(r.status, 201, "{}", r.text());
        let b = r.json();
        assert_eq!(b["status"], "received");
        assert_eq!(b["bytes"].as_u64(), Some(content.len() as u64));
        assert!(b["path"].as_str().unwrap().ends_with(&format!("{partner}/{dataset}/{date}/{name}")), "{b}");
        if last {
            run_id = Some(b["run"]["run_id"].as_str().expect("run=true queues a run").to_string());
            assert_eq!(b["run"]["status"], "queued");
        }
    }
    // The same content again: 200, already received, nothing written.
    let (p, ds, d, n, c) = &files[0];
    let again = srv.upload(&format!("partner={p}&dataset={ds}&date={d}&name={n}"), Some(INGEST_KEY), c);
    assert_eq!((again.status, again.json()["status"].as_str()), (200, Some("already_received")), "{}", again.text());

    let id = run_id.unwrap();
    let run = srv.wait_run(&id, Duration::from_secs(240));
    assert_eq!(run["status"], "completed", "{run:#}\n{}", srv.stderr());
    let jobs: Vec<(&str, &str)> = run["jobs"].as_array().unwrap().iter().map(|j| (j["stage"].as_str().unwrap(), j["status"].as_str().unwrap())).collect();
    assert_eq!(jobs, [("bronze", "completed"), ("silver", "completed"), ("gold", "completed")]);
    assert!(run["jobs"][0]["summary"]["landed"].as_u64().unwrap() as usize == files.len(), "{run:#}");

    // The ledger agrees: `medallion status` sees the same run; the list endpoints find it.
    let mut args = vec!["status", "--json", "--date", D];
    args.extend(&wh);
    let st = medallion(&env, &args).ok().json();
    assert_eq!((st["runs"][0]["run_id"].as_str(), st["runs"][0]["status"].as_str()), (Some(id.as_str()), Some("completed")), "{st:#}");
    for q in [format!("date={D}"), "status=completed".to_string(), format!("date={D}&status=completed&limit=5")] {
        let list = srv.get(&format!("/v1/runs?{q}"), Some(READER_KEY)).json();
        assert!(list["runs"].as_array().unwrap().iter().any(|r| r["run_id"] == id.as_str()), "{q}: {list:#}");
    }
    assert!(srv.get("/v1/runs?status=queued", Some(READER_KEY)).json()["runs"].as_array().unwrap().is_empty());
    // A CLI run appears too.
    let mut args = vec!["run", "--date", D, "--stages", "gold", "-q"];
    args.extend(&wh);
    let _ = medallion(&env, &args);
    assert_eq!(srv.get(&format!("/v1/runs?date={D}"), Some(READER_KEY)).json()["runs"].as_array().unwrap().len(), 2);

    // /metrics: Prometheus text that counts the run and its rows.
    let m = srv.get("/metrics", Some(READER_KEY));
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    let metrics = parse_prometheus(&m.text());
    assert_eq!(metrics.get("medallion_server_runs_total{status=\"completed\"}"), Some(&1.0), "{}", m.text());
    let landed: f64 = metrics.iter().filter(|(k, _)| k.starts_with("medallion_rows_total{") && k.contains("outcome=\"landed\"")).map(|(_, v)| v).sum();
    assert!(landed > 0.0, "{}", m.text());
    assert!(metrics.keys().any(|k| k.starts_with("medallion_stage_duration_seconds_count{stage=\"silver\"}")), "{}", m.text());
    assert!(metrics.keys().any(|k| k.starts_with("medallion_last_success_timestamp_seconds{stage=\"gold\"}")), "{}", m.text());
    assert!(metrics.keys().any(|k| k.starts_with("medallion_feed_lag_seconds{")), "{}", m.text());
    assert_eq!(metrics.get("medallion_uploads_total{result=\"already_received\"}"), Some(&1.0));
    assert_eq!(srv.get("/readyz", None).status, 200);
    drop(srv);
}

/// Parses Prometheus text: `series -> value`; panics on a malformed line or a missing EOF.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("malformed value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(series[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{line:?}");
        out.insert(series.to_string(), v);
    }
    out
}

#[test]
fn openapi_lists_every_operation_and_docs_render() {
    let env = local();
    let srv = Server::start(&env, &[], &[]);
    let r = srv.get("/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let want = [("/v1/feeds", "post"), ("/v1/runs", "post"), ("/v1/runs", "get"), ("/v1/runs/{id}", "get"), ("/v1/runs/{id}", "delete"), ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get")];
    for (path, method) in want {
        let op = &doc["paths"][path][method];
        assert!(op["responses"].is_object(), "{method} {path} missing from {doc:#}");
    }
    for schema in ["Problem", "RunRecord", "JobRecord", "RunRequest", "FeedReceived"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "schema {schema}");
    }
    let html = srv.get("/docs", None);
    assert_eq!(html.status, 200);
    assert!(html.header("content-type").unwrap().starts_with("text/html"));
    let page = html.text();
    assert!(page.contains("/v1/runs/{id}") && page.contains("schema-RunRecord") && !page.contains("<script"), "{page}");
}

#[test]
fn keys_and_roles() {
    let env = local();
    // No keys at all: refused unless --insecure-no-auth.
    let out = command(&env, &["serve", "--listen", "127.0.0.1:0"]).env_remove("MEDALLION_API_KEYS").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-no-auth"));

    let srv = Server::start(&env, &[], &[]);
    let none = srv.get("/v1/runs", None);
    none.problem(401);
    assert!(none.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(srv.get("/v1/runs", Some("not-a-key-at-all-0000")).problem(401)["exit_class"], "usage");
    srv.get("/v1/runs", Some(INGEST_KEY)).problem(403);
    srv.post_json("/v1/runs", Some(READER_KEY), &serde_json::json!({ "date": D })).problem(403);
    srv.get("/metrics", Some(INGEST_KEY)).problem(403);
    srv.upload(&format!("partner=acme&dataset=orders&date={D}"), Some(READER_KEY), b"order_id\n1\n").problem(403);
    srv.upload(&format!("partner=acme&dataset=orders&date={D}"), Some(OPERATOR_KEY), b"order_id\n1\n").problem(403);
    assert_eq!(srv.get("/v1/runs", Some(READER_KEY)).status, 200);
    assert_eq!(srv.get("/v1/runs", Some(OPERATOR_KEY)).status, 200, "operator may read");
    let x = request(&srv.addr, "GET", "/v1/runs", None, &[("X-API-Key", READER_KEY)], Body::None);
    assert_eq!(x.status, 200, "{}", x.text());
    assert_eq!(srv.get("/healthz", None).status, 200);
    assert!(landing_files(&env).is_empty(), "refused uploads landed nothing");

    // Malformed requests are problems, never crashes.
    srv.post_json("/v1/runs", Some(OPERATOR_KEY), &serde_json::json!({ "date": "2026-02-30" })).problem(400);
    srv.post_json("/v1/runs", Some(OPERATOR_KEY), &serde_json::json!({ "date": D, "stages": ["platinum"] })).problem(422);
    assert!(srv.post_json("/v1/runs", Some(OPERATOR_KEY), &serde_json::json!({ "dat": D })).problem(422)["detail"].as_str().unwrap().contains("dat"));
    request(&srv.addr, "POST", "/v1/runs", Some(OPERATOR_KEY), &[("Content-Type", "application/json")], Body::Whole(b"{not json".to_vec())).problem(400);
    srv.get("/v1/runs?status=sleeping", Some(READER_KEY)).problem(400);
    srv.get("/v1/runs?limit=-3", Some(READER_KEY)).problem(400);
    srv.get("/v1/runs/nope", Some(READER_KEY)).problem(404);
    srv.get("/no/such/endpoint", None).problem(404);
    request(&srv.addr, "PUT", "/v1/runs", Some(OPERATOR_KEY), &[], Body::None).problem(405);

    // Access log lines, and no key anywhere in the server's output.
    let log = srv.stderr();
    assert!(log.contains("path=/v1/runs") && log.contains("status=401") && log.contains("status=200"), "{log}");
    for k in [INGEST_KEY, OPERATOR_KEY, READER_KEY] {
        assert!(!log.contains(k), "a key leaked into the log:\n{log}");
    }
}

both!(refused_uploads_land_nothing, refused_uploads);

fn refused_uploads(env: Env) {
    let srv = Server::start(&env, &["--max-upload-bytes", "1000", "--request-timeout", "2"], &[]);
    let q = format!("partner=acme&dataset=orders&date={D}");
    let big = request(&srv.addr, "POST", &format!("/v1/feeds?{q}"), Some(INGEST_KEY), &[], Body::Declared { length: 5000, send: vec![b'x'; 100] });
    assert!(big.problem(413)["detail"].as_str().unwrap().contains("1000 bytes"));
    let chunked = request(&srv.addr, "POST", &format!("/v1/feeds?{q}&name=big.csv"), Some(INGEST_KEY), &[], Body::Chunked { chunk: vec![b'y'; 300], n: 10 });
    chunked.problem(413);
    // An upload the client aborts half-way, and one that stalls past the request timeout.
    let aborted = request(&srv.addr, "POST", &format!("/v1/feeds?{q}&name=aborted.csv"), Some(INGEST_KEY), &[], Body::Declared { length: 900, send: vec![b'z'; 100] });
    aborted.problem(400);
    let stalled = request(&srv.addr, "POST", &format!("/v1/feeds?{q}&name=stalled.csv"), Some(INGEST_KEY), &[], Body::Stalled { length: 900, send: vec![b'z'; 100] });
    assert!(stalled.problem(408)["detail"].as_str().unwrap().contains("stalled"), "{}", stalled.text());
    for bad in [
        format!("partner=Bad%20Partner&dataset=orders&date={D}"),
        format!("partner=acme&dataset=nope&date={D}"),
        "partner=acme&dataset=orders&date=2026-13-45".to_string(),
        format!("partner=acme&dataset=orders&date={D}&name=..%2Fescape.csv"),
        format!("partner=acme&dataset=orders&date={D}&name=notes.txt"),
        "partner=acme&dataset=orders".to_string(),
    ] {
        srv.upload(&bad, Some(INGEST_KEY), b"order_id\n1\n").problem(400);
    }
    assert!(landing_files(&env).is_empty(), "{:?}", landing_files(&env));

    // A different file under a name already there is refused; the same content is not.
    assert_eq!(srv.upload(&format!("{q}&name=a.csv"), Some(INGEST_KEY), b"order_id\n1\n").status, 201);
    srv.upload(&format!("{q}&name=a.csv"), Some(INGEST_KEY), b"order_id\n2\n").problem(409);
    assert_eq!(srv.upload(&format!("{q}&name=a.csv"), Some(INGEST_KEY), b"order_id\n1\n").status, 200);
    // Without a name: named by content, so the same content is recognised.
    let first = srv.upload(&q, Some(INGEST_KEY), b"order_id\n3\n");
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(srv.upload(&q, Some(INGEST_KEY), b"order_id\n3\n").status, 200);
    let files = landing_files(&env);
    let named = format!("acme/orders/{D}/{}", first.json()["path"].as_str().unwrap().rsplit('/').next().unwrap());
    assert_eq!(files, vec![format!("acme/orders/{D}/a.csv"), named], "only the accepted feeds, no staging object");
    let m = parse_prometheus(&srv.get("/metrics", Some(READER_KEY)).text());
    assert_eq!(m.get("medallion_uploads_total{result=\"refused\"}"), Some(&10.0), "10 refused in the handler (a missing parameter is refused before it)");
}

/// A server whose runs pause before silver until `gate` exists.
fn paused_server(env: &Env, gate: &std::path::Path) -> Server {
    let fault = format!("stage.silver:pause={}", gate.display());
    Server::start(env, &[], &[("MEDALLION_FAULT", fault.as_str())])
}

fn wait_for(path: &std::path::Path, srv: &Server) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "{} never appeared\n{}", path.display(), srv.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queue_run(srv: &Server) -> String {
    let r = srv.post_json("/v1/runs", Some(OPERATOR_KEY), &serde_json::json!({ "date": D }));
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(r.header("location").unwrap().starts_with("/v1/runs/"));
    r.json()["run_id"].as_str().unwrap().to_string()
}

fn stages(run: &serde_json::Value) -> Vec<(String, String)> {
    run["jobs"].as_array().unwrap().iter().map(|j| (j["stage"].as_str().unwrap().to_string(), j["status"].as_str().unwrap().to_string())).collect()
}

#[test]
fn cancel_a_queued_and_a_running_run() {
    let env = local();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "20", "--start-date", D, "--out", &env.landing, "-q"]).ok();
    let gate = env.dir.path().join("gate");
    let srv = paused_server(&env, &gate);
    let running = queue_run(&srv);
    wait_for(&env.dir.path().join("gate.reached"), &srv);
    let queued = queue_run(&srv);
    assert_eq!(srv.get(&format!("/v1/runs/{queued}"), Some(READER_KEY)).json()["status"], "queued");

    let c = srv.delete(&format!("/v1/runs/{queued}"), Some(OPERATOR_KEY));
    assert_eq!((c.status, c.json()["status"].as_str()), (200, Some("cancelled")), "{}", c.text());
    let q = srv.get(&format!("/v1/runs/{queued}"), Some(READER_KEY)).json();
    assert_eq!(q["status"], "cancelled");
    assert!(stages(&q).iter().all(|(_, s)| s == "cancelled"), "{q:#}");
    srv.delete(&format!("/v1/runs/{queued}"), Some(OPERATOR_KEY)).problem(409);
    srv.delete(&format!("/v1/runs/{running}"), Some(READER_KEY)).problem(403);

    let c = srv.delete(&format!("/v1/runs/{running}"), Some(OPERATOR_KEY));
    assert_eq!((c.status, c.json()["status"].as_str()), (202, Some("cancelling")), "{}", c.text());
    std::fs::write(&gate, b"go").unwrap();
    let run = srv.wait_run(&running, Duration::from_secs(120));
    assert_eq!(run["status"], "cancelled", "{run:#}");
    let want: Vec<(String, String)> = [("bronze", "completed"), ("silver", "completed"), ("gold", "cancelled")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(stages(&run), want, "the running stage finished, the next never started");
    assert!(run["error"].as_str().unwrap().contains("before the gold stage"), "{run:#}");
    srv.delete(&format!("/v1/runs/{running}"), Some(OPERATOR_KEY)).problem(409);
    srv.delete("/v1/runs/no-such-run", Some(OPERATOR_KEY)).problem(404);
    let m = parse_prometheus(&srv.get("/metrics", Some(READER_KEY)).text());
    assert_eq!(m.get("medallion_server_runs_total{status=\"cancelled\"}"), Some(&1.0), "the queued one never ran");
}

#[test]
fn sigterm_finishes_the_stage_exits_0_and_queued_runs_survive_a_restart() {
    let env = local();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "20", "--start-date", D, "--out", &env.landing, "-q"]).ok();
    let gate = env.dir.path().join("gate");
    let mut srv = paused_server(&env, &gate);
    let running = queue_run(&srv);
    wait_for(&env.dir.path().join("gate.reached"), &srv);
    let queued = queue_run(&srv);
    srv.terminate();
    // New connections are refused once the server stops accepting.
    let start = Instant::now();
    while std::net::TcpStream::connect(&srv.addr).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(10), "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&gate, b"go").unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = srv.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the server did not exit\n{}", srv.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0), "{}", srv.stderr());
    let st = medallion(&env, &["status", "--json", "--date", D]).ok().json();
    let by_id = |id: &str| st["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == id).unwrap_or_else(|| panic!("{id} in {st:#}")).clone();
    let r = by_id(&running);
    assert_eq!(r["status"], "cancelled", "{r:#}");
    assert!(r["error"].as_str().unwrap().contains("shut down"), "{r:#}");
    let jobs: Vec<(&str, &str)> = r["jobs"].as_array().unwrap().iter().map(|j| (j["stage"].as_str().unwrap(), j["status"].as_str().unwrap())).collect();
    assert_eq!(jobs, [("bronze", "completed"), ("silver", "completed"), ("gold", "cancelled")]);
    assert_eq!(by_id(&queued)["status"], "queued", "a queued run stays queued across a shutdown");

    // The next server picks it up.
    let srv = Server::start(&env, &[], &[]);
    let run = srv.wait_run(&queued, Duration::from_secs(240));
    assert_eq!(run["status"], "completed", "{run:#}\n{}", srv.stderr());
}

#[test]
fn schedule_inside_the_service_queues_and_runs_the_due_date() {
    let env = local();
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1)).to_string();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "20", "--start-date", &yesterday, "--out", &env.landing, "-q"]).ok();
    let srv = Server::start(&env, &["--schedule", "0 1 * * *", "--catch-up-days", "1"], &[]);
    let start = Instant::now();
    let run = loop {
        let runs = srv.get(&format!("/v1/runs?date={yesterday}"), Some(READER_KEY)).json();
        if let Some(r) = runs["runs"].as_array().unwrap().first() {
            if !matches!(r["status"].as_str(), Some("queued" | "running")) {
                break r.clone();
            }
        }
        assert!(start.elapsed() < Duration::from_secs(240), "no scheduled run finished: {runs:#}\n{}", srv.stderr());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!((run["kind"].as_str(), run["status"].as_str()), (Some("schedule"), Some("completed")), "{run:#}");
    // Done dates are not queued again.
    assert_eq!(srv.get(&format!("/v1/runs?date={yesterday}"), Some(READER_KEY)).json()["runs"].as_array().unwrap().len(), 1);
}

/// A warehouse password never reaches a response or the log, even when the warehouse goes
/// away under the server (readiness answers 503, the endpoints a 5xx problem with the URL
/// redacted and the CLI's class for the error).
#[test]
fn warehouse_password_never_leaks() {
    let env = local();
    let Some(pg) = postgres("serve_secret") else { return };
    let (scheme, rest) = pg.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    let url = format!("{scheme}://{}:Sekr1tServe@{host}", user.split(':').next().unwrap());
    let srv = Server::start(&env, &["--warehouse", &url], &[]);
    assert_eq!(srv.get("/readyz", None).status, 200);
    drop(pg); // DROP DATABASE … WITH (FORCE): the server's connections are cut.
    let ready = srv.get("/readyz", None);
    assert_eq!(ready.status, 503, "{}", ready.text());
    let mut texts = vec![ready.text()];
    for r in [
        srv.get("/v1/runs", Some(READER_KEY)),
        srv.get("/metrics", Some(READER_KEY)),
        srv.post_json("/v1/runs", Some(OPERATOR_KEY), &serde_json::json!({ "date": D })),
    ] {
        assert!(r.status >= 500, "{}", r.text());
        let p = r.problem(r.status);
        assert!(p["detail"].as_str().unwrap().contains("does not exist"), "{p}");
        texts.push(r.text());
    }
    texts.push(srv.stderr());
    for t in &texts {
        assert!(!t.contains("Sekr1tServe"), "the warehouse password leaked:\n{t}");
    }
    assert!(texts.iter().any(|t| t.contains("***")), "the URL is shown redacted: {texts:#?}");
}
