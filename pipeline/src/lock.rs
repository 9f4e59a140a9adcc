//! The lake lock: two medallion runs never write to the same lake at once.
//!
//! The lock is one object, `_medallion/lock.json`, created with a create-only put (an atomic
//! `O_EXCL` create on disk, a conditional `If-None-Match: *` PUT on S3/MinIO), so exactly one
//! process on any machine gets it. Its holder rewrites it every `HEARTBEAT` (a heartbeat). A
//! lock is stale when its holder is a dead process on this host, or when its heartbeat is older
//! than `STALE_AFTER` (a holder on another machine that died); a stale lock is taken over
//! with a warning that names the old holder. Released on drop of the guard (and on exit).
//!
//! Every lock body carries a random `token` of its holder. The heartbeat and the release only
//! touch the lock while it is still their own: a holder that was paused long enough for its
//! lock to be taken over can neither overwrite nor delete the new holder's lock. The heartbeat
//! rewrites the exact version it read (`PutMode::Update`, a conditional `If-Match` PUT on S3);
//! the local file system has no conditional update, so there (and for the release, which
//! object_store cannot make conditional) the token is compared just before the write or the
//! delete. A heartbeat that finds the lock no longer its own stops and says so.
//!
//! Sharded runs (`--partners`) take, instead of the lake lock, one lock per partner
//! (`_medallion/lock/partner=<id>.json`, in sorted order, so overlapping shards wait for each
//! other and never deadlock) and, while silver commits, the short lake-wide commit lock
//! (`_medallion/lock/commit.json`): every lock object has the same create-only, heartbeat,
//! token and staleness rules ([`LakeLock::acquire_at`]). A whole-lake run and sharded runs
//! exclude each other: the whole-lake run takes the lake lock and then waits until no live
//! partner lock remains; a sharded run takes its partner locks and then, if the lake lock is
//! held, releases them and waits. Each writes its own lock before reading the other's, so on
//! a store with read-after-write consistency (a local disk, S3) at least one sees the other.
//!
//! The default `--lock-timeout` (180 s) is longer than `STALE_AFTER` plus one `HEARTBEAT`, so
//! a run started after a holder on another machine died waits for the lock to become stale
//! and takes it over instead of exiting 5.

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use lake::Location;
use serde::{Deserialize, Serialize};

pub const HEARTBEAT: Duration = Duration::from_secs(20);
pub const STALE_AFTER: Duration = Duration::from_secs(120);
/// The default `--lock-timeout` in seconds: a dead holder's lock is stale by then.
pub const DEFAULT_WAIT_SECS: u64 = 180;
const _: () = assert!(DEFAULT_WAIT_SECS > STALE_AFTER.as_secs() + HEARTBEAT.as_secs());

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Random, per acquisition: who owns this lock body (empty in locks of older versions).
    #[serde(default)]
    pub token: String,
}

/// A random token (std's per-process random hash keys, mixed with the time and pid).
fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

