//! Shared helpers: run the real binary, make landing zones and lakes on local disk or S3,
//! read bronze back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use arrow::array::RecordBatch;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use lake::Location;

pub const BIN: &str = env!("CARGO_BIN_EXE_medallion");

/// Where a test's landing zone and lake live.
pub struct Env {
    pub landing: String,
    pub lake: String,
    /// Local scratch folder (input files, local landing/lake).
    pub dir: tempfile::TempDir,
}

/// A local landing zone and lake in a fresh temporary folder.
pub fn local() -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    Env { landing: dir.path().join("landing").display().to_string(), lake: dir.path().join("lake").display().to_string(), dir }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The S3 bucket of the test services. Tests that need S3 fail when it is not configured
/// (scripts/test.sh starts SeaweedFS and sets it); the only way to skip them is to say so
/// explicitly with MEDALLION_SKIP_SERVICE_TESTS=1, and then the skip is printed.
pub fn s3_bucket() -> Option<String> {
    match (std::env::var("MEDALLION_TEST_S3_BUCKET"), std::env::var("AWS_ENDPOINT_URL")) {
        (Ok(b), Ok(_)) if !b.is_empty() => Some(b),
        _ if std::env::var("MEDALLION_SKIP_SERVICE_TESTS").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: S3 test (MEDALLION_SKIP_SERVICE_TESTS=1)");
            None
        }
        _ => panic!(
            "this test needs the S3 server: run it through scripts/test.sh (which starts SeaweedFS and sets \
             AWS_ENDPOINT_URL and MEDALLION_TEST_S3_BUCKET), or set MEDALLION_SKIP_SERVICE_TESTS=1 to skip it knowingly"
        ),
    }
}

/// A landing zone and lake under a unique prefix of the test bucket.
pub fn s3(name: &str) -> Option<Env> {
    let bucket = s3_bucket()?;
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("e2e/{name}-{}-{nanos}-{n}", std::process::id());
    Some(Env {
        landing: format!("s3://{bucket}/{prefix}/landing"),
        lake: format!("s3://{bucket}/{prefix}/lake"),
        dir: tempfile::tempdir().expect("tempdir"),
    })
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "medallion failed\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// A `medallion` command with the env's lake and landing zone, run in its scratch folder (for
/// tests that need to add variables, spawn it, or look at the raw exit status).
pub fn command(env: &Env, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).env("MEDALLION_LAKE", &env.lake).env("MEDALLION_LANDING", &env.landing).env_remove("MEDALLION_LOG").current_dir(env.dir.path());
    c
}

/// Runs `medallion` with the env's lake and landing zone.
pub fn medallion(env: &Env, args: &[&str]) -> Run {
    let out: Output = command(env, args).output().expect("run medallion");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!r.stderr.contains("panicked") && !r.stderr.contains("internal error"), "medallion panicked:\n{}", r.stderr);
    r
}

/// Writes a file in the test's scratch folder and returns its path.
pub fn file(env: &Env, name: &str, content: &[u8]) -> PathBuf {
    let dir = env.dir.path().join("input").join(format!("{}", COUNTER.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Puts a file straight into the landing zone (any folder name, even ones `ingest` refuses).
pub fn put_landing(env: &Env, rel: &str, content: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loc = Location::open("landing zone", &env.landing, true).unwrap();
        loc.store.put(&object_store::path::Path::from(rel), content.to_vec().into()).await.unwrap();
    });
}

/// Pushes content through `medallion ingest` (which is how a user lands a file by hand).
pub fn ingest(env: &Env, partner: &str, dataset: &str, date: &str, name: &str, content: &[u8]) {
    let p = file(env, name, content);
    medallion(env, &["ingest", "--partner", partner, "--dataset", dataset, "--date", date, p.to_str().unwrap()]).ok();
}

/// Reads every batch of a Parquet file of the lake.
pub fn read_parquet(env: &Env, path: &str) -> Vec<RecordBatch> {
    let bytes = read_lake(env, path).expect("parquet file exists");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes)).unwrap().build().unwrap();
    reader.map(|b| b.unwrap()).collect()
}

/// A lake object's bytes, or None when absent.
pub fn read_lake(env: &Env, path: &str) -> Option<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loc = Location::open("lake", &env.lake, true).unwrap();
        match loc.store.get(&object_store::path::Path::from(path)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{e}"),
        }
    })
}

/// Every object path under a lake prefix.
pub fn list_lake(env: &Env, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let loc = Location::open("lake", &env.lake, true).unwrap();
        let p = object_store::path::Path::from(prefix);
        let metas: Vec<_> = loc.store.list(Some(&p)).try_collect().await.unwrap();
        let mut v: Vec<String> = metas.into_iter().map(|m| m.location.to_string()).collect();
        v.sort();
        v
    })
}

/// The string values of a column across batches (None for nulls).
pub fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name} in {:?}", b.schema()));
        if let Some(s) = col.as_string_opt::<i32>() {
            for i in 0..s.len() {
                out.push(s.is_valid(i).then(|| s.value(i).to_string()));
            }
        } else {
            let s = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8).unwrap();
            let s = s.as_string::<i32>();
            for i in 0..s.len() {
                out.push(s.is_valid(i).then(|| s.value(i).to_string()));
            }
        }
    }
    out
}

pub fn is_local_empty_or_missing(p: &Path) -> bool {
    !p.exists() || std::fs::read_dir(p).map(|mut d| d.next().is_none()).unwrap_or(true)
}

