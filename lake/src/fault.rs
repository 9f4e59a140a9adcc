//! Fault injection for the fault-tolerance tests: `MEDALLION_FAULT=<point>[#<n>]:<action>`
//! makes the process misbehave when it reaches the named point (the n-th time, counting from
//! 0, when `#n` is given). Actions: `abort` (the process dies at once, like `kill -9`),
//! `sleep=<ms>` (gives a test time to kill the process or cut its connection), `pause=<file>`
//! (creates `<file>.reached`, then waits until `<file>` exists: a test cuts a connection at
//! exactly this point, then lets the process go on), `error` (the point reports a failure to
//! its caller). Unset in normal use: a point is then one
//! environment lookup.

/// What a matching fault asks for, returned to callers that can fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Error,
}

fn matching(point: &str, n: usize) -> Option<String> {
    let spec = std::env::var("MEDALLION_FAULT").ok()?;
    spec.split(',').find_map(|one| {
        let (target, action) = one.split_once(':')?;
        let (name, nth) = match target.split_once('#') {
            Some((name, k)) => (name, k.parse::<usize>().ok()),
            None => (target, None),
        };
        (name == point && nth.is_none_or(|k| k == n)).then(|| action.to_string())
    })
}

/// Reaching `point` for the `n`-th time (the caller's own counter, e.g. a table index).
pub async fn point(point: &str, n: usize) -> Option<Fault> {
    let action = matching(point, n)?;
    eprintln!("medallion: fault injection: {point}#{n}: {action}");
    if action == "abort" {
        std::process::abort();
    } else if let Some(ms) = action.strip_prefix("sleep=").and_then(|v| v.parse::<u64>().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        None
    } else if let Some(gate) = action.strip_prefix("pause=") {
        let _ = std::fs::write(format!("{gate}.reached"), point);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !std::path::Path::new(gate).exists() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    } else if action == "error" {
        Some(Fault::Error)
    } else {
        None
    }
}
