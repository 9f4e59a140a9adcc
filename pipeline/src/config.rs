//! Configuration: `medallion.toml` below the environment below flags, and the locations and
//! warehouse a command works on. Every command opens its lake, landing zone and warehouse here.

use std::path::PathBuf;

use lake::Location;

use crate::{orchestrate, Failure};

/// Settings a `medallion.toml` may hold, and the environment variable each stands for.
const CONFIG_KEYS: &[(&str, &str)] = &[
    ("lake", "MEDALLION_LAKE"),
    ("landing", "MEDALLION_LANDING"),
    ("warehouse", "MEDALLION_WAREHOUSE"),
    ("retries", "MEDALLION_RETRIES"),
    ("lock_timeout", "MEDALLION_LOCK_TIMEOUT"),
    ("log", "MEDALLION_LOG"),
    ("log_format", "MEDALLION_LOG_FORMAT"),
    ("s3_max_retries", "MEDALLION_S3_MAX_RETRIES"),
    ("listen", "MEDALLION_LISTEN"),
    ("api_keys_file", "MEDALLION_API_KEYS_FILE"),
    ("max_upload_bytes", "MEDALLION_MAX_UPLOAD_BYTES"),
    ("request_timeout", "MEDALLION_REQUEST_TIMEOUT"),
    ("schedule", "MEDALLION_SCHEDULE"),
    ("read_connections", "MEDALLION_READ_CONNECTIONS"),
    ("engine", "MEDALLION_ENGINE"),
];

/// Reads `medallion.toml` (or the file named by MEDALLION_CONFIG): each setting becomes the
/// default of its environment variable, so the precedence is flags > environment > file.
/// Unknown keys are errors (a typo must not be silently ignored). Call it before any thread
/// exists: it sets environment variables.
pub fn load_file() -> Result<(), String> {
    let (path, explicit) = match std::env::var("MEDALLION_CONFIG") {
        Ok(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from("medallion.toml"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(()),
        Err(e) => return Err(format!("config file {}: {e}", path.display())),
    };
    let table: toml::Table = text.parse().map_err(|e| format!("config file {}: {e}", path.display()))?;
    for (key, value) in &table {
        if SECTIONS.contains(&key.as_str()) {
            continue; // read by their own modules through `section`
        }
        let Some((_, var)) = CONFIG_KEYS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).chain(SECTIONS.iter().copied()).collect();
            return Err(format!("config file {}: unknown setting {key:?} (known: {})", path.display(), known.join(", ")));
        };
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            other => return Err(format!("config file {}: {key} must be a string or an integer, not {}", path.display(), other.type_str())),
        };
        if std::env::var_os(var).is_none() {
            // Before any thread exists: setting the environment is sound here.
            std::env::set_var(var, value);
        }
    }
    let _ = FILE.set(table);
    Ok(())
}

/// Tables of `medallion.toml` read by their own modules: `[[notify]]` (notify.rs) and
/// `[watch]` (watch.rs).
const SECTIONS: &[&str] = &["notify", "watch"];

static FILE: std::sync::OnceLock<toml::Table> = std::sync::OnceLock::new();

/// A structured section of the config file, if the file has it.
pub fn section(name: &str) -> Option<&'static toml::Value> {
    FILE.get().and_then(|t| t.get(name))
}

/// Opens a location and makes one cheap request, so that a wrong endpoint, a missing bucket
/// or bad credentials are reported up front.
pub async fn open(what: &'static str, spec: &str, create: bool) -> Result<Location, Failure> {
    let loc = Location::open(what, spec, create)?;
    loc.check().await?;
    Ok(loc)
}

/// Opens a location, retrying while its storage is unreachable.
pub async fn open_retrying(what: &'static str, spec: &str, create: bool, retries: u32) -> Result<Location, Failure> {
    let mut attempt = 0;
    loop {
        match open(what, spec, create).await {
            Err(f) if f.transient && attempt < retries => {
                let wait = orchestrate::backoff(attempt);
                attempt += 1;
                tracing::warn!("{} — retrying in {:.1}s (attempt {} of {})", f.message, wait.as_secs_f64(), attempt + 1, retries + 1);
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// The warehouse URL: the flag or MEDALLION_WAREHOUSE, else DATABASE_URL, else the embedded
/// SQLite file inside a local lake (./warehouse.db next to an S3 lake).
pub fn warehouse_url(flag: Option<&str>, lake: &Location) -> String {
    if let Some(u) = flag.filter(|u| !u.is_empty()) {
        return u.to_string();
    }
    if let Ok(u) = std::env::var("DATABASE_URL") {
        if !u.is_empty() {
            return u;
        }
    }
    match &lake.local_root {
        Some(root) => format!("sqlite://{}", root.join("warehouse.db").display()),
        None => "sqlite://warehouse.db".to_string(),
    }
}

/// Connects to the warehouse to read it (`status`): nothing is created or migrated; None when
/// an SQLite warehouse file does not exist yet.
pub async fn connect_warehouse_read_only(flag: Option<&str>, lake: &Location) -> Result<Option<gold::Warehouse>, Failure> {
    let url = warehouse_url(flag, lake);
    gold::Warehouse::connect_read_only(&url).await.map_err(Failure::from)
}

/// Connects to the warehouse without migrating it (read commands must not write).
pub async fn connect_warehouse(flag: Option<&str>, lake: &Location) -> Result<gold::Warehouse, Failure> {
    let url = warehouse_url(flag, lake);
    gold::Warehouse::connect(&url).await.map_err(Failure::from)
}