/// A fresh, empty PostgreSQL database on the test server, dropped when the value is dropped.
/// Fails (never skips silently) when the server is not configured; see `s3_bucket`.
pub struct PgDb {
    pub url: String,
    name: String,
    admin: String,
}

pub fn postgres(name: &str) -> Option<PgDb> {
    let base = match std::env::var("MEDALLION_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("MEDALLION_SKIP_SERVICE_TESTS").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: PostgreSQL test (MEDALLION_SKIP_SERVICE_TESTS=1)");
            return None;
        }
        _ => panic!(
            "this test needs PostgreSQL: run it through scripts/test.sh (which starts PostgreSQL and sets \
             MEDALLION_TEST_DATABASE_URL), or set MEDALLION_SKIP_SERVICE_TESTS=1 to skip it knowingly"
        ),
    };
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let db = format!("e2e_{name}_{}_{n}", std::process::id()).to_lowercase();
    let (prefix, _) = base.rsplit_once('/').expect("database URL with a database name");
    let admin = format!("{prefix}/postgres");
    pg_exec(&admin, &[&format!("DROP DATABASE IF EXISTS {db}"), &format!("CREATE DATABASE {db}")]);
    Some(PgDb { url: format!("{prefix}/{db}"), name: db, admin })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            pg_exec(&self.admin, &[&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)]);
        }
    }
}

/// Runs statements on a PostgreSQL URL.
pub fn pg_exec(url: &str, statements: &[&str]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut wh = gold::Warehouse::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
        for s in statements {
            wh.execute(s).await.unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        wh.close().await;
    });
}

/// Rows of a query as strings.
pub fn pg_query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut wh = gold::Warehouse::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = wh.query_strings(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        wh.close().await;
        rows
    })
}

/// Every gold table of a warehouse, each row normalised by the contract's column types (money
/// with two places, ratios to 12 significant digits, booleans as true/false), in grain order:
/// PostgreSQL and SQLite give the same rows for the same gold.
pub fn warehouse_gold(url: &str) -> std::collections::BTreeMap<&'static str, Vec<Vec<String>>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut wh = gold::Warehouse::connect(url).await.unwrap_or_else(|e| panic!("{e}"));
        let d = wh.dialect();
        let mut out = std::collections::BTreeMap::new();
        for t in gold::models::tables() {
            let cols: Vec<String> = t.columns.iter().map(|c| format!("CAST({} AS TEXT)", c.name)).collect();
            let sql = format!("SELECT {} FROM {} ORDER BY {}", cols.join(", "), d.table("gold", &t.name), t.grain.join(", "));
            let rows = wh.query_strings(&sql).await.unwrap_or_else(|e| panic!("{e}"));
            let mut rows: Vec<Vec<String>> = rows.into_iter().map(|r| normalise(t, r)).collect();
            rows.sort();
            out.insert(t.name.as_str(), rows);
        }
        wh.close().await;
        out
    })
}

/// The same normalisation for gold computed in memory from the lake.
pub fn lake_gold(lake: &str) -> std::collections::BTreeMap<&'static str, Vec<Vec<String>>> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let lake = lake::Location::open("lake", lake, true).unwrap();
        let mut out = std::collections::BTreeMap::new();
        for (name, batches) in gold::compute(&lake).await.unwrap() {
            let t = gold::models::table(name).unwrap();
            let mut rows = Vec::new();
            for b in &batches {
                let cols: Vec<Vec<Option<String>>> = t.columns.iter().map(|c| column(std::slice::from_ref(b), &c.name)).collect();
                for i in 0..b.num_rows() {
                    rows.push(normalise(t, cols.iter().map(|c| c[i].clone()).collect()));
                }
            }
            rows.sort();
            out.insert(name, rows);
        }
        out
    })
}

fn normalise(t: &gold::models::GoldTable, row: Vec<Option<String>>) -> Vec<String> {
    use gold::models::GoldType;
    t.columns
        .iter()
        .zip(row)
        .map(|(c, v)| match v {
            None => "NULL".to_string(),
            Some(v) => match c.ty {
                GoldType::Money => money_text(&v).unwrap_or_else(|| panic!("{}.{}: {v} is not an amount with at most 2 decimals", t.name, c.name)),
                GoldType::Ratio => format!("{:.12e}", v.parse::<f64>().unwrap()),
                GoldType::Bool => match v.as_str() {
                    "1" | "t" | "true" => "true".into(),
                    _ => "false".into(),
                },
                _ => v,
            },
        })
        .collect()
}

/// An amount as text with exactly 2 decimals, without going through a float (which would
/// lose cents above 2^53 cents): "18" and "18.0" (SQLite's REAL) and "18.00" (PostgreSQL's
/// NUMERIC) all give "18.00". `None` for anything else (more decimals, an exponent).
fn money_text(v: &str) -> Option<String> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = int.strip_prefix('-').unwrap_or(int);
    let ok = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && frac.len() <= 2 && frac.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| format!("{int}.{frac:0<2}"))
}

/// A real HTTP endpoint for webhooks: answers `first` to the first request and 200 to the
/// others, and records the bodies it accepted (200).
pub struct Receiver {
    pub port: u16,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

pub fn receiver(first: u16) -> Receiver {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
            let status = if n == 0 { first } else { 200 };
            if status == 200 {
                seen.lock().unwrap().push((path, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)));
            }
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    Receiver { port, bodies }
}
