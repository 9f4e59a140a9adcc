//! The `medallion` command line.

mod generate;
mod ledger;
mod lock;
mod orchestrate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use bronze::{BronzeError, FeedOutcome, LandAction, Registry};
use clap::{Parser, Subcommand};
use lake::{Location, StoreError};
use schemas::RunDate;

/// Exit codes: a contract with schedulers (documented in the README).
pub mod exit {
    pub const OK: u8 = 0;
    /// The run failed (an unexpected error, or data that breaks an invariant).
    pub const FAILED: u8 = 1;
    /// Bad command line or configuration: retrying will not help.
    pub const USAGE: u8 = 2;
    /// Storage or a service could not be reached (or refused access): retry later.
    pub const UNAVAILABLE: u8 = 3;
    /// Nothing to do for this date (no feeds in the landing zone).
    pub const NOTHING_TO_DO: u8 = 4;
    /// Another run holds the lake lock (after waiting --lock-timeout): retry later.
    pub const LOCKED: u8 = 5;
}

const EXAMPLES: &str = "\
Examples:
  medallion generate --partners 3 --days 2 --start-date 2026-11-19     synthetic feeds into ./landing
  medallion bronze --date 2026-11-20                                     land one day into ./lake
  medallion ingest --partner acme --dataset orders --date 2026-11-20 orders.csv
  medallion feeds --date 2026-11-20                                      what was landed, and why not
  MEDALLION_LAKE=s3://lake/prod medallion bronze --date 2026-11-20      the same on S3 / MinIO";

