//! Gold on a real Ballista cluster: a scheduler and two executors (our binary, `medallion
//! cluster …`) on 127.0.0.1, the lake on the S3 test server. The cluster's gold must equal the
//! local engine's byte for byte (lake files) and row for row (SQLite and PostgreSQL), and an
//! executor killed in the middle of a query must still end in the same gold.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Env};

/// A scheduler and its executors, killed when dropped.
struct Cluster {
    url: String,
    scheduler: Child,
    executors: Vec<Child>,
    logs: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(port: u16, what: &str, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port} within 60 s; logs in {}:\n{}", logs.display(), read_logs(logs));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_logs(dir: &Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        out.push_str(&format!("--- {}\n{}\n", e.path().display(), tail.join("\n")));
    }
    out
}

fn spawn_logged(args: &[String], logs: &Path, name: &str, fault: Option<String>) -> Child {
    let mut c = Command::new(common::BIN);
    c.args(args).env_remove("MEDALLION_FAULT").env("RUST_LOG", "info").stdin(Stdio::null());
    if let Some(f) = fault {
        c.env("MEDALLION_FAULT", f);
    }
    c.stdout(std::fs::File::create(logs.join(format!("{name}.out"))).unwrap());
    c.stderr(std::fs::File::create(logs.join(format!("{name}.err"))).unwrap());
    c.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"))
}

impl Cluster {
    /// Starts a scheduler and two executors (one task at a time each); `fault` is the first
    /// executor's MEDALLION_FAULT.
    fn start(env: &Env, fault: Option<String>) -> Cluster {
        let logs = env.dir.path().join("cluster-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let port = free_port();
        let scheduler = spawn_logged(
            &["cluster", "scheduler", "--listen", &format!("127.0.0.1:{port}"), "--executor-timeout", "6"].map(String::from),
            &logs,
            "scheduler",
            None,
        );
        wait_listening(port, "the scheduler", &logs);
        let url = format!("df://127.0.0.1:{port}");
        let mut executors = Vec::new();
        let mut ports = Vec::new();
        for i in 0..2 {
            let (flight, grpc) = (free_port(), free_port());
            let work = env.dir.path().join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let args = [
                "cluster", "executor", "--scheduler", &url, "--listen", &format!("127.0.0.1:{flight}"), "--grpc-port", &grpc.to_string(),
                "--concurrency", "1", "--heartbeat", "1", "--work-dir", work.to_str().unwrap(),
            ]
            .map(String::from);
            executors.push(spawn_logged(&args, &logs, &format!("executor-{i}"), if i == 0 { fault.clone() } else { None }));
            ports.push((flight, grpc));
        }
        for (flight, grpc) in ports {
            wait_listening(flight, "an executor's Flight service", &logs);
            wait_listening(grpc, "an executor's gRPC service", &logs);
        }
        // Registration follows the listeners by one heartbeat.
        std::thread::sleep(Duration::from_secs(2));
        Cluster { url, scheduler, executors, logs }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.executors.iter_mut().chain(std::iter::once(&mut self.scheduler)) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("cluster logs:\n{}", read_logs(&self.logs));
        }
    }
}

/// Every gold file of the lake, by path.
fn gold_files(env: &Env) -> BTreeMap<String, Vec<u8>> {
    common::list_lake(env, "gold").into_iter().map(|p| (p.clone(), common::read_lake(env, &p).expect("listed file exists"))).collect()
}

#[track_caller]
fn assert_same_gold_files(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>, what: &str) {
    assert!(!a.is_empty(), "{what}: no gold files in the lake");
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: gold file lists differ");
    for (path, bytes) in a {
        assert!(&b[path] == bytes, "{what}: {path} differs ({} bytes locally, {} on the cluster)", bytes.len(), b[path].len());
    }
}

fn gold(env: &Env, date: &str, warehouse: &str, engine: &str) -> common::Run {
    common::medallion(env, &["--json", "run", "--date", date, "--stages", "gold", "--warehouse", warehouse, "--engine", engine])
}

const DATES: [&str; 3] = ["2026-11-18", "2026-11-19", "2026-11-20"];

