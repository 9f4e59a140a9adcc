//! The `medallion` binary: parses the command line, dispatches to one module per command
//! (`commands/`), and owns the exit-code policy: how every library error becomes a message and
//! one of the exit codes schedulers rely on.

mod cli;
mod commands;
mod config;
mod generate;
mod ledger;
mod lock;
mod logging;
mod notify;
mod orchestrate;
mod render;
mod replay;
mod schedule;
mod serve;
mod stage;
mod watch;

use std::process::ExitCode;

use clap::Parser;
use lake::StoreError;

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

    /// The name of an exit code in `--json` output.
    pub fn class(code: u8) -> &'static str {
        match code {
            OK => "ok",
            USAGE => "usage",
            UNAVAILABLE => "unavailable",
            NOTHING_TO_DO => "nothing_to_do",
            LOCKED => "locked",
            _ => "failed",
        }
    }
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// Whether trying again may succeed (decided from the error's type).
    pub transient: bool,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), transient: false }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure::new(exit::USAGE, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Failure::new(exit::FAILED, message)
    }

    fn classified(code: u8, e: &dyn std::fmt::Display, transient: bool) -> Self {
        Failure { code, message: e.to_string(), transient }
    }

    pub fn from_stage(e: &stage::StageError) -> Self {
        use stage::StageError as S;
        match e {
            S::Bronze(e) => bronze_failure(e),
            S::Silver(e) => silver_failure(e),
            S::Gold(e) => gold_failure(e),
            S::Ledger(e) => warehouse_failure(e),
            S::Config(m) => Failure::usage(m.clone()),
        }
    }
}

fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::Invalid { .. } | StoreError::Io { .. } | StoreError::Config { .. } => exit::USAGE,
        StoreError::Unreachable { .. } | StoreError::Denied { .. } | StoreError::MissingBucket { .. } => exit::UNAVAILABLE,
        StoreError::Other { .. } => exit::FAILED,
    }
}

fn store_failure(e: &StoreError) -> Failure {
    Failure::classified(store_code(e), e, e.is_transient())
}

fn registry_failure(e: &lake::registry::RegistryError) -> Failure {
    match e {
        lake::registry::RegistryError::Store { source, .. } => Failure { message: e.to_string(), ..store_failure(source) },
        other => Failure { transient: other.is_transient(), ..Failure::failed(other.to_string()) },
    }
}

fn bronze_failure(e: &bronze::BronzeError) -> Failure {
    use bronze::BronzeError as B;
    match e {
        B::Store { source, .. } => Failure { message: e.to_string(), ..store_failure(source) },
        B::Usage(m) => Failure::usage(m.clone()),
        B::Registry(r) => registry_failure(r),
        other => Failure { transient: other.is_transient(), ..Failure::failed(other.to_string()) },
    }
}

fn silver_failure(e: &silver::SilverError) -> Failure {
    use silver::SilverError as S;
    match e {
        S::Store { source, .. } => Failure { message: e.to_string(), ..store_failure(source) },
        S::Registry(r) => registry_failure(r),
        S::Delta(silver::delta::DeltaError::RetentionTooShort { .. }) => Failure::usage(e.to_string()),
        S::NothingToDo(_) => Failure::new(exit::NOTHING_TO_DO, e.to_string()),
        // Another shard held the silver commit lock for the whole --lock-timeout: like the lake lock.
        S::CommitLock { transient: false, .. } => Failure::new(exit::LOCKED, e.to_string()),
        other => Failure { transient: other.is_transient(), ..Failure::failed(other.to_string()) },
    }
}

fn warehouse_failure(e: &gold::WarehouseError) -> Failure {
    let code = match e {
        gold::WarehouseError::Unreachable { .. } => exit::UNAVAILABLE,
        gold::WarehouseError::Config { .. } => exit::USAGE,
        _ => exit::FAILED,
    };
    Failure::classified(code, e, e.is_transient())
}

fn gold_failure(e: &gold::GoldError) -> Failure {
    use gold::GoldError as G;
    match e {
        G::Warehouse(w) => warehouse_failure(w),
        G::Store { source, .. } => Failure { message: e.to_string(), ..store_failure(source) },
        G::NothingToDo(m) => Failure::new(exit::NOTHING_TO_DO, m.clone()),
        other => Failure { transient: other.is_transient(), ..Failure::failed(other.to_string()) },
    }
}

/// `?` on a library error: the policy functions above decide its exit code.
macro_rules! failure_from {
    ($($error:ty => $policy:path),* $(,)?) => {
        $(impl From<$error> for Failure {
            fn from(e: $error) -> Self {
                $policy(&e)
            }
        })*
    };
}

failure_from! {
    StoreError => store_failure,
    bronze::BronzeError => bronze_failure,
    lake::registry::RegistryError => registry_failure,
    silver::SilverError => silver_failure,
    gold::WarehouseError => warehouse_failure,
    gold::GoldError => gold_failure,
    stage::StageError => Failure::from_stage,
}

impl From<lock::LockError> for Failure {
    fn from(e: lock::LockError) -> Self {
        match e {
            lock::LockError::Held(m) => Failure::new(exit::LOCKED, m),
            lock::LockError::Store(m) => Failure { code: exit::UNAVAILABLE, message: m, transient: true },
        }
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("medallion: internal error (this is a bug, please report it): {info}");
    }));
    // --json asks for one JSON object on stdout, usage errors included.
    let json_asked = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if let Err(message) = config::load_file() {
        return fail(json_asked, &Failure::usage(message));
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind as K;
            // --help and --version (and a bare `medallion`) print as clap always did.
            if matches!(e.kind(), K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand) || !json_asked {
                e.exit();
            }
            let message = e.render().to_string();
            let message = message.trim().strip_prefix("error: ").unwrap_or(message.trim()).to_string();
            return fail(true, &Failure::usage(message));
        }
    };
    logging::init(cli.quiet, cli.log_format);
    if let Err(message) = notify::init(config::section("notify")) {
        return fail(cli.json, &Failure::usage(message));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("medallion: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let json = cli.json;
    let result = runtime.block_on(commands::dispatch(cli));
    // Notifications never change the outcome; they get a bounded time to be delivered.
    runtime.block_on(notify::flush());
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => fail(json, &f),
    }
}

/// Reports a failure on stderr (and, with --json, as one JSON object on stdout).
fn fail(json: bool, f: &Failure) -> ExitCode {
    if logging::json() {
        tracing::error!(exit_code = f.code, exit_class = exit::class(f.code), transient = f.transient, "{}", f.message);
    } else {
        eprintln!("medallion: error: {}", f.message);
    }
    if json {
        // Tools reading --json get one object on failure too.
        let out = serde_json::json!({ "error": f.message, "exit_code": f.code, "exit_class": exit::class(f.code), "transient": f.transient });
        crate::out!("{}", serde_json::to_string_pretty(&out).expect("serialises"));
    }
    ExitCode::from(f.code)
}