#[derive(Parser)]
#[command(name = "medallion", version, about = "A bronze -> silver -> gold pipeline for e-commerce partner feeds.", after_help = EXAMPLES)]
struct Cli {
    /// The lake: a local folder or s3://bucket/prefix (S3 and MinIO through AWS_* variables).
    #[arg(long, env = "MEDALLION_LAKE", default_value = "./lake", global = true)]
    lake: String,
    /// Print a machine-readable JSON summary on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The warehouse gold is published to: postgres://user@host:port/db, or sqlite://file.db
    /// (default: sqlite://<lake>/warehouse.db for a local lake, ./warehouse.db for S3).
    #[arg(long, env = "MEDALLION_WAREHOUSE", global = true)]
    warehouse: Option<String>,
    /// Seconds to wait for the lake lock held by another run before giving up (exit code 5).
    #[arg(long, env = "MEDALLION_LOCK_TIMEOUT", default_value_t = 60, global = true)]
    lock_timeout: u64,
    /// Only print errors and the final summary.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate deterministic synthetic partner feeds in the landing-zone layout.
    #[command(after_help = "Examples:
  medallion generate                                   3 partners, 3 days from 2026-11-18, 200 orders a day
  medallion generate --partners 10 --days 7 --rows 50000 --defect-rate 0.01 --out ./big
  medallion generate --defect-rate 0                   clean feeds, no defects")]
    Generate {
        /// Landing zone to write to (local folder or s3://bucket/prefix).
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        out: String,
        #[arg(long, default_value_t = 3)]
        partners: usize,
        #[arg(long, default_value_t = 3)]
        days: usize,
        /// First logical date (YYYY-MM-DD).
        #[arg(long, default_value = "2026-11-18")]
        start_date: String,
        /// Orders per partner per day (catalog, customers and items scale with it).
        #[arg(long, default_value_t = 200)]
        rows: usize,
        /// Products per partner (default: half of --rows, at least 20); later days change about
        /// 18% of them and add 5%.
        #[arg(long)]
        products: Option<usize>,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Probability that a row carries a defect (0 = clean feeds); file-level defects
        /// (missing column, Latin-1, broken CSV) are added whenever it is above 0.
        #[arg(long, default_value_t = 0.02)]
        defect_rate: f64,
    },
    /// Land every file of a date from the landing zone: raw copy, checks, Parquet, registry.
    #[command(after_help = "Examples:
  medallion bronze --date 2026-11-20
  medallion bronze --date 2026-11-20 --landing s3://partners/incoming --lake s3://lake/prod --json

Reads {landing}/{partner}/{dataset}/{date}/*.csv. A file already landed (same content, partner,
dataset and date) is reported and not landed again. Exit code 4 when the date has no files.")]
    Bronze {
        /// Run date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        /// Landing zone: a local folder or s3://bucket/prefix.
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        landing: String,
        /// Files landed at once (default: the number of cores).
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// Clean, validate and upsert a run date's landed feeds into the silver Delta tables.
    #[command(after_help = "Examples:
  medallion silver --date 2026-11-20
  medallion silver --date 2026-11-20 --json | jq '.feeds[] | select(.rejected > 0)'

Every landed feed of the date is cleaned by the contract's rules; rejected rows go to
silver/quarantine with a reason; rows read = valid + rejected + duplicate is checked for every
feed (a run that does not balance fails and is undone). Exit code 4 when nothing was landed.")]
    Silver {
        /// Run date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
    },
    /// Recompute the gold tables a silver run changed and publish them to the lake and, in one
    /// transaction, to the warehouse.
    #[command(after_help = "Examples:
  medallion gold --date 2026-11-20                                   into the SQLite default, lake/warehouse.db
  medallion gold --date 2026-11-20 --warehouse postgres://medallion@db:5432/analytics
  DATABASE_URL=postgres://… medallion gold --date 2026-11-20 --json
  medallion gold --date 2026-11-20 --full                            rebuild every date

Republishes every business date the pending silver runs changed (late orders, status changes,
renamed or recategorised products included) and the undated tables. Gold is reconciled with
silver first; a mismatch fails the run and publishes nothing. Exit code 4 when silver has not
run for the date and the warehouse is up to date.")]
    Gold {
        /// Run date (YYYY-MM-DD).
        #[arg(long)]
        date: String,
        /// Recompute and republish every date, not only those the pending silver runs changed.
        #[arg(long)]
        full: bool,
        /// PostgreSQL COPY format (binary is faster; text for troubleshooting).
        #[arg(long, value_enum, default_value_t = CopyFormatArg::Binary)]
        copy_format: CopyFormatArg,
    },
    /// Run the pipeline for a date: bronze, silver and gold, under the lake lock, recorded in
    /// the run ledger, with retries of transient failures.
    #[command(after_help = "Examples:
  medallion run --date 2026-11-20
  medallion run --date 2026-11-20 --warehouse postgres://medallion@db/analytics --json
  medallion run --date 2026-11-20 --stages silver,gold     re-run from silver

Exit codes: 0 done, 1 failed (data or bug: do not retry blindly), 2 usage, 3 a service was
unreachable after the retries, 4 nothing to do for the date, 5 the lake is locked by another run.")]
    Run {
        #[arg(long)]
        date: String,
        /// Stages to run, in order (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = ["bronze".to_string(), "silver".to_string(), "gold".to_string()])]
        stages: Vec<String>,
        /// Landing zone: a local folder or s3://bucket/prefix.
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        landing: String,
        /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
        #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
        retries: u32,
    },
    /// Re-run a range of dates from the immutable bronze copies, in date order, ending in the
    /// state a clean sequential run would have produced.
    #[command(after_help = "Examples:
  medallion backfill --from 2026-11-01 --to 2026-11-07

Silver is first restored (Delta time travel) to its state after the last run before --from;
then every date of the range, and every later date silver had already run, is run again
(bronze, silver, gold); gold is then republished in full.")]
    Backfill {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        landing: String,
        #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
        retries: u32,
    },
    /// Run the pipeline on a schedule: the previous day at every cron time (UTC), catching up
    /// the dates missed since the last run in the ledger. SIGTERM finishes the current stage
    /// and exits.
    #[command(after_help = "Examples:
  medallion schedule --cron \"0 1 * * *\"             every night at 01:00 UTC
  medallion schedule --cron \"0 1 * * *\" --once      catch up now, then exit")]
    Schedule {
        #[arg(long, default_value = "0 1 * * *")]
        cron: String,
        /// At most this many missed days are caught up.
        #[arg(long, default_value_t = 7)]
        catch_up_days: u32,
        /// Catch up and exit instead of waiting for the next time.
        #[arg(long)]
        once: bool,
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        landing: String,
        #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
        retries: u32,
    },
    /// Try medallion: generate a few days of partner feeds, run the whole pipeline on each day
    /// into a local lake and the embedded SQLite warehouse, and show where to look.
    #[command(after_help = "Examples:
  medallion demo                       into ./medallion-demo
  medallion demo --dir /tmp/demo --partners 5 --days 7")]
    Demo {
        /// Folder for the demo's landing zone, lake and warehouse.
        #[arg(long, default_value = "./medallion-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        partners: usize,
        #[arg(long, default_value_t = 3)]
        days: usize,
        /// Orders per partner per day.
        #[arg(long, default_value_t = 200)]
        rows: usize,
    },
    /// Show the runs and their stages, each feed's reconciliation (read = valid + rejected +
    /// duplicate), the products diff, and what failed and why.
    #[command(after_help = "Examples:
  medallion status
  medallion status --date 2026-11-20 --json")]
    Status {
        #[arg(long)]
        date: Option<String>,
        /// Runs to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Manage the warehouse: apply migrations, create the read-only role for BI tools.
    #[command(after_help = "Examples:
  medallion warehouse migrate --warehouse postgres://admin@db:5432/analytics
  BI_PASSWORD=… medallion warehouse grant-readonly --role bi_reader --password-env BI_PASSWORD

The read-only role may log in and SELECT from schema gold (tables created later included),
nothing else. Point Tableau or any BI tool at PostgreSQL with it.")]
    Warehouse {
        #[command(subcommand)]
        action: WarehouseAction,
    },
    /// Keep the silver Delta tables healthy: compact small files, vacuum unreferenced files
    /// older than the retention, write a checkpoint, clean up expired log files.
    #[command(after_help = "Examples:
  medallion maintain                        every silver table, keeping one week of history
  medallion maintain --retention-hours 720  keep 30 days of history for time travel and restores

Run it weekly (cron or the Airflow DAG), when no other medallion run writes to the lake.")]
    Maintain {
        /// Files no longer referenced are deleted once older than this (at least 168 h unless --force).
        #[arg(long, default_value_t = silver::delta::MIN_RETENTION_HOURS)]
        retention_hours: u64,
        /// Allow a retention below 168 h (only when no reader or writer can be running).
        #[arg(long)]
        force: bool,
    },
    /// Run ad-hoc SQL over the lake: silver.<table>, gold.<table> (computed from silver on the
    /// fly) and bronze.<dataset> (landed feeds as strings).
    #[command(after_help = "Examples:
  medallion sql \"SELECT * FROM gold.daily_sales ORDER BY order_date, partner_id\"
  medallion sql \"SELECT reason, COUNT(*) n FROM silver.quarantine GROUP BY reason ORDER BY n DESC\" --format csv
  medallion sql \"SELECT partner, COUNT(*) FROM bronze.orders GROUP BY partner\" --format json

Tables: silver.{products, customers, orders, order_items, inventory, campaigns, products_history,
product_changes, quarantine, feed_reconciliation, orphan_items}; gold.{daily_sales, category_kpis,
order_kpis, partner_revenue, product_changes, dim_products, customer_orders, inventory_status,
campaign_performance}; bronze.<dataset>. Unqualified names are silver tables.")]
    Sql {
        /// The query (DataFusion SQL).
        query: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
        format: SqlFormat,
    },
    /// Push files into the landing zone as {partner}/{dataset}/{date}/{file name}.
    #[command(after_help = "Examples:
  medallion ingest --partner acme --dataset orders --date 2026-11-20 ~/Downloads/orders.csv
  medallion ingest --partner acme --dataset products --date 2026-11-20 a.csv b.csv && medallion bronze --date 2026-11-20")]
    Ingest {
        #[arg(long)]
        partner: String,
        /// One of products, customers, orders, order_items, inventory, campaigns.
        #[arg(long)]
        dataset: String,
        #[arg(long)]
        date: String,
        #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
        landing: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the feed contract (datasets, columns, required flags, types, rules) as Markdown.
    #[command(after_help = "Examples:
  medallion contract > docs/feeds.md")]
    Contract,
    /// List the feed registry: every landed or quarantined file, with counts and reasons.
    #[command(after_help = "Examples:
  medallion feeds
  medallion feeds --date 2026-11-20 --json")]
    Feeds {
        #[arg(long)]
        date: Option<String>,
    },
}

#[derive(Subcommand)]
enum WarehouseAction {
    /// Create or upgrade the warehouse schemas (gold, medallion) to this version.
    Migrate,
    /// Create (or update) a login role that can only read schema gold.
    GrantReadonly {
        /// The role name (lower-case letters, digits and _).
        #[arg(long, default_value = "medallion_bi")]
        role: String,
        /// Name of an environment variable holding the role's password (never a flag: flags
        /// show up in process lists and shell history).
        #[arg(long)]
        password_env: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CopyFormatArg {
    Binary,
    Text,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SqlFormat {
    Table,
    Csv,
    Json,
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure { code: exit::USAGE, message: message.into() }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Invalid { .. } | StoreError::Io { .. } | StoreError::Config { .. } => exit::USAGE,
            StoreError::Unreachable { .. } | StoreError::Denied { .. } | StoreError::MissingBucket { .. } => exit::UNAVAILABLE,
            StoreError::Other { .. } => exit::FAILED,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<BronzeError> for Failure {
    fn from(e: BronzeError) -> Self {
        match e {
            BronzeError::Store { path, source } => {
                let f = Failure::from(source);
                Failure { code: f.code, message: format!("{path}: {}", f.message) }
            }
            BronzeError::Usage(m) => Failure::usage(m),
            BronzeError::Registry(lake::registry::RegistryError::Store { path, source }) => {
                let f = Failure::from(source);
                Failure { code: f.code, message: format!("{path}: {}", f.message) }
            }
            other => Failure { code: exit::FAILED, message: other.to_string() },
        }
    }
}

impl From<lake::registry::RegistryError> for Failure {
    fn from(e: lake::registry::RegistryError) -> Self {
        Failure::from(BronzeError::from(e))
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("medallion: internal error (this is a bug, please report it): {info}");
    }));
    if let Err(message) = load_config_file() {
        eprintln!("medallion: error: {message}");
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MEDALLION_LOG")
        .unwrap_or_else(|_| {
            // Our own progress at info; libraries (delta-rs, DataFusion, object_store) only warn.
            tracing_subscriber::EnvFilter::new(if cli.quiet {
                "warn,deltalake_core=error"
            } else {
                "warn,deltalake_core=error,medallion=info,bronze=info,silver=info,gold=info,schemas=info"
            })
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medallion: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("medallion: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Settings a `medallion.toml` may hold, and the environment variable each stands for.
const CONFIG_KEYS: &[(&str, &str)] = &[
    ("lake", "MEDALLION_LAKE"),
    ("landing", "MEDALLION_LANDING"),
    ("warehouse", "MEDALLION_WAREHOUSE"),
    ("retries", "MEDALLION_RETRIES"),
    ("lock_timeout", "MEDALLION_LOCK_TIMEOUT"),
    ("log", "MEDALLION_LOG"),
    ("s3_max_retries", "MEDALLION_S3_MAX_RETRIES"),
];

/// Reads `medallion.toml` (or the file named by MEDALLION_CONFIG): each setting becomes the
/// default of its environment variable, so the precedence is flags > environment > file.
/// Unknown keys are errors (a typo must not be silently ignored).
fn load_config_file() -> Result<(), String> {
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
        let Some((_, var)) = CONFIG_KEYS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
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
    Ok(())
}

fn check_date(date: &str) -> Result<(), Failure> {
    run_date(date).map(|_| ())
}

/// A run date from the command line, parsed once.
fn run_date(date: &str) -> Result<RunDate, Failure> {
    date.parse::<RunDate>().map_err(Failure::usage)
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("summaries serialise"));
}

async fn open(what: &'static str, spec: &str, create: bool) -> Result<Location, Failure> {
    let loc = Location::open(what, spec, create)?;
    loc.check().await?;
    Ok(loc)
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let quiet = cli.quiet || cli.json;
    match cli.command {
        Command::Generate { out, partners, days, start_date, rows, products, seed, defect_rate } => {
            let start = schemas::contract::parse_run_date(&start_date).map_err(Failure::usage)?;
            if !(0.0..=1.0).contains(&defect_rate) {
                return Err(Failure::usage(format!("--defect-rate must be between 0 and 1, got {defect_rate}")));
            }
            if partners == 0 || days == 0 {
                return Err(Failure::usage("--partners and --days must be at least 1"));
            }
            let landing = open("landing zone", &out, true).await?;
            let g = generate::Generator::new(generate::GenerateOptions { partners, days, start: start.into(), rows, products, seed, defect_rate });
            let on_file = |path: &str, bytes: u64| {
                if !quiet {
                    tracing::info!("wrote {path} ({bytes} bytes)");
                }
            };
            let summary = g.write(&landing, &on_file).await.map_err(|m| Failure { code: exit::FAILED, message: m })?;
            if cli.json {
                print_json(&summary);
            } else {
                println!(
                    "generated {} files, {} rows, {:.1} MB for partners {} on {} .. {} into {}",
                    summary.files,
                    summary.rows,
                    summary.bytes as f64 / 1e6,
                    summary.partners.join(", "),
                    summary.dates.first().map(String::as_str).unwrap_or(""),
                    summary.dates.last().map(String::as_str).unwrap_or(""),
                    landing.display
                );
            }
            Ok(exit::OK)
        }
        Command::Bronze { date, landing, concurrency } => {
            check_date(&date)?;
            let landing = open("landing zone", &landing, false).await?;
            let lake = open("lake", &cli.lake, true).await?;
            let concurrency = concurrency.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let started = std::time::Instant::now();
            let on_feed = |o: &FeedOutcome| {
                if !quiet {
                    log_feed(o);
                }
            };
            let guard = take_lock(&lake, &format!("medallion bronze --date {date}"), cli.lock_timeout).await?;
            let report = bronze::land_date(&landing, &lake, run_date(&date)?, concurrency, &on_feed).await;
            guard.release().await;
            let report = report?;
            for ig in &report.ignored {
                tracing::warn!("ignored {}: {}", ig.path, ig.reason);
            }
            let elapsed = started.elapsed().as_secs_f64();
            if cli.json {
                print_json(&serde_json::json!({
                    "date": report.date,
                    "lake": lake.display,
                    "landed": report.count(LandAction::Landed),
                    "quarantined": report.count(LandAction::Quarantined),
                    "already_landed": report.count(LandAction::AlreadyLanded),
                    "rows_landed": report.rows_landed(),
                    "bytes_landed": report.bytes_landed(),
                    "seconds": elapsed,
                    "feeds": report.feeds,
                    "ignored": report.ignored,
                }));
            } else {
                println!(
                    "bronze {date}: {} landed ({} rows, {:.1} MB), {} quarantined, {} already landed, {} ignored in {:.1}s; lake {}",
                    report.count(LandAction::Landed),
                    report.rows_landed(),
                    report.bytes_landed() as f64 / 1e6,
                    report.count(LandAction::Quarantined),
                    report.count(LandAction::AlreadyLanded),
                    report.ignored.len(),
                    elapsed,
                    lake.display
                );
            }
            if report.feeds.is_empty() {
                if !cli.json {
                    eprintln!("medallion: nothing to do: no feeds for {date} under {}", landing.display);
                }
                return Ok(exit::NOTHING_TO_DO);
            }
            Ok(exit::OK)
        }
        Command::Ingest { partner, dataset, date, landing, files } => {
            // Everything about the request is checked before the landing zone is touched.
            schemas::contract::validate_partner_id(&partner).map_err(Failure::usage)?;
            check_date(&date)?;
            let landing = open("landing zone", &landing, true).await?;
            let written = bronze::ingest_files(&landing, &partner, &dataset, run_date(&date)?, &files).await?;
            if cli.json {
                print_json(&serde_json::json!({ "ingested": written }));
            } else {
                for w in &written {
                    println!("ingested {w}");
                }
            }
            Ok(exit::OK)
        }
        Command::Silver { date } => {
            check_date(&date)?;
            let lake = open("lake", &cli.lake, true).await?;
            let started = std::time::Instant::now();
            let guard = take_lock(&lake, &format!("medallion silver --date {date}"), cli.lock_timeout).await?;
            let result = silver::run_silver(&lake, run_date(&date)?).await;
            guard.release().await;
            let report = match result {
                Ok(r) => r,
                Err(silver::SilverError::NothingToDo(d)) => {
                    eprintln!("medallion: nothing to do: no feeds were landed for {d} (run bronze first)");
                    return Ok(exit::NOTHING_TO_DO);
                }
                Err(e) => return Err(Failure::from(e)),
            };
            for r in &report.recovered {
                tracing::warn!("recovered from an interrupted run: {r}");
            }
            if cli.json {
                print_json(&report);
            } else {
                print_silver(&report, started.elapsed().as_secs_f64());
            }
            Ok(exit::OK)
        }
        Command::Gold { date, full, copy_format } => {
            check_date(&date)?;
            let lake = open("lake", &cli.lake, true).await?;
            let mut wh = connect_warehouse(cli.warehouse.as_deref(), &lake).await?;
            wh.copy_format = match copy_format {
                CopyFormatArg::Binary => gold::warehouse::CopyFormat::Binary,
                CopyFormatArg::Text => gold::warehouse::CopyFormat::Text,
            };
            let guard = take_lock(&lake, &format!("medallion gold --date {date}"), cli.lock_timeout).await?;
            let result = gold::run_gold(&lake, &mut wh, run_date(&date)?, &gold::GoldOptions { full }).await;
            guard.release().await;
            wh.close().await;
            let report = match result {
                Ok(r) => r,
                Err(gold::GoldError::NothingToDo(m)) => {
                    eprintln!("medallion: nothing to do: {m}");
                    return Ok(exit::NOTHING_TO_DO);
                }
                Err(e) => return Err(Failure::from(e)),
            };
            if cli.json {
                print_json(&report);
            } else {
                print_gold(&report);
            }
            Ok(exit::OK)
        }
        Command::Run { date, stages, landing, retries } => {
            check_date(&date)?;
            for s in &stages {
                if !orchestrate::STAGES.contains(&s.as_str()) {
                    return Err(Failure::usage(format!("--stages: unknown stage {s:?} (bronze, silver, gold)")));
                }
            }
            let ctx = run_context(&cli.lake, &landing, cli.warehouse.as_deref(), retries, cli.lock_timeout, quiet).await?;
            let mut wh = orchestrate::connect(&ctx).await?;
            let guard = take_lock(&ctx.lake, &format!("medallion run --date {date}"), cli.lock_timeout).await?;
            let stage_refs: Vec<&str> = orchestrate::STAGES.iter().copied().filter(|s| stages.iter().any(|x| x == s)).collect();
            let result = orchestrate::run_date(&ctx, &mut wh, &date, "run", &stage_refs).await;
            guard.release().await;
            wh.close().await;
            let (summary, code) = result?;
            if cli.json {
                print_json(&summary);
            } else {
                println!("run {} {}: {} (run id {})", date, summary.status, summary.stages.iter().map(|s| format!("{} {}", s["stage"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or(""))).collect::<Vec<_>>().join(", "), summary.run_id);
                println!("see: medallion status --date {date}");
            }
            Ok(code)
        }
        Command::Backfill { from, to, landing, retries } => {
            let mut dates = orchestrate::date_range(&from, &to)?;
            let ctx = run_context(&cli.lake, &landing, cli.warehouse.as_deref(), retries, cli.lock_timeout, quiet).await?;
            let mut wh = orchestrate::connect(&ctx).await?;
            let guard = take_lock(&ctx.lake, &format!("medallion backfill --from {from} --to {to}"), cli.lock_timeout).await?;
            let result = async {
                let (restored, later) = silver::restore_before(&ctx.lake, run_date(&from)?).await.map_err(Failure::from)?;
                for r in &restored {
                    tracing::info!("restored silver {r} (its state before {from})");
                }
                let extra: Vec<String> = later.into_iter().filter(|d| d.as_str() > to.as_str()).collect();
                if !extra.is_empty() {
                    tracing::warn!("silver had already run later dates ({}): running them again too, so the state stays sequential", extra.join(", "));
                    dates.extend(extra);
                }
                let mut summaries = Vec::new();
                for d in &dates {
                    let (s, code) = orchestrate::run_date(&ctx, &mut wh, d, "backfill", &["bronze", "silver"]).await?;
                    summaries.push((s, code));
                }
                // Republish gold in full: the restored runs may have touched dates the new runs do not.
                let last = dates.last().cloned().unwrap_or(to.clone());
                let report = match gold::run_gold(&ctx.lake, &mut wh, run_date(&last)?, &gold::GoldOptions { full: true }).await {
                    Ok(r) => Some(r),
                    Err(gold::GoldError::NothingToDo(_)) => None,
                    Err(e) => return Err(Failure::from(e)),
                };
                Ok((summaries, report))
            }
            .await;
            guard.release().await;
            wh.close().await;
            let (summaries, report) = result?;
            if cli.json {
                print_json(&serde_json::json!({ "dates": summaries.iter().map(|(s, _)| s).collect::<Vec<_>>(), "gold": report }));
            } else {
                for (s, _) in &summaries {
                    println!("backfill {} {}", s.date, s.status);
                }
                if let Some(r) = &report {
                    println!("gold republished in full: {} rows to {}", r.tables.iter().map(|t| t.rows).sum::<u64>(), r.warehouse);
                }
            }
            Ok(if summaries.iter().all(|(_, c)| *c == exit::NOTHING_TO_DO) { exit::NOTHING_TO_DO } else { exit::OK })
        }
        Command::Schedule { cron, catch_up_days, once, landing, retries } => {
            let cron = orchestrate::Cron::parse(&cron).map_err(Failure::usage)?;
            let ctx = run_context(&cli.lake, &landing, cli.warehouse.as_deref(), retries, cli.lock_timeout, quiet).await?;
            schedule(ctx, cron, catch_up_days, once).await
        }
        Command::Demo { dir, partners, days, rows } => demo(&dir, partners, days, rows, cli.json).await,
        Command::Status { date, limit } => {
            if let Some(d) = &date {
                check_date(d)?;
            }
            let lake = open("lake", &cli.lake, true).await?;
            let mut wh = connect_warehouse(cli.warehouse.as_deref(), &lake).await?;
            wh.migrate().await.map_err(Failure::from)?;
            let st = ledger::status(&mut wh, date.as_deref(), limit).await.map_err(Failure::from)?;
            wh.close().await;
            if cli.json {
                print_json(&st);
            } else {
                print_status(&st);
            }
            Ok(exit::OK)
        }
        Command::Warehouse { action } => {
            let lake = open("lake", &cli.lake, true).await?;
            let mut wh = connect_warehouse(cli.warehouse.as_deref(), &lake).await?;
            match action {
                WarehouseAction::Migrate => {
                    let applied = wh.migrate().await.map_err(Failure::from)?;
                    if applied.is_empty() {
                        println!("warehouse {} is up to date", wh.display);
                    } else {
                        for a in &applied {
                            println!("applied migration {a}");
                        }
                    }
                }
                WarehouseAction::GrantReadonly { role, password_env } => {
                    let password = match &password_env {
                        Some(var) => Some(std::env::var(var).map_err(|_| Failure::usage(format!("--password-env {var}: the variable is not set")))?),
                        None => None,
                    };
                    wh.migrate().await.map_err(Failure::from)?;
                    wh.grant_readonly(&role, password.as_deref()).await.map_err(Failure::from)?;
                    println!("role {role} can log in and read schema gold (SELECT only) in {}", wh.display);
                }
            }
            wh.close().await;
            Ok(exit::OK)
        }
        Command::Maintain { retention_hours, force } => {
            let lake = open("lake", &cli.lake, true).await?;
            let guard = take_lock(&lake, "medallion maintain", cli.lock_timeout).await?;
            let done = silver::maintain_all(&lake, retention_hours, force).await;
            guard.release().await;
            let done = done?;
            if cli.json {
                print_json(&done);
            } else {
                for t in &done {
                    let r = &t.report;
                    println!(
                        "{:<20} compacted {} files into {}, vacuumed {}, checkpoint at version {}, {} old log files removed",
                        t.table, r.files_compacted, r.files_written, r.files_vacuumed, r.checkpoint_version, r.logs_removed
                    );
                }
                println!("maintained {} silver tables in {}", done.len(), lake.display);
            }
            Ok(exit::OK)
        }
        Command::Sql { query, format } => {
            let lake = open("lake", &cli.lake, true).await?;
            let ctx = gold::sql_session(&lake).await.map_err(|e| Failure { code: exit::FAILED, message: e.to_string() })?;
            let df = ctx.sql(&query).await.map_err(|e| Failure::usage(format!("query: {e}")))?;
            let batches = df.collect().await.map_err(|e| Failure { code: exit::FAILED, message: format!("query: {e}") })?;
            let mut out = std::io::stdout().lock();
            let written = match format {
                SqlFormat::Table => arrow::util::pretty::pretty_format_batches(&batches).map(|t| {
                    use std::io::Write;
                    writeln!(out, "{t}").map_err(|e| arrow::error::ArrowError::IoError(e.to_string(), e))
                }).and_then(|r| r),
                SqlFormat::Csv => {
                    let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                    batches.iter().try_for_each(|b| w.write(b))
                }
                SqlFormat::Json => {
                    let mut w = arrow::json::ArrayWriter::new(&mut out);
                    batches.iter().try_for_each(|b| w.write(b)).and_then(|_| w.finish())
                }
            };
            written.map_err(|e| Failure { code: exit::FAILED, message: format!("writing the result: {e}") })?;
            Ok(exit::OK)
        }
        Command::Contract => {
            print!("{}", schemas::contract::markdown());
            Ok(exit::OK)
        }
        Command::Feeds { date } => {
            if let Some(d) = &date {
                check_date(d)?;
            }
            let lake = open("lake", &cli.lake, true).await?;
            let registry = Registry::new(&lake);
            let feeds = match &date {
                Some(d) => registry.feeds_for_date(run_date(d)?).await?,
                None => registry.all_feeds().await?,
            };
            if cli.json {
                print_json(&feeds);
            } else {
                println!("{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9}  {}", "feed", "date", "partner", "dataset", "status", "rows", "bytes", "file / reason");
                for f in &feeds {
                    let note = match (&f.reason, &f.detail) {
                        (Some(r), Some(d)) => format!("{}  [{r}: {d}]", f.file_name),
                        _ if !f.extra_columns.is_empty() => format!("{}  (extra columns: {})", f.file_name, f.extra_columns.join(", ")),
                        _ => f.file_name.clone(),
                    };
                    println!(
                        "{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9}  {note}",
                        f.feed_id, f.date, f.partner, f.dataset.name(), f.status.as_str(), f.rows, f.bytes
                    );
                }
            }
            Ok(exit::OK)
        }
    }
}

impl From<silver::SilverError> for Failure {
    fn from(e: silver::SilverError) -> Self {
        match e {
            silver::SilverError::Store { path, source } => {
                let f = Failure::from(source);
                Failure { code: f.code, message: format!("{path}: {}", f.message) }
            }
            silver::SilverError::Registry(r) => Failure::from(r),
            e @ silver::SilverError::Delta(silver::delta::DeltaError::RetentionTooShort { .. }) => Failure::usage(e.to_string()),
            other => Failure { code: exit::FAILED, message: other.to_string() },
        }
    }
}

async fn take_lock(lake: &Location, command: &str, timeout: u64) -> Result<lock::LakeLock, Failure> {
    lock::LakeLock::acquire(lake, command, std::time::Duration::from_secs(timeout)).await.map_err(|e| match e {
        lock::LockError::Held(m) => Failure { code: exit::LOCKED, message: m },
        lock::LockError::Store(m) => Failure { code: exit::UNAVAILABLE, message: m },
    })
}

/// Opens a location, retrying while its storage is unreachable.
async fn open_retrying(what: &'static str, spec: &str, retries: u32) -> Result<Location, Failure> {
    let mut attempt = 0;
    loop {
        match open(what, spec, true).await {
            Err(f) if f.code == exit::UNAVAILABLE && attempt < retries => {
                let wait = orchestrate::backoff(attempt);
                attempt += 1;
                tracing::warn!("{} — retrying in {:.1}s (attempt {} of {})", f.message, wait.as_secs_f64(), attempt + 1, retries + 1);
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

async fn run_context(lake: &str, landing: &str, warehouse: Option<&str>, retries: u32, lock_timeout: u64, quiet: bool) -> Result<orchestrate::RunContext, Failure> {
    let lake = open_retrying("lake", lake, retries).await?;
    let landing = open_retrying("landing zone", landing, retries).await?;
    let warehouse_url = warehouse_url(warehouse, &lake);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else { return };
        loop {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                eprintln!("medallion: second signal: exiting now");
                std::process::exit(130);
            }
            eprintln!("medallion: signal received: finishing the current stage, then stopping (send it again to stop at once)");
        }
    });
    Ok(orchestrate::RunContext { landing, lake, warehouse_url, retries, lock_wait: std::time::Duration::from_secs(lock_timeout), quiet, stop })
}

async fn schedule(ctx: orchestrate::RunContext, cron: orchestrate::Cron, catch_up_days: u32, once: bool) -> Result<u8, Failure> {
    use std::sync::atomic::Ordering;
    let mut wh = orchestrate::connect(&ctx).await?;
    loop {
        let yesterday = chrono::Utc::now().date_naive() - chrono::Days::new(1);
        let earliest = yesterday - chrono::Days::new(catch_up_days.saturating_sub(1) as u64);
        let first = match ledger::last_done_date(&mut wh).await? {
            Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").map(|d| d + chrono::Days::new(1)).unwrap_or(yesterday).max(earliest),
            None => earliest,
        };
        let mut day = first;
        while day <= yesterday && !ctx.stop.load(Ordering::SeqCst) {
            let date = day.format("%Y-%m-%d").to_string();
            let guard = lock_for_schedule(&ctx, &date).await;
            if let Some(guard) = guard {
                let result = orchestrate::run_date(&ctx, &mut wh, &date, "schedule", &orchestrate::STAGES).await;
                guard.release().await;
                match result {
                    Ok((s, _)) => eprintln!("schedule: {date} {}", s.status),
                    Err(f) => {
                        eprintln!("schedule: {date} failed: {}", f.message);
                        break; // later dates wait: they build on this one
                    }
                }
            }
            day = day + chrono::Days::new(1);
        }
        if once || ctx.stop.load(Ordering::SeqCst) {
            wh.close().await;
            return Ok(exit::OK);
        }
        let now = chrono::Utc::now();
        let next = cron.next_after(now).ok_or_else(|| Failure::usage("the cron expression never matches"))?;
        eprintln!("schedule: next run at {} UTC", next.format("%Y-%m-%d %H:%M"));
        while chrono::Utc::now() < next {
            if ctx.stop.load(Ordering::SeqCst) {
                wh.close().await;
                return Ok(exit::OK);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

async fn demo(dir: &std::path::Path, partners: usize, days: usize, rows: usize, json: bool) -> Result<u8, Failure> {
    if partners == 0 || days == 0 {
        return Err(Failure::usage("--partners and --days must be at least 1"));
    }
    std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
    let dir = dir.canonicalize().map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
    let (landing_dir, lake_dir) = (dir.join("landing"), dir.join("lake"));
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 18).expect("valid date");
    let landing = open("landing zone", &landing_dir.display().to_string(), true).await?;
    let g = generate::Generator::new(generate::GenerateOptions { partners, days, start, rows, products: None, seed: 42, defect_rate: 0.02 });
    let summary = g.write(&landing, &|_: &str, _: u64| {}).await.map_err(|m| Failure { code: exit::FAILED, message: m })?;
    eprintln!("generated {} files ({} rows) for {} partners and {} days in {}", summary.files, summary.rows, partners, days, landing_dir.display());
    let ctx = run_context(&lake_dir.display().to_string(), &landing_dir.display().to_string(), None, 2, 60, json).await?;
    let mut wh = orchestrate::connect(&ctx).await?;
    let mut results = Vec::new();
    for date in &summary.dates {
        let guard = take_lock(&ctx.lake, &format!("medallion demo ({date})"), 60).await?;
        let r = orchestrate::run_date(&ctx, &mut wh, date, "run", &orchestrate::STAGES).await;
        guard.release().await;
        results.push(r?.0);
    }
    let last = summary.dates.last().cloned().unwrap_or_default();
    let kpis = wh
        .query_strings(&format!(
            "SELECT CAST(order_date AS TEXT), currency, CAST(total_orders AS TEXT), CAST(total_revenue AS TEXT), CAST(unique_customers AS TEXT) FROM {} ORDER BY order_date, currency",
            wh.dialect().table("gold", "order_kpis")
        ))
        .await
        .map_err(Failure::from)?;
    let top = wh
        .query_strings(&format!(
            "SELECT partner_id, currency, CAST(SUM(net_revenue) AS TEXT) FROM {} GROUP BY partner_id, currency ORDER BY SUM(net_revenue) DESC LIMIT 3",
            wh.dialect().table("gold", "partner_revenue")
        ))
        .await
        .map_err(Failure::from)?;
    let warehouse = ctx.warehouse_url.clone();
    wh.close().await;
    if json {
        print_json(&serde_json::json!({ "dir": dir, "lake": lake_dir, "warehouse": warehouse, "runs": results }));
        return Ok(exit::OK);
    }
    let cell = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    println!();
    for r in &results {
        println!("  {} {:<9} {}", r.date, r.status, r.stages.iter().map(|s| format!("{} {}", s["stage"].as_str().unwrap_or(""), s["status"].as_str().unwrap_or(""))).collect::<Vec<_>>().join(", "));
    }
    println!("\nOrder KPIs (gold.order_kpis):");
    println!("  {:<12} {:<8} {:>8} {:>16} {:>10}", "date", "currency", "orders", "net revenue", "customers");
    for r in &kpis {
        let money = cell(r, 3).parse::<f64>().map(|v| format!("{v:.2}")).unwrap_or_default();
        println!("  {:<12} {:<8} {:>8} {:>16} {:>10}", cell(r, 0), cell(r, 1), cell(r, 2), money, cell(r, 4));
    }
    println!("\nTop partners by net revenue (gold.partner_revenue):");
    for r in &top {
        println!("  {:<12} {} {:.2}", cell(r, 0), cell(r, 1), cell(r, 2).parse::<f64>().unwrap_or_default());
    }
    let me = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "medallion".into());
    let lake = lake_dir.display();
    println!("\nWhere to look:");
    println!("  lake       {lake}   (raw/ immutable copies, bronze/ Parquet, silver/ Delta tables, gold/ Parquet)");
    println!("  warehouse  {warehouse}   (open it with sqlite3 or any BI tool)");
    println!("\nTry:");
    println!("  {me} status --lake {lake} --date {last}");
    println!("  {me} feeds --lake {lake} --date {last}");
    println!("  {me} sql --lake {lake} \"SELECT * FROM gold.daily_sales ORDER BY net_revenue DESC LIMIT 5\"");
    println!("  sqlite3 {lake}/warehouse.db \"SELECT * FROM category_kpis ORDER BY daily_revenue DESC LIMIT 5\"");
    Ok(exit::OK)
}

/// The lake lock for one scheduled date, or None (said on stderr) when it cannot be had now.
async fn lock_for_schedule(ctx: &orchestrate::RunContext, date: &str) -> Option<lock::LakeLock> {
    match lock::LakeLock::acquire(&ctx.lake, &format!("medallion schedule ({date})"), ctx.lock_wait).await {
        Ok(g) => Some(g),
        Err(lock::LockError::Held(m)) | Err(lock::LockError::Store(m)) => {
            eprintln!("schedule: {date} not run now: {m}");
            None
        }
    }
}

fn print_status(st: &ledger::Status) {
    let s = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or("").to_string();
    println!("{:<40} {:<10} {:<9} {:<10} {:<24} {}", "run", "date", "kind", "status", "started", "stages");
    for r in &st.runs {
        let jobs: Vec<String> = r["jobs"]
            .as_array()
            .map(|a| a.iter().map(|j| format!("{} {}{}", s(j, "stage"), s(j, "status"), if s(j, "attempts").parse::<u32>().unwrap_or(1) > 1 { format!(" ({} attempts)", s(j, "attempts")) } else { String::new() })).collect())
            .unwrap_or_default();
        println!("{:<40} {:<10} {:<9} {:<10} {:<24} {}", s(r, "run_id"), s(r, "run_date"), s(r, "kind"), s(r, "status"), s(r, "started_at"), jobs.join(", "));
        if let Some(e) = r["error"].as_str() {
            println!("    failed: {e}");
        }
    }
    if !st.feeds.is_empty() {
        println!();
        println!("{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9} {:>9} {:>9}  {}", "feed", "date", "partner", "dataset", "status", "read", "valid", "rejected", "dup", "check / reason");
        for f in &st.feeds {
            let n = |k: &str| s(f, k).parse::<u64>().ok();
            let check = match (n("rows_read"), n("valid"), n("rejected"), n("duplicate")) {
                (Some(r), Some(v), Some(j), Some(d)) if r == v + j + d => "balanced".to_string(),
                (Some(_), Some(_), Some(_), Some(_)) => "UNBALANCED".to_string(),
                _ => format!("{} {}", s(f, "reason"), s(f, "detail")).trim().to_string(),
            };
            println!(
                "{:<9} {:<10} {:<12} {:<11} {:<12} {:>9} {:>9} {:>9} {:>9}  {check}",
                s(f, "feed_id"), s(f, "run_date"), s(f, "partner_id"), s(f, "dataset"), s(f, "status"), s(f, "rows_read"), s(f, "valid"), s(f, "rejected"), s(f, "duplicate")
            );
        }
    }
    for d in &st.product_diffs {
        println!(
            "products {} {}: {} inserted, {} updated, {} unchanged, {} skipped, {} duplicate",
            s(d, "run_date"), s(d, "partner_id"), s(d, "inserted"), s(d, "updated"), s(d, "unchanged"), s(d, "skipped"), s(d, "duplicate")
        );
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

async fn connect_warehouse(flag: Option<&str>, lake: &Location) -> Result<gold::Warehouse, Failure> {
    let url = warehouse_url(flag, lake);
    gold::Warehouse::connect(&url).await.map_err(Failure::from)
}

impl From<gold::WarehouseError> for Failure {
    fn from(e: gold::WarehouseError) -> Self {
        let code = match &e {
            gold::WarehouseError::Unreachable { .. } => exit::UNAVAILABLE,
            gold::WarehouseError::Config { .. } => exit::USAGE,
            _ => exit::FAILED,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<gold::GoldError> for Failure {
    fn from(e: gold::GoldError) -> Self {
        match e {
            gold::GoldError::Warehouse(w) => Failure::from(w),
            gold::GoldError::Store { path, source } => {
                let f = Failure::from(source);
                Failure { code: f.code, message: format!("{path}: {}", f.message) }
            }
            gold::GoldError::NothingToDo(m) => Failure { code: exit::NOTHING_TO_DO, message: m },
            other => Failure { code: exit::FAILED, message: other.to_string() },
        }
    }
}

fn print_gold(r: &gold::GoldReport) {
    for m in &r.migrations {
        println!("applied migration {m}");
    }
    for c in &r.checks {
        println!("check {:<34} {}", c.name, if c.passed() { "ok" } else { "FAILED" });
    }
    println!("{:<22} {:>9} {:>9}  {}", "table", "rows", "replaced", "dates");
    for t in &r.tables {
        let dates = if t.dates.len() > 4 { format!("{} .. {} ({} dates)", t.dates[0], t.dates[t.dates.len() - 1], t.dates.len()) } else { t.dates.join(", ") };
        println!("{:<22} {:>9} {:>9}  {dates}", t.table, t.rows, t.rows_deleted);
    }
    println!(
        "gold {}: published {} silver run(s) ({}){} to {} in {:.1}s (compute {:.1}s); {} lake files written, {} removed",
        r.date,
        r.silver_runs.len(),
        r.silver_runs.join(", "),
        if r.full { ", full rebuild" } else { "" },
        r.warehouse,
        r.compute_seconds + r.publish_seconds,
        r.compute_seconds,
        r.lake_files_written,
        r.lake_files_removed
    );
}

fn print_silver(r: &silver::SilverReport, seconds: f64) {
    println!("{:<9} {:<12} {:<11} {:>9} {:>9} {:>9} {:>9}  {}", "feed", "partner", "dataset", "read", "valid", "rejected", "dup", "reasons / warnings");
    for f in &r.feeds {
        let mut notes: Vec<String> = f.reasons.iter().map(|(k, v)| format!("{k}={v}")).collect();
        notes.extend(f.warnings.iter().map(|(k, v)| format!("warn {k}={v}")));
        println!(
            "{:<9} {:<12} {:<11} {:>9} {:>9} {:>9} {:>9}  {}",
            f.feed_id, f.partner, f.dataset, f.rows_read, f.valid, f.rejected, f.duplicate, notes.join(", ")
        );
    }
    for d in &r.product_changes {
        println!(
            "products {}: {} inserted, {} updated, {} unchanged, {} skipped, {} duplicate",
            d.partner, d.inserted, d.updated, d.unchanged, d.skipped, d.duplicate
        );
    }
    let orphans: u64 = r.orphan_items.values().sum();
    println!(
        "silver {}: {} feeds reconciled; {} orphan items; {} total_mismatch warnings; business dates touched: {} in {:.1}s",
        r.date,
        r.feeds.len(),
        orphans,
        r.total_mismatch,
        if r.business_dates.is_empty() { "none".to_string() } else { r.business_dates.join(", ") },
        seconds
    );
}

fn log_feed(o: &FeedOutcome) {
    let f = &o.feed;
    match o.action {
        LandAction::Landed => {
            let drift = if f.extra_columns.is_empty() { String::new() } else { format!("; schema drift: extra columns {}", f.extra_columns.join(", ")) };
            let malformed = if f.malformed_rows > 0 { format!(", {} malformed", f.malformed_rows) } else { String::new() };
            tracing::info!("{} landed {} ({} rows{malformed}, {} bytes){drift}", f.feed_id, f.source, f.rows, f.bytes);
        }
        LandAction::Quarantined => tracing::warn!(
            "{} quarantined {}: {} — {}",
            f.feed_id,
            f.source,
            f.reason.as_deref().unwrap_or("?"),
            f.detail.as_deref().unwrap_or("")
        ),
        LandAction::AlreadyLanded => tracing::info!("{} already landed: {} (same content), skipped", f.feed_id, f.source),
    }
}
