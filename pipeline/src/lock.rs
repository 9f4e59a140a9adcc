//! The lake lock: two medallion runs never write to the same lake at once.
//!
//! The lock is one object, `_medallion/lock.json`, created with a create-only put (an atomic
//! `O_EXCL` create on disk, a conditional `If-None-Match: *` PUT on S3/MinIO), so exactly one
//! process on any machine gets it. Its holder rewrites it every `HEARTBEAT` (a heartbeat). A
//! lock is stale when its holder is a dead process on this host, or when its heartbeat is older
//! than `STALE_AFTER` (a holder on another machine that died); a stale lock is taken over
//! with a warning that names the old holder. Released on drop of the guard (and on exit).

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use lake::Location;
use serde::{Deserialize, Serialize};

pub const HEARTBEAT: Duration = Duration::from_secs(20);
pub const STALE_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl LockInfo {
    fn describe(&self) -> String {
        format!(
            "{} (pid {} on {}, started {}, last heartbeat {})",
            self.command,
            self.pid,
            self.host,
            self.started_at.format("%Y-%m-%d %H:%M:%SZ"),
            self.heartbeat_at.format("%H:%M:%SZ")
        )
    }

    /// Why the lock is stale, if it is.
    fn stale(&self) -> Option<String> {
        if self.host == hostname() && !process_alive(self.pid) {
            return Some(format!("process {} on this host is gone", self.pid));
        }
        let age = Utc::now().signed_duration_since(self.heartbeat_at);
        (age.num_seconds() > STALE_AFTER.as_secs() as i64).then(|| format!("no heartbeat for {} s", age.num_seconds()))
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown-host".into())
}

fn process_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry: check its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
        Err(_) => false,
    }
}

pub fn lock_path() -> Path {
    Path::from("_medallion/lock.json")
}

#[derive(Debug)]
pub enum LockError {
    /// Another live run holds the lock (after waiting up to the timeout).
    Held(String),
    Store(String),
}

/// A held lock; the heartbeat runs until it is released.
pub struct LakeLock {
    lake: Location,
    heartbeat: tokio::task::JoinHandle<()>,
    released: bool,
}

fn body(info: &LockInfo) -> PutPayload {
    PutPayload::from(serde_json::to_vec_pretty(info).expect("lock serialises"))
}

async fn read(lake: &Location) -> Result<Option<(LockInfo, UpdateVersion)>, LockError> {
    let path = lock_path();
    match lake.store.get(&path).await {
        Ok(r) => {
            let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
            let bytes = r.bytes().await.map_err(|e| LockError::Store(format!("{}: {e}", lake.describe(&path))))?;
            // An unreadable lock (e.g. a torn write by a foreign tool) counts as stale.
            let info = serde_json::from_slice::<LockInfo>(&bytes).unwrap_or(LockInfo {
                host: "?".into(),
                pid: 0,
                command: "unreadable lock".into(),
                started_at: DateTime::<Utc>::UNIX_EPOCH,
                heartbeat_at: DateTime::<Utc>::UNIX_EPOCH,
            });
            Ok(Some((info, version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(LockError::Store(format!("{}: {}", lake.describe(&path), lake.classify(e)))),
    }
}

impl LakeLock {
    /// Takes the lock, waiting up to `wait` for a live holder to finish.
    pub async fn acquire(lake: &Location, command: &str, wait: Duration) -> Result<LakeLock, LockError> {
        let path = lock_path();
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        loop {
            let now = Utc::now();
            let info = LockInfo { host: hostname(), pid: std::process::id(), command: command.into(), started_at: now, heartbeat_at: now };
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match lake.store.put_opts(&path, body(&info), opts).await {
                Ok(_) => return Ok(Self::held(lake, info)),
                Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(LockError::Store(format!("{}: {}", lake.describe(&path), lake.classify(e)))),
            }
            let Some((holder, version)) = read(lake).await? else { continue };
            if let Some(why) = holder.stale() {
                tracing::warn!("taking over a stale lake lock held by {} ({why})", holder.describe());
                // Replace exactly the stale lock we read: if someone else took it over first,
                // the conditional put fails and we look again.
                let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
                match lake.store.put_opts(&path, body(&info), opts).await {
                    Ok(_) => return Ok(Self::held(lake, info)),
                    Err(object_store::Error::Precondition { .. }) | Err(object_store::Error::NotFound { .. }) => continue,
                    Err(object_store::Error::NotImplemented { .. }) => {
                        // The local file system has no conditional update: move the stale lock
                        // aside with an atomic rename (exactly one contender's rename succeeds),
                        // then race on create as usual.
                        if let Some(root) = &lake.local_root {
                            let dir = root.join("_medallion");
                            let aside = dir.join(format!("lock.stale.{}", std::process::id()));
                            if std::fs::rename(dir.join("lock.json"), &aside).is_ok() {
                                let _ = std::fs::remove_file(&aside);
                            }
                        }
                        continue;
                    }
                    Err(e) => return Err(LockError::Store(format!("{}: {}", lake.describe(&path), lake.classify(e)))),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LockError::Held(format!(
                    "the lake {} is locked by {}; it is released when that run ends (a lock whose holder died is taken over after {} s without heartbeat)",
                    lake.display,
                    holder.describe(),
                    STALE_AFTER.as_secs()
                )));
            }
            if !announced {
                tracing::info!("waiting for the lake lock held by {}", holder.describe());
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(500).min(deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(50)))).await;
        }
    }

    fn held(lake: &Location, info: LockInfo) -> LakeLock {
        let store = lake.store.clone();
        let heartbeat = tokio::spawn(async move {
            let mut info = info;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                info.heartbeat_at = Utc::now();
                if let Err(e) = store.put(&lock_path(), body(&info)).await {
                    tracing::warn!("lake lock heartbeat failed: {e}");
                }
            }
        });
        LakeLock { lake: lake.clone(), heartbeat, released: false }
    }

    pub async fn release(mut self) {
        self.heartbeat.abort();
        self.released = true;
        if let Err(e) = self.lake.store.delete(&lock_path()).await {
            tracing::warn!("could not release the lake lock {}: {e}", self.lake.describe(&lock_path()));
        }
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        if !self.released {
            self.heartbeat.abort();
            // Best effort on an error path: the next run also detects the lock as stale.
            if let Some(root) = &self.lake.local_root {
                let _ = std::fs::remove_file(root.join("_medallion").join("lock.json"));
            }
        }
    }
}