#[test]
fn cluster_gold_equals_local_gold() {
    let Some(env) = common::s3("cluster_equal") else { return };
    let (Some(pg_local), Some(pg_cluster)) = (common::postgres("cluster_local"), common::postgres("cluster_remote")) else { return };
    let sqlite_local = format!("sqlite://{}", env.dir.path().join("local.db").display());
    let sqlite_cluster = format!("sqlite://{}", env.dir.path().join("cluster.db").display());
    common::medallion(&env, &["generate", "--out", &env.landing, "--partners", "3", "--days", "3", "--rows", "300"]).ok();
    let cluster = Cluster::start(&env, None);
    for date in DATES {
        common::medallion(&env, &["run", "--date", date, "--stages", "bronze,silver", "--warehouse", &sqlite_local]).ok();
        for (local, remote, kind) in [(&sqlite_local, &sqlite_cluster, "SQLite"), (&pg_local.url, &pg_cluster.url, "PostgreSQL")] {
            let l = gold(&env, date, local, "local").ok().json();
            let local_files = gold_files(&env);
            let r = gold(&env, date, remote, &cluster.url).ok().json();
            let remote_files = gold_files(&env);
            assert_same_gold_files(&local_files, &remote_files, &format!("{date} {kind}"));
            assert_eq!(l["status"], r["status"], "{date} {kind}: local {l}\ncluster {r}");
            let (lw, rw) = (common::warehouse_gold(local), common::warehouse_gold(remote));
            assert!(lw.values().any(|rows| !rows.is_empty()), "{date} {kind}: the local warehouse holds no gold");
            assert_eq!(lw, rw, "{date} {kind}: warehouse gold differs between the local engine and the cluster");
        }
    }
    // The engine is really used: a scheduler that is not there fails the stage.
    let dead = format!("df://127.0.0.1:{}", free_port());
    let r = common::medallion(&env, &["run", "--date", DATES[2], "--stages", "gold", "--warehouse", &sqlite_cluster, "--engine", &dead, "--retries", "0", "--json"]);
    assert_ne!(r.code, 0, "gold on a scheduler that does not exist succeeded:\n{}", r.stdout);
    // Unreachable is transient (a typed connection error): `run` retries it.
    let failure = r.json();
    assert_eq!(failure["transient"], true, "{failure:#}");
    assert!(failure["error"].as_str().unwrap_or("").contains("Ballista scheduler"), "{failure:#}");
}

#[test]
fn executor_killed_mid_query_still_ends_in_correct_gold() {
    let Some(env) = common::s3("cluster_kill") else { return };
    let sqlite_local = format!("sqlite://{}", env.dir.path().join("local.db").display());
    let sqlite_cluster = format!("sqlite://{}", env.dir.path().join("cluster.db").display());
    common::medallion(&env, &["generate", "--out", &env.landing, "--partners", "3", "--days", "1", "--rows", "300"]).ok();
    let date = DATES[0];
    common::medallion(&env, &["run", "--date", date, "--stages", "bronze,silver", "--warehouse", &sqlite_local]).ok();
    // The first executor stops at its first task until it is killed there.
    let gate = env.dir.path().join("task-gate");
    let mut cluster = Cluster::start(&env, Some(format!("cluster_task#0:pause={}", gate.display())));
    let mut run = common::command(&env, &["--json", "run", "--date", date, "--stages", "gold", "--warehouse", &sqlite_cluster, "--engine", &cluster.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reached = PathBuf::from(format!("{}.reached", gate.display()));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !reached.exists() {
        assert!(run.try_wait().unwrap().is_none(), "gold ended before the first executor ran a task; logs:\n{}", read_logs(&cluster.logs));
        assert!(Instant::now() < deadline, "the first executor never ran a task; logs:\n{}", read_logs(&cluster.logs));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(run.try_wait().unwrap().is_none(), "gold must still be running when the executor is killed");
    cluster.executors[0].kill().unwrap(); // SIGKILL, in the middle of the task
    cluster.executors[0].wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "gold did not finish within 300 s after the executor was killed");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = run.wait_with_output().unwrap();
    assert!(status.success(), "gold on the cluster failed after losing an executor\nstdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let remote_files = gold_files(&env);
    gold(&env, date, &sqlite_local, "local").ok();
    assert_same_gold_files(&gold_files(&env), &remote_files, "after the executor was killed");
    assert_eq!(common::warehouse_gold(&sqlite_local), common::warehouse_gold(&sqlite_cluster), "warehouse gold differs after the executor was killed");
}

/// The engine configured in medallion.toml (or MEDALLION_ENGINE) is the one every command that
/// runs gold uses, not only `gold` and `run`: a backfill with a scheduler that is not there
/// fails in gold; the environment set to `local` overrides the file and the backfill succeeds.
#[test]
fn the_configured_engine_reaches_backfill() {
    let env = common::local();
    let date = DATES[0];
    common::medallion(&env, &["generate", "--out", &env.landing, "--partners", "1", "--days", "1", "--rows", "20", "-q"]).ok();
    let dead = format!("df://127.0.0.1:{}", free_port());
    std::fs::write(env.dir.path().join("medallion.toml"), format!("engine = \"{dead}\"\n")).unwrap();
    let r = common::medallion(&env, &["backfill", "--from", date, "--to", date, "--retries", "0"]);
    assert_ne!(r.code, 0, "a backfill whose gold runs on a scheduler that is not there succeeded:\n{}", r.stdout);
    assert!(r.stderr.contains("gold"), "{}", r.stderr);
    // A scheduler that is down is a typed connection error, so it is transient (`run` retries).
    let r = common::medallion(&env, &["run", "--date", date, "--stages", "gold", "--retries", "0", "--json"]);
    let failure = r.json();
    assert_eq!((failure["transient"].as_bool(), r.code != 0), (Some(true), true), "{failure:#}");
    assert!(failure["error"].as_str().unwrap_or("").contains(&format!("Ballista scheduler {dead}")), "{failure:#}");
    let out = common::command(&env, &["backfill", "--from", date, "--to", date, "--retries", "0", "-q"]).env("MEDALLION_ENGINE", "local").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