impl LockInfo {
    pub fn describe(&self) -> String {
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

/// Where the locks of sharded runs live: one object per partner, and the silver commit lock.
pub const SHARD_LOCK_DIR: &str = "_medallion/lock";

/// The lock of one partner, held by a sharded run (`--partners`) for all it writes of that
/// partner: its bronze feeds, its silver partitions and its silver run record entries.
pub fn partner_lock_path(partner: &str) -> Path {
    Path::from(format!("{SHARD_LOCK_DIR}/partner={partner}.json"))
}

/// What a lock object is, for messages: "lake lock", "lock of partner p", …
fn lock_name(path: &Path) -> String {
    if *path == lock_path() {
        return "lake lock".into();
    }
    if *path == commit_lock_path() {
        return "silver commit lock".into();
    }
    match path.filename().and_then(|f| f.strip_prefix("partner=")).and_then(|f| f.strip_suffix(".json")) {
        Some(p) => format!("lock of partner {p}"),
        None => format!("lock {path}"),
    }
}

/// The short lake-wide lock a sharded silver run holds while it commits (see
/// `orchestrate::silver_shard`).
pub fn commit_lock_path() -> Path {
    Path::from(format!("{SHARD_LOCK_DIR}/commit.json"))
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
    path: Path,
    heartbeat: tokio::task::JoinHandle<()>,
    released: bool,
    token: String,
    /// The dead holder whose stale lock this one took over (its runs are abandoned).
    pub took_over: Option<(LockInfo, String)>,
}

/// The live holder of the lake lock, if any (a stale lock counts as none).
pub async fn current_holder(lake: &Location) -> Result<Option<LockInfo>, LockError> {
    Ok(read(lake, &lock_path()).await?.map(|(info, _)| info).filter(|i| i.stale().is_none()))
}

/// The live holders of partner locks (sharded runs), with the partner each holds.
pub async fn partner_holders(lake: &Location) -> Result<Vec<(String, LockInfo)>, LockError> {
    use futures::TryStreamExt;
    let prefix = Path::from(SHARD_LOCK_DIR);
    let metas: Vec<_> = lake.store.list(Some(&prefix)).try_collect().await.map_err(|e| LockError::Store(format!("{}: {}", lake.describe(&prefix), lake.classify(e))))?;
    let mut out = Vec::new();
    for m in metas {
        let Some(partner) = m.location.filename().and_then(|f| f.strip_prefix("partner=")).and_then(|f| f.strip_suffix(".json")) else { continue };
        if let Some((info, _)) = read(lake, &m.location).await? {
            if info.stale().is_none() {
                out.push((partner.to_string(), info));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Every live holder of a lock of the lake: the lake lock's and the partner locks' (a process
/// holding several partners counts once).
pub async fn live_holders(lake: &Location) -> Result<Vec<LockInfo>, LockError> {
    let mut out: Vec<LockInfo> = current_holder(lake).await?.into_iter().collect();
    for (_, info) in partner_holders(lake).await? {
        if !out.iter().any(|o| o.host == info.host && o.pid == info.pid) {
            out.push(info);
        }
    }
    Ok(out)
}

/// Whether a run recorded by (`host`, `pid`) may still be running: it holds one of `holders`.
pub fn run_alive_any(holders: &[LockInfo], host: &str, pid: i64) -> bool {
    holders.iter().any(|h| run_alive(Some(h), host, pid))
}

/// Whether a run recorded by (`host`, `pid`) may still be running: it holds the live lake lock.
pub fn run_alive(holder: Option<&LockInfo>, host: &str, pid: i64) -> bool {
    if host == hostname() && !process_alive(pid as u32) {
        return false;
    }
    holder.is_some_and(|h| h.host == host && h.pid as i64 == pid)
}

/// What one heartbeat did.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    Renewed,
    /// The lock is gone or belongs to someone else now: the heartbeat stops.
    Lost(String),
}

/// One heartbeat: rewrites the lock's `heartbeat_at` only while the stored lock is still the
/// one with `info.token`, replacing exactly the version read.
pub async fn heartbeat_once(lake: &Location, path: &Path, info: &mut LockInfo) -> Result<Beat, LockError> {
    let Some((current, version)) = read(lake, path).await? else {
        return Ok(Beat::Lost("the lock no longer exists".into()));
    };
    if current.token != info.token {
        return Ok(Beat::Lost(format!("the lock is now held by {}", current.describe())));
    }
    info.heartbeat_at = Utc::now();
    let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
    match lake.store.put_opts(path, body(info), opts).await {
        Ok(_) => Ok(Beat::Renewed),
        Err(object_store::Error::Precondition { .. }) | Err(object_store::Error::NotFound { .. }) => {
            Ok(Beat::Lost("the lock changed while renewing it".into()))
        }
        Err(object_store::Error::NotImplemented { .. }) => {
            // Local file system: no conditional update; the token was checked just above.
            lake.store.put(path, body(info)).await.map(|_| Beat::Renewed).map_err(|e| LockError::Store(format!("{}: {}", lake.describe(path), lake.classify(e))))
        }
        Err(e) => Err(LockError::Store(format!("{}: {}", lake.describe(path), lake.classify(e)))),
    }
}

/// Deletes the lock only if the stored lock is still the one with `token`; true if deleted.
pub async fn release_if_ours(lake: &Location, path: &Path, token: &str) -> Result<bool, LockError> {
    match read(lake, path).await? {
        Some((current, _)) if current.token == token => match lake.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(LockError::Store(format!("{}: {}", lake.describe(path), lake.classify(e)))),
        },
        Some((current, _)) => {
            tracing::warn!("the {} is no longer ours (now held by {}): left in place", lock_name(path), current.describe());
            Ok(false)
        }
        None => Ok(false),
    }
}

fn body(info: &LockInfo) -> PutPayload {
    PutPayload::from(serde_json::to_vec_pretty(info).expect("lock serialises"))
}

async fn read(lake: &Location, path: &Path) -> Result<Option<(LockInfo, UpdateVersion)>, LockError> {
    match lake.store.get(path).await {
        Ok(r) => {
            let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
            let bytes = r.bytes().await.map_err(|e| LockError::Store(format!("{}: {e}", lake.describe(path))))?;
            // An unreadable lock (e.g. a torn write by a foreign tool) counts as stale.
            let info = serde_json::from_slice::<LockInfo>(&bytes).unwrap_or(LockInfo {
                host: "?".into(),
                pid: 0,
                command: "unreadable lock".into(),
                started_at: DateTime::<Utc>::UNIX_EPOCH,
                heartbeat_at: DateTime::<Utc>::UNIX_EPOCH,
                token: String::new(),
            });
            Ok(Some((info, version)))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(LockError::Store(format!("{}: {}", lake.describe(path), lake.classify(e)))),
    }
}

impl LakeLock {
    /// Takes the whole-lake lock, waiting up to `wait` for a live holder to finish. A whole-lake
    /// run also excludes sharded runs: once it holds `_medallion/lock.json` it waits (within the
    /// same `wait`) until no live partner lock remains. Sharded runs check the lake lock after
    /// taking their partner locks and back off, so either side always sees the other.
    pub async fn acquire(lake: &Location, command: &str, wait: Duration) -> Result<LakeLock, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let lock = Self::acquire_at(lake, lock_path(), command, wait).await?;
        let mut announced = false;
        loop {
            let shards = partner_holders(lake).await?;
            let Some((partner, holder)) = shards.first() else { return Ok(lock) };
            if tokio::time::Instant::now() >= deadline {
                let partners: Vec<&str> = shards.iter().map(|(p, _)| p.as_str()).collect();
                lock.release().await;
                return Err(LockError::Held(format!(
                    "the lake {} has sharded runs in progress (partners {}; partner {partner} held by {}); a whole-lake run starts when they end",
                    lake.display,
                    partners.join(", "),
                    holder.describe()
                )));
            }
            if !announced {
                tracing::info!("waiting for the sharded runs in progress (partner {partner} held by {})", holder.describe());
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Takes the lock object at `path` (the lake lock or a partner lock), waiting up to `wait`
    /// for a live holder to finish; a stale one is taken over.
    pub async fn acquire_at(lake: &Location, path: Path, command: &str, wait: Duration) -> Result<LakeLock, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        let mut took_over = None;
        loop {
            let now = Utc::now();
            let info = LockInfo { host: hostname(), pid: std::process::id(), command: command.into(), started_at: now, heartbeat_at: now, token: new_token() };
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match lake.store.put_opts(&path, body(&info), opts).await {
                Ok(_) => return Ok(Self::held(lake, path, info, took_over)),
                Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {}
                Err(e) => return Err(LockError::Store(format!("{}: {}", lake.describe(&path), lake.classify(e)))),
            }
            let Some((holder, version)) = read(lake, &path).await? else { continue };
            if let Some(why) = holder.stale() {
                tracing::warn!("taking over a stale {} held by {} ({why})", lock_name(&path), holder.describe());
                took_over = Some((holder.clone(), why.clone()));
                // Replace exactly the stale lock we read: if someone else took it over first,
                // the conditional put fails and we look again.
                let opts = PutOptions { mode: PutMode::Update(version), ..Default::default() };
                match lake.store.put_opts(&path, body(&info), opts).await {
                    Ok(_) => return Ok(Self::held(lake, path, info, took_over)),
                    Err(object_store::Error::Precondition { .. }) | Err(object_store::Error::NotFound { .. }) => continue,
                    Err(object_store::Error::NotImplemented { .. }) => {
                        // The local file system has no conditional update: move the stale lock
                        // aside with an atomic rename (exactly one contender's rename succeeds),
                        // then race on create as usual.
                        if let Some(root) = &lake.local_root {
                            let file = root.join(path.as_ref());
                            let aside = file.with_extension(format!("stale.{}", std::process::id()));
                            if std::fs::rename(&file, &aside).is_ok() {
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
                    "the lake {} is locked by {} (its {}); it is released when that run ends (a lock whose holder died is taken over after {} s without heartbeat)",
                    lake.display,
                    holder.describe(),
                    lock_name(&path),
                    STALE_AFTER.as_secs()
                )));
            }
            if !announced {
                tracing::info!("waiting for the {} held by {}", lock_name(&path), holder.describe());
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(500).min(deadline.saturating_duration_since(tokio::time::Instant::now()).max(Duration::from_millis(50)))).await;
        }
    }

    fn held(lake: &Location, path: Path, info: LockInfo, took_over: Option<(LockInfo, String)>) -> LakeLock {
        let token = info.token.clone();
        let owned = lake.clone();
        let beat_path = path.clone();
        let heartbeat = tokio::spawn(async move {
            let mut info = info;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match heartbeat_once(&owned, &beat_path, &mut info).await {
                    Ok(Beat::Renewed) => {}
                    Ok(Beat::Lost(why)) => {
                        tracing::error!("lost the {} ({why}): another run took it over; heartbeat stopped", lock_name(&beat_path));
                        return;
                    }
                    Err(LockError::Store(e)) | Err(LockError::Held(e)) => tracing::warn!("{} heartbeat failed: {e}", lock_name(&beat_path)),
                }
            }
        });
        LakeLock { lake: lake.clone(), path, heartbeat, released: false, token, took_over }
    }

    pub async fn release(mut self) {
        self.heartbeat.abort();
        self.released = true;
        if let Err(LockError::Store(e)) | Err(LockError::Held(e)) = release_if_ours(&self.lake, &self.path, &self.token).await {
            tracing::warn!("could not release the {}: {e}", lock_name(&self.path));
        }
    }
}

impl Drop for LakeLock {
    fn drop(&mut self) {
        if !self.released {
            self.heartbeat.abort();
            // Best effort on an error path: the next run also detects the lock as stale.
            if let Some(root) = &self.lake.local_root {
                let file = root.join(self.path.as_ref());
                let ours = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok()).is_some_and(|i| i.token == self.token);
                if ours {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
    }
}

/// The locks of a sharded run: one per partner, taken in sorted order (so two sharded runs
/// with overlapping partners never deadlock: the later one waits for the shared partner),
/// and only while no whole-lake run holds the lake lock.
pub struct PartnerLocks {
    locks: Vec<LakeLock>,
}

impl PartnerLocks {
    /// Takes the lock of every partner of `partners`, waiting up to `wait` for other sharded
    /// runs holding one of them and for a whole-lake run to end. A whole-lake run in progress
    /// makes this release what it took and try again (the whole-lake run waits for partner
    /// locks to be released, never the other way round, so neither can block the other).
    pub async fn acquire(lake: &Location, partners: &std::collections::BTreeSet<String>, command: &str, wait: Duration) -> Result<PartnerLocks, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut announced = false;
        loop {
            let mut locks = Vec::new();
            for p in partners {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match LakeLock::acquire_at(lake, partner_lock_path(p), command, left).await {
                    Ok(l) => locks.push(l),
                    Err(e) => {
                        for l in locks {
                            l.release().await;
                        }
                        return Err(match e {
                            LockError::Held(m) => LockError::Held(format!("partner {p} is being processed by another sharded run: {m}")),
                            other => other,
                        });
                    }
                }
            }
            // Taken after our partner locks: a whole-lake run that took the lake lock before
            // lists our partner locks and waits; one that holds it now makes us back off.
            let whole = current_holder(lake).await;
            let holder = match whole {
                Ok(None) => return Ok(PartnerLocks { locks }),
                Ok(Some(h)) => h,
                Err(e) => {
                    for l in locks {
                        l.release().await;
                    }
                    return Err(e);
                }
            };
            for l in locks {
                l.release().await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LockError::Held(format!(
                    "the lake {} is locked by the whole-lake run {}; sharded runs start when it ends",
                    lake.display,
                    holder.describe()
                )));
            }
            if !announced {
                tracing::info!("waiting for the whole-lake run {} to end", holder.describe());
                announced = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The dead holders whose stale partner locks were taken over.
    pub fn took_over(&self) -> impl Iterator<Item = &(LockInfo, String)> {
        self.locks.iter().filter_map(|l| l.took_over.as_ref())
    }

    pub async fn release(self) {
        for l in self.locks.into_iter().rev() {
            l.release().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder paused past staleness whose lock was taken over can neither renew nor delete
    /// the new holder's lock.
    #[test]
    fn old_holder_cannot_touch_a_taken_over_lock() {
        let dir = tempfile_dir("lock-takeover");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let lake = Location::open("lake", dir.to_str().unwrap(), true).unwrap();
            let old = LakeLock::acquire(&lake, "old", Duration::from_secs(1)).await.unwrap();
            let mut old_info = read(&lake, &lock_path()).await.unwrap().unwrap().0;
            assert_eq!(heartbeat_once(&lake, &lock_path(), &mut old_info).await.unwrap(), Beat::Renewed);
            // The old holder is paused; its lock goes stale and a new run takes it over.
            let mut stale = old_info.clone();
            stale.heartbeat_at = Utc::now() - chrono::Duration::seconds(STALE_AFTER.as_secs() as i64 + 5);
            stale.host = "elsewhere".into();
            lake.store.put(&lock_path(), body(&stale)).await.unwrap();
            let new = LakeLock::acquire(&lake, "new", Duration::from_secs(1)).await.unwrap();
            let (taken, why) = new.took_over.clone().expect("took over the stale lock");
            assert_eq!((taken.host.as_str(), taken.pid), ("elsewhere", std::process::id()));
            assert!(why.contains("no heartbeat"), "{why}");
            let new_info = read(&lake, &lock_path()).await.unwrap().unwrap().0;
            assert_eq!(new_info.command, "new");
            // The old holder wakes up: its heartbeat and release leave the new lock alone.
            assert!(matches!(heartbeat_once(&lake, &lock_path(), &mut old_info).await.unwrap(), Beat::Lost(_)));
            old.release().await;
            let still = read(&lake, &lock_path()).await.unwrap().expect("the new holder's lock survives").0;
            assert_eq!((still.command.as_str(), still.token.as_str(), still.heartbeat_at), ("new", new_info.token.as_str(), new_info.heartbeat_at));
            new.release().await;
            assert!(read(&lake, &lock_path()).await.unwrap().is_none(), "the holder's own release deletes it");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Shards and whole-lake runs exclude each other; shards with disjoint partners do not;
    /// a shard sharing a partner waits for it.
    #[test]
    fn partner_locks_and_the_lake_lock_exclude_each_other() {
        let dir = tempfile_dir("lock-partners");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let lake = Location::open("lake", dir.to_str().unwrap(), true).unwrap();
            let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<std::collections::BTreeSet<_>>();
            let short = Duration::from_millis(600);
            let a = PartnerLocks::acquire(&lake, &set(&["a", "b"]), "shard 1", short).await.unwrap();
            let c = PartnerLocks::acquire(&lake, &set(&["c"]), "shard 2", short).await.expect("disjoint shards run at once");
            match PartnerLocks::acquire(&lake, &set(&["b", "d"]), "shard 3", short).await {
                Err(LockError::Held(m)) => assert!(m.contains("partner b"), "{m}"),
                _ => panic!("a shared partner is held"),
            }
            assert!(read(&lake, &partner_lock_path("d")).await.unwrap().is_none(), "a shard that gives up releases what it took");
            assert_eq!(partner_holders(&lake).await.unwrap().iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
            match LakeLock::acquire(&lake, "whole", short).await {
                Err(LockError::Held(m)) => assert!(m.contains("partners a, b, c"), "{m}"),
                _ => panic!("a whole-lake run waits for the shards"),
            }
            assert!(read(&lake, &lock_path()).await.unwrap().is_none(), "the whole-lake run released the lake lock");
            a.release().await;
            c.release().await;
            let whole = LakeLock::acquire(&lake, "whole", short).await.unwrap();
            match PartnerLocks::acquire(&lake, &set(&["a"]), "shard 4", short).await {
                Err(LockError::Held(m)) => assert!(m.contains("whole-lake run"), "{m}"),
                _ => panic!("a shard waits for a whole-lake run"),
            }
            assert!(partner_holders(&lake).await.unwrap().is_empty());
            whole.release().await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{name}-{}-{}", std::process::id(), new_token()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
