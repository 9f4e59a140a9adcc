//! Discovering a run date's files in the landing zone: what to land, and what was looked at
//! and not landed, with why.

use object_store::path::Path;
use schemas::contract::{validate_file_name, validate_partner_id};
use lake::Location;
use schemas::{Dataset, RunDate};
use serde::Serialize;

use crate::land::store_err;
use crate::BronzeError;

/// A file of the landing zone to land.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub partner: String,
    pub dataset: Dataset,
    pub date: RunDate,
    pub file_name: String,
    pub path: Path,
}

/// Something in the landing zone that was looked at and not landed, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    pub path: String,
    pub reason: String,
}

/// Finds every `{partner}/{dataset}/{date}/*.csv` of the landing zone, sorted in landing order
/// (partner, dataset, file name), and reports everything else it saw at those levels.
pub async fn discover(landing: &Location, date: RunDate) -> Result<(Vec<Candidate>, Vec<Ignored>), BronzeError> {
    if let Some(root) = &landing.local_root {
        let (root, display) = (root.clone(), landing.display.clone());
        return tokio::task::spawn_blocking(move || discover_local(&root, &display, date))
            .await
            .map_err(|e| BronzeError::Input { path: landing.display.clone(), message: format!("discovery failed: {e}") })?;
    }
    let mut found = Vec::new();
    let mut ignored = Vec::new();
    let root = landing.store.list_with_delimiter(None).await.map_err(|e| store_err(landing, &Path::default(), e))?;
    let mut partners: Vec<Path> = root.common_prefixes;
    partners.sort();
    for partner_path in partners {
        let partner = partner_path.filename().unwrap_or_default().to_string();
        if RESERVED_FOLDERS.contains(&partner.as_str()) {
            continue;
        }
        if let Err(msg) = validate_partner_id(&partner) {
            ignored.push(Ignored { path: landing.describe(&partner_path), reason: msg });
            continue;
        }
        let level = match landing.store.list_with_delimiter(Some(&partner_path)).await {
            Err(e @ object_store::Error::InvalidPath { .. }) => {
                ignored.push(unlistable(landing, &partner_path, &e));
                continue;
            }
            r => r.map_err(|e| store_err(landing, &partner_path, e))?,
        };
        let mut datasets = level.common_prefixes;
        datasets.sort();
        for ds_path in datasets {
            let ds_name = ds_path.filename().unwrap_or_default().to_string();
            let Some(dataset) = Dataset::parse(&ds_name) else {
                ignored.push(Ignored {
                    path: landing.describe(&ds_path),
                    reason: format!(
                        "unknown dataset folder {ds_name:?} (expected one of: {})",
                        Dataset::ALL.map(|d| d.name()).join(", ")
                    ),
                });
                continue;
            };
            let date_path = ds_path.clone().join(date.to_string().as_str());
            let files = match landing.store.list_with_delimiter(Some(&date_path)).await {
                Err(e @ object_store::Error::InvalidPath { .. }) => {
                    ignored.push(unlistable(landing, &date_path, &e));
                    continue;
                }
                r => r.map_err(|e| store_err(landing, &date_path, e))?,
            };
            for sub in files.common_prefixes {
                ignored.push(Ignored { path: landing.describe(&sub), reason: "sub-folders of a date folder are not read".into() });
            }
            let mut objects = files.objects;
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            for meta in objects {
                let file_name = meta.location.filename().unwrap_or_default().to_string();
                if !file_name.to_ascii_lowercase().ends_with(".csv") {
                    ignored.push(Ignored { path: landing.describe(&meta.location), reason: "not a .csv file".into() });
                    continue;
                }
                if let Err(msg) = validate_file_name(&file_name) {
                    ignored.push(Ignored { path: landing.describe(&meta.location), reason: msg });
                    continue;
                }
                found.push(Candidate { partner: partner.clone(), dataset, date, file_name, path: meta.location });
            }
        }
        for obj in level.objects {
            ignored.push(Ignored { path: landing.describe(&obj.location), reason: "files directly under a partner folder are not read".into() });
        }
    }
    for obj in root.objects {
        ignored.push(Ignored { path: landing.describe(&obj.location), reason: "files at the top of the landing zone are not read".into() });
    }
    found.sort_by(|a, b| (&a.partner, a.dataset, &a.file_name).cmp(&(&b.partner, b.dataset, &b.file_name)));
    Ok((found, ignored))
}

/// Top-level folders of the landing zone that hold no partner's feeds and are passed over
/// without a word: `_control` (completeness markers and manifests), `_archive` (files
/// `medallion watch` archived after their run) and `_uploads` (uploads in flight, `POST
/// /v1/feeds`).
pub const RESERVED_FOLDERS: [&str; 3] = ["_control", "_archive", crate::UPLOADS_DIR];

/// An S3 folder that holds a key object_store cannot represent (a control character in a
/// name): the S3 listing fails as a whole, so that folder is reported and skipped — one
/// partner's bad name never fails the date for everyone.
fn unlistable(landing: &Location, folder: &Path, e: &object_store::Error) -> Ignored {
    Ignored {
        path: landing.describe(folder),
        reason: format!("cannot list this folder: it holds an object whose name cannot be read (a control character?); rename or remove it ({e})"),
    }
}

/// Reason code for anything in a local landing zone that is not a regular file or a real
/// folder: symbolic links (never followed, so nothing outside the landing zone is ever read),
/// FIFOs, sockets, devices.
pub const NOT_A_REGULAR_FILE: &str = "not_a_regular_file";

