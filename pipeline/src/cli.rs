//! The command line: every command, its flags and its help text (clap derive). Parsing only:
//! what a command does lives in `commands/<name>.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use schemas::RunDate;

const EXAMPLES: &str = "\
Examples:
  medallion generate --partners 3 --days 2 --start-date 2026-11-19     synthetic feeds into ./landing
  medallion bronze --date 2026-11-20                                     land one day into ./lake
  medallion ingest --partner acme --dataset orders --date 2026-11-20 orders.csv
  medallion feeds --date 2026-11-20                                      what was landed, and why not
  MEDALLION_LAKE=s3://lake/prod medallion bronze --date 2026-11-20      the same on S3 / MinIO";

#[derive(Parser)]
#[command(name = "medallion", version, about = "A bronze -> silver -> gold pipeline for e-commerce partner feeds.", after_help = EXAMPLES)]
pub struct Cli {
    /// The lake: a local folder or s3://bucket/prefix (S3 and MinIO through AWS_* variables).
    #[arg(long, env = "MEDALLION_LAKE", default_value = "./lake", global = true)]
    pub lake: String,
    /// Print a machine-readable JSON summary on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// The warehouse gold is published to: postgres://user@host:port/db, or sqlite://file.db
    /// (default: sqlite://<lake>/warehouse.db for a local lake, ./warehouse.db for S3).
    #[arg(long, env = "MEDALLION_WAREHOUSE", global = true)]
    pub warehouse: Option<String>,
    /// Seconds to wait for the lake lock held by another run before giving up (exit code 5).
    /// The default outlasts the lock's staleness (120 s without heartbeat), so a run retried
    /// after a crash elsewhere takes the dead run's lock over instead of exiting 5.
    #[arg(long, env = "MEDALLION_LOCK_TIMEOUT", default_value_t = crate::lock::DEFAULT_WAIT_SECS, global = true)]
    pub lock_timeout: u64,
    /// Only print errors and the final summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Logs on stderr as human lines (text) or one JSON object per line (json), with run id,
    /// date, stage, partner and feed id as fields.
    #[arg(long, env = "MEDALLION_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Generate deterministic synthetic partner feeds in the landing-zone layout.
    #[command(after_help = "Examples:
  medallion generate                                   3 partners, 3 days from 2026-11-18, 200 orders a day
  medallion generate --partners 10 --days 7 --rows 50000 --defect-rate 0.01 --out ./big
  medallion generate --defect-rate 0                   clean feeds, no defects")]
    Generate(GenerateArgs),
    /// Land every file of a date from the landing zone: raw copy, checks, Parquet, registry.
    #[command(after_help = "Examples:
  medallion bronze --date 2026-11-20
  medallion bronze --date 2026-11-20 --landing s3://partners/incoming --lake s3://lake/prod --json

Reads {landing}/{partner}/{dataset}/{date}/*.csv. A file already landed (same content, partner,
dataset and date) is reported and not landed again. Exit code 4 when the date has no files.")]
    Bronze(BronzeArgs),
    /// Clean, validate and upsert a run date's landed feeds into the silver Delta tables.
    #[command(after_help = "Examples:
  medallion silver --date 2026-11-20
  medallion silver --date 2026-11-20 --json | jq '.feeds[] | select(.rejected > 0)'

Every landed feed of the date is cleaned by the contract's rules; rejected rows go to
silver/quarantine with a reason; rows read = valid + rejected + duplicate is checked for every
feed (a run that does not balance fails and is undone). Exit code 4 when nothing was landed.")]
    Silver(SilverArgs),
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
    Gold(GoldArgs),
    /// Run the pipeline for a date: bronze, silver and gold, under the lake lock, recorded in
    /// the run ledger, with retries of transient failures.
    #[command(after_help = "Examples:
  medallion run --date 2026-11-20
  medallion run --date 2026-11-20 --warehouse postgres://medallion@db/analytics --json
  medallion run --date 2026-11-20 --stages silver,gold     re-run from silver

Exit codes: 0 done, 1 failed (data or bug: do not retry blindly), 2 usage, 3 a service was
unreachable after the retries, 4 nothing to do for the date, 5 the lake is locked by another run.")]
    Run(RunArgs),
    /// Re-run a range of dates in date order, ending in the state a clean sequential run would
    /// have produced; with --from-raw, bronze is re-landed from the lake's immutable raw copies.
    #[command(after_help = "Examples:
  medallion backfill --from 2026-11-01 --to 2026-11-07
  medallion backfill --from 2026-11-01 --to 2026-11-07 --from-raw   the landing zone is not read

Silver is first restored (Delta time travel) to its state after the last run before --from;
then every date of the range, and every later date silver had already run, is run again
(bronze, silver, gold); gold is then republished in full.")]
    Backfill(BackfillArgs),
    /// Run the pipeline on a schedule: the previous day at every cron time (UTC), catching up
    /// the dates missed since the last run in the ledger. SIGTERM finishes the current stage
    /// and exits.
    #[command(after_help = "Examples:
  medallion schedule --cron \"0 1 * * *\"             every night at 01:00 UTC
  medallion schedule --cron \"0 1 * * *\" --once      catch up now, then exit")]
    Schedule(ScheduleArgs),
    /// Run a date as soon as its feeds are complete (each partner's rule in the [watch] section
    /// of medallion.toml), at its deadline with what arrived, and again when late files
    /// arrive; optionally archive what landed. SIGTERM finishes the current stage and exits.
    #[command(after_help = "Examples:
  medallion watch                      poll every [watch] poll_seconds (default 30 s)
  medallion watch --once --json        one poll: run what is due, then exit (cron-friendly)

medallion.toml:
  [watch]
  deadline = \"04:00\"          # UTC, the day after the date: run with what arrived
  [watch.partners.acme]
  datasets = [\"products\", \"orders\", \"order_items\"]
  [watch.partners.globex]
  marker = true                # _control/globex/<date>/_SUCCESS in the landing zone")]
    Watch(WatchArgs),
    /// Try medallion: generate a few days of partner feeds, run the whole pipeline on each day
    /// into a local lake and the embedded SQLite warehouse, and show where to look.
    #[command(after_help = "Examples:
  medallion demo                       into ./medallion-demo
  medallion demo --dir /tmp/demo --partners 5 --days 7")]
    Demo(DemoArgs),
    /// Show the runs and their stages, each feed's reconciliation (read = valid + rejected +
    /// duplicate), the products diff, and what failed and why.
    #[command(after_help = "Examples:
  medallion status
  medallion status --date 2026-11-20 --json")]
    Status(StatusArgs),
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
    Maintain(MaintainArgs),
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
    Sql(SqlArgs),
    /// Push files into the landing zone as {partner}/{dataset}/{date}/{file name}.
    #[command(after_help = "Examples:
  medallion ingest --partner acme --dataset orders --date 2026-11-20 ~/Downloads/orders.csv
  medallion ingest --partner acme --dataset products --date 2026-11-20 a.csv b.csv && medallion bronze --date 2026-11-20")]
    Ingest(IngestArgs),
    /// Print the feed contract (datasets, columns, required flags, types, rules) as Markdown.
    #[command(after_help = "Examples:
  medallion contract > docs/feeds.md")]
    Contract,
    /// Serve the pipeline over HTTP: feed upload, runs as jobs, the ledger, health and
    /// Prometheus metrics, with API keys (see the README's "Service" section).
    #[command(after_help = "Examples:
  MEDALLION_API_KEYS='ingest:<key1>,operator:<key2>,reader:<key3>' medallion serve --landing ./landing
  medallion serve --listen 0.0.0.0:8080 --api-keys-file /etc/medallion/keys --schedule \"0 1 * * *\"
  medallion serve --insecure-no-auth                     local experiments only: no API keys

API keys: one role:key entry per line (or comma-separated) in MEDALLION_API_KEYS and/or
--api-keys-file; roles ingest (upload feeds), operator (queue and cancel runs; may also read)
and reader (read endpoints). Keys are kept as SHA-256 digests. Without any key the server
refuses to start unless --insecure-no-auth is given. Docs at http://<listen>/docs.
SIGTERM: stop accepting, finish the running stage (the run is recorded cancelled), exit 0.")]
    Serve(ServeArgs),
    /// List the feed registry: every landed or quarantined file, with counts and reasons.
    #[command(after_help = "Examples:
  medallion feeds
  medallion feeds --date 2026-11-20 --json")]
    Feeds(FeedsArgs),
    /// Run a Ballista scheduler or executor that knows gold's functions and reads the lake
    /// (gold then runs there with --engine df://HOST:PORT).
    #[command(after_help = "Examples:
  medallion cluster scheduler --listen 0.0.0.0:50050
  medallion cluster executor --scheduler df://scheduler:50050 --listen 0.0.0.0:50051 --grpc-port 50052
  medallion gold --date 2026-11-20 --engine df://scheduler:50050

Executors read the lake with the same AWS_* variables as every other command.")]
    #[cfg(feature = "cluster")]
    Cluster {
        #[command(subcommand)]
        role: crate::commands::ClusterRole,
    },
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Landing zone to write to (local folder or s3://bucket/prefix).
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub out: String,
    #[arg(long, default_value_t = 3)]
    pub partners: usize,
    #[arg(long, default_value_t = 3)]
    pub days: usize,
    /// First logical date (YYYY-MM-DD).
    #[arg(long, default_value = "2026-11-18")]
    pub start_date: RunDate,
    /// Orders per partner per day (catalog, customers and items scale with it).
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
    /// Products per partner (default: half of --rows, at least 20); later days change about
    /// 18% of them and add 5%.
    #[arg(long)]
    pub products: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Probability that a row carries a defect (0 = clean feeds); file-level defects
    /// (missing column, Latin-1, broken CSV) are added whenever it is above 0.
    #[arg(long, default_value_t = 0.02)]
    pub defect_rate: f64,
}

#[derive(clap::Args)]
pub struct BronzeArgs {
    /// Only these partners (comma-separated): a shard, run beside shards of other partners.
    #[arg(long, value_delimiter = ',')]
    pub partners: Vec<String>,
    /// Run date (YYYY-MM-DD).
    #[arg(long)]
    pub date: RunDate,
    /// Landing zone: a local folder or s3://bucket/prefix.
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    /// Files landed at once (default: the number of cores).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct SilverArgs {
    /// Only these partners (comma-separated): a shard, run beside shards of other partners.
    #[arg(long, value_delimiter = ',')]
    pub partners: Vec<String>,
    /// Run date (YYYY-MM-DD).
    #[arg(long)]
    pub date: RunDate,
    /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct GoldArgs {
    /// Run date (YYYY-MM-DD).
    #[arg(long)]
    pub date: RunDate,
    /// Recompute and republish every date, not only those the pending silver runs changed.
    #[arg(long)]
    pub full: bool,
    /// PostgreSQL COPY format (binary is faster; text for troubleshooting).
    #[arg(long, value_enum, default_value_t = CopyFormatArg::Binary)]
    pub copy_format: CopyFormatArg,
    /// Where gold's SQL runs: `local` (this process) or a Ballista scheduler `df://HOST:PORT`
    /// started by `medallion cluster scheduler`.
    #[arg(long, env = "MEDALLION_ENGINE", default_value = "local")]
    pub engine: gold::Engine,
    /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Only these partners (comma-separated): a shard, run beside shards of other partners.
    #[arg(long, value_delimiter = ',')]
    pub partners: Vec<String>,
    #[arg(long)]
    pub date: RunDate,
    /// Stages to run, in order (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = ["bronze".to_string(), "silver".to_string(), "gold".to_string()])]
    pub stages: Vec<String>,
    /// Landing zone: a local folder or s3://bucket/prefix.
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
    /// Where gold's SQL runs: `local` (this process) or a Ballista scheduler `df://HOST:PORT`
    /// started by `medallion cluster scheduler`.
    #[arg(long, env = "MEDALLION_ENGINE", default_value = "local")]
    pub engine: gold::Engine,
}

#[derive(clap::Args)]
pub struct BackfillArgs {
    #[arg(long)]
    pub from: RunDate,
    #[arg(long)]
    pub to: RunDate,
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    /// Re-land bronze from the lake's immutable raw copies (raw/) instead of the landing
    /// zone, which is then not read at all (it may be archived or gone): every feed received
    /// for a date is parsed again under its feed id, so a fix in how files are read reaches
    /// history. Files never landed are not picked up.
    #[arg(long)]
    pub from_raw: bool,
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct ScheduleArgs {
    #[arg(long, default_value = "0 1 * * *")]
    pub cron: String,
    /// At most this many missed days are caught up.
    #[arg(long, default_value_t = 7)]
    pub catch_up_days: u32,
    /// Catch up and exit instead of waiting for the next time.
    #[arg(long)]
    pub once: bool,
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct WatchArgs {
    /// One poll: run what is due, then exit.
    #[arg(long)]
    pub once: bool,
    /// Seconds between polls (overrides [watch] poll_seconds).
    #[arg(long)]
    pub poll_seconds: Option<u64>,
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Folder for the demo's landing zone, lake and warehouse.
    #[arg(long, default_value = "./medallion-demo")]
    pub dir: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub partners: usize,
    #[arg(long, default_value_t = 3)]
    pub days: usize,
    /// Orders per partner per day.
    #[arg(long, default_value_t = 200)]
    pub rows: usize,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub date: Option<RunDate>,
    /// Runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
}

#[derive(clap::Args)]
pub struct MaintainArgs {
    /// Files no longer referenced are deleted once older than this (at least 168 h unless --force).
    #[arg(long, default_value_t = silver::delta::MIN_RETENTION_HOURS)]
    pub retention_hours: u64,
    /// Allow a retention below 168 h (only when no reader or writer can be running).
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct SqlArgs {
    /// The query (DataFusion SQL).
    pub query: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
}

#[derive(clap::Args)]
pub struct IngestArgs {
    #[arg(long)]
    pub partner: String,
    /// One of products, customers, orders, order_items, inventory, campaigns.
    #[arg(long)]
    pub dataset: String,
    #[arg(long)]
    pub date: RunDate,
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, env = "MEDALLION_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Landing zone uploads go to and bronze reads: a local folder or s3://bucket/prefix.
    #[arg(long, env = "MEDALLION_LANDING", default_value = "./landing")]
    pub landing: String,
    /// A file of API keys, one role:key per line (roles ingest, operator, reader); added to
    /// those in MEDALLION_API_KEYS.
    #[arg(long, env = "MEDALLION_API_KEYS_FILE")]
    pub api_keys_file: Option<std::path::PathBuf>,
    /// Serve without API keys: every request is allowed. For local experiments only.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The largest feed an upload may send, in bytes (default 1 GiB).
    #[arg(long, env = "MEDALLION_MAX_UPLOAD_BYTES", default_value_t = 1 << 30)]
    pub max_upload_bytes: u64,
    /// Seconds a request may take (an upload: seconds its body may stall).
    #[arg(long, env = "MEDALLION_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Run the scheduler inside the service: a cron expression (UTC), e.g. "0 1 * * *";
    /// each due date is queued like a POST /v1/runs.
    #[arg(long, env = "MEDALLION_SCHEDULE")]
    pub schedule: Option<String>,
    /// Run dates as soon as their feeds are complete, inside the service (the [watch] section
    /// of medallion.toml, as `medallion watch`); S3 event notifications posted to
    /// /v1/events/s3 trigger a poll at once.
    #[arg(long, env = "MEDALLION_WATCH")]
    pub watch: bool,
    /// With --schedule: at most this many missed days are caught up.
    #[arg(long, default_value_t = 7)]
    pub catch_up_days: u32,
    /// Read-only warehouse connections the read endpoints keep at most.
    #[arg(long, env = "MEDALLION_READ_CONNECTIONS", default_value_t = 4)]
    pub read_connections: usize,
    /// Retries of a stage that failed for a transient reason (S3 or PostgreSQL unreachable).
    #[arg(long, env = "MEDALLION_RETRIES", default_value_t = 3)]
    pub retries: u32,
}

#[derive(clap::Args)]
pub struct FeedsArgs {
    #[arg(long)]
    pub date: Option<RunDate>,
}


#[derive(Subcommand)]
pub enum WarehouseAction {
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
pub enum CopyFormatArg {
    Binary,
    Text,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

