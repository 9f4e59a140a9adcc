//! Command-line behaviour: help, usage errors, storage errors, the generator's determinism.

use crate::common::*;

#[test]
fn every_command_has_help_with_examples() {
    let env = local();
    for cmd in [vec!["--help"], vec!["generate", "--help"], vec!["bronze", "--help"], vec!["ingest", "--help"], vec!["feeds", "--help"], vec!["contract", "--help"], vec!["silver", "--help"], vec!["maintain", "--help"], vec!["sql", "--help"]] {
        let r = medallion(&env, &cmd).ok();
        assert!(r.stdout.contains("Examples:"), "{cmd:?}:\n{}", r.stdout);
    }
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let env = local();
    let r = medallion(&env, &["bronze", "--date", "2026-13-01"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid date \"2026-13-01\""), "{}", r.stderr);
    let r = medallion(&env, &["bronze", "--date", "2026-11-20", "--landing", "/nonexistent/landing"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("/nonexistent/landing") && r.stderr.contains("no such folder"), "{}", r.stderr);
    std::fs::create_dir_all(&env.landing).unwrap();
    let r = medallion(&env, &["bronze", "--date", "2026-11-20", "--lake", "gs://x"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unsupported scheme"), "{}", r.stderr);
}

#[test]
fn generator_is_deterministic() {
    let a = local();
    let b = local();
    let args = ["generate", "--partners", "2", "--days", "2", "--rows", "30", "--seed", "7", "-q"];
    medallion(&a, &args).ok();
    medallion(&b, &args).ok();
    let files = |env: &Env| {
        let mut v: Vec<(String, Vec<u8>)> = walk(std::path::Path::new(&env.landing))
            .into_iter()
            .map(|p| (p.strip_prefix(&env.landing).unwrap().display().to_string(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let fa = files(&a);
    assert!(fa.len() >= 20, "{}", fa.len());
    assert!(fa == files(&b), "same options, same bytes");
    let c = local();
    medallion(&c, &["generate", "--partners", "2", "--days", "2", "--rows", "30", "--seed", "8", "-q"]).ok();
    assert!(fa != files(&c), "another seed gives other data");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn unreachable_s3_endpoint_is_named() {
    let env = local();
    let out = std::process::Command::new(BIN)
        .args(["bronze", "--date", "2026-11-20", "--landing", "s3://nobucket/landing", "--lake", "s3://nobucket/lake"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("MEDALLION_S3_MAX_RETRIES", "0")
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:1") && stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn missing_bucket_is_named() {
    let Some(_bucket) = s3_bucket() else { return };
    let env = local();
    let r = std::process::Command::new(BIN)
        .args(["bronze", "--date", "2026-11-20", "--landing", "s3://medallion-no-such-bucket/landing"])
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("bucket \"medallion-no-such-bucket\" does not exist"), "{stderr}");
}

#[test]
fn feed_docs_are_generated_from_the_contract() {
    let env = local();
    let r = medallion(&env, &["contract"]).ok();
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/feeds.md")).unwrap();
    assert!(docs == r.stdout, "docs/feeds.md is stale: regenerate it with `medallion contract > docs/feeds.md`");
    assert!(r.stdout.contains("| `price` | yes | money | ≥ 0 |"), "{}", r.stdout);
}

#[test]
fn medallion_toml_sets_defaults_below_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("medallion.toml"), "lake = \"from-toml-lake\"\nlanding = \"from-toml-landing\"\nretries = 1\n").unwrap();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut c = std::process::Command::new(BIN);
        c.args(args).current_dir(dir.path()).env_remove("MEDALLION_LAKE").env_remove("MEDALLION_LANDING").env_remove("MEDALLION_CONFIG");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    assert!(run(&["generate", "--partners", "1", "--days", "1", "--rows", "5", "-q"], &[]).status.success());
    assert!(dir.path().join("from-toml-landing").is_dir(), "the file's landing zone is used");
    assert!(run(&["bronze", "--date", "2026-11-18", "-q"], &[]).status.success());
    assert!(dir.path().join("from-toml-lake/bronze").is_dir(), "the file's lake is used");
    // The environment wins over the file, a flag over both.
    assert!(run(&["bronze", "--date", "2026-11-18", "-q"], &[("MEDALLION_LAKE", "env-lake")]).status.success());
    assert!(dir.path().join("env-lake/bronze").is_dir());
    assert!(run(&["bronze", "--date", "2026-11-18", "-q", "--lake", "flag-lake"], &[("MEDALLION_LAKE", "env-lake")]).status.success());
    assert!(dir.path().join("flag-lake/bronze").is_dir());
    // A typo is an error, not silently ignored.
    std::fs::write(dir.path().join("medallion.toml"), "lak = \"x\"\n").unwrap();
    let out = run(&["feeds"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting \"lak\""), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Output into a pipe whose reader has gone (`medallion … | head`) ends the command quietly
/// with 141 (128 + SIGPIPE), as Unix tools do, instead of a panic; the run itself completed.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let env = local();
    medallion(&env, &["generate", "--partners", "1", "--days", "1", "--rows", "20", "--out", &env.landing, "-q"]).ok();
    let query = "SELECT * FROM silver.orders";
    for args in [vec!["contract"], vec!["run", "--date", "2026-11-18", "--json", "-q"], vec!["sql", query, "--format", "csv"], vec!["sql", query]] {
        let mut child = command(&env, &args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("internal error") && !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let status = medallion(&env, &["status", "--date", "2026-11-18", "--json"]).ok().json();
    assert_eq!(status["runs"][0]["status"], "completed", "{status:#}");
}