/// [`discover`] for a local landing zone, with the filesystem's own view of each entry:
/// object_store's local listing follows symbolic links, opens FIFOs and fails the whole
/// listing on a name it cannot represent. Here every entry is looked at without following
/// links; only real folders are entered and only regular files are landed; a name that is
/// not UTF-8 or not a valid feed name is reported, never an error.
fn discover_local(root: &std::path::Path, display: &str, date: RunDate) -> Result<(Vec<Candidate>, Vec<Ignored>), BronzeError> {
    use std::fs::FileType;
    let mut found = Vec::new();
    let mut ignored = Vec::new();
    let shown = |parts: &[&str]| {
        let rel: Vec<String> = parts.iter().map(|p| p.escape_debug().to_string()).collect();
        format!("{}/{}", display.trim_end_matches('/'), rel.join("/"))
    };
    let kind = |t: &FileType| {
        use std::os::unix::fs::FileTypeExt;
        if t.is_symlink() {
            "a symbolic link (never followed)"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_block_device() || t.is_char_device() {
            "a device"
        } else {
            "not a regular file"
        }
    };
    // The entries of a folder as (name, type), sorted; names that are not UTF-8 reported.
    let list = |dir: &std::path::Path, parts: &[&str], ignored: &mut Vec<Ignored>| -> Result<Vec<(String, FileType)>, std::io::Error> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let t = entry.file_type()?; // does not follow symbolic links
            match entry.file_name().into_string() {
                Ok(name) => out.push((name, t)),
                Err(raw) => {
                    let mut p: Vec<&str> = parts.to_vec();
                    let lossy = raw.to_string_lossy().into_owned();
                    p.push(&lossy);
                    ignored.push(Ignored { path: shown(&p), reason: "the name is not UTF-8".into() });
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    };
    let io_err = |path: String| move |source: std::io::Error| BronzeError::Io { path, source };
    let top = list(root, &[], &mut ignored).map_err(io_err(display.to_string()))?;
    for (partner, t) in top {
        if t.is_dir() && RESERVED_FOLDERS.contains(&partner.as_str()) {
            continue;
        }
        if !t.is_dir() {
            let reason = if t.is_file() { "files at the top of the landing zone are not read".to_string() } else { format!("{NOT_A_REGULAR_FILE}: {}", kind(&t)) };
            ignored.push(Ignored { path: shown(&[&partner]), reason });
            continue;
        }
        if let Err(msg) = validate_partner_id(&partner) {
            ignored.push(Ignored { path: shown(&[&partner]), reason: msg });
            continue;
        }
        // One partner's unreadable folder is that partner's problem: reported, not fatal.
        let level = match list(&root.join(&partner), &[&partner], &mut ignored) {
            Ok(l) => l,
            Err(e) => {
                ignored.push(Ignored { path: shown(&[&partner]), reason: format!("cannot read the folder: {e}") });
                continue;
            }
        };
        for (ds_name, t) in level {
            if !t.is_dir() {
                let reason = if t.is_file() { "files directly under a partner folder are not read".to_string() } else { format!("{NOT_A_REGULAR_FILE}: {}", kind(&t)) };
                ignored.push(Ignored { path: shown(&[&partner, &ds_name]), reason });
                continue;
            }
            let Some(dataset) = Dataset::parse(&ds_name) else {
                ignored.push(Ignored {
                    path: shown(&[&partner, &ds_name]),
                    reason: format!("unknown dataset folder {ds_name:?} (expected one of: {})", Dataset::ALL.map(|d| d.name()).join(", ")),
                });
                continue;
            };
            let day = date.to_string();
            let date_dir = root.join(&partner).join(&ds_name).join(&day);
            match std::fs::symlink_metadata(&date_dir) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) => {
                    ignored.push(Ignored { path: shown(&[&partner, &ds_name, &day]), reason: format!("{NOT_A_REGULAR_FILE}: {}", kind(&m.file_type())) });
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    ignored.push(Ignored { path: shown(&[&partner, &ds_name, &day]), reason: format!("cannot read the folder: {e}") });
                    continue;
                }
            }
            let files = match list(&date_dir, &[&partner, &ds_name, &day], &mut ignored) {
                Ok(f) => f,
                Err(e) => {
                    ignored.push(Ignored { path: shown(&[&partner, &ds_name, &day]), reason: format!("cannot read the folder: {e}") });
                    continue;
                }
            };
            for (file_name, t) in files {
                let here = [partner.as_str(), ds_name.as_str(), day.as_str(), file_name.as_str()];
                if t.is_dir() {
                    ignored.push(Ignored { path: shown(&here), reason: "sub-folders of a date folder are not read".into() });
                } else if !t.is_file() {
                    ignored.push(Ignored { path: shown(&here), reason: format!("{NOT_A_REGULAR_FILE}: {}", kind(&t)) });
                } else if !file_name.to_ascii_lowercase().ends_with(".csv") {
                    ignored.push(Ignored { path: shown(&here), reason: "not a .csv file".into() });
                } else if let Err(msg) = validate_file_name(&file_name) {
                    ignored.push(Ignored { path: shown(&here), reason: msg });
                } else {
                    // The local store maps path parts to file names verbatim: parse, never encode.
                    match Path::parse(here.join("/")) {
                        Ok(path) => found.push(Candidate { partner: partner.clone(), dataset, date, file_name, path }),
                        Err(e) => ignored.push(Ignored { path: shown(&here), reason: format!("the name cannot be read: {e}") }),
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| (&a.partner, a.dataset, &a.file_name).cmp(&(&b.partner, b.dataset, &b.file_name)));
    Ok((found, ignored))
}
