//! One module per command. Each takes its parsed arguments and the global flags, does its
//! work through the library crates and `orchestrate`, renders its result, and returns the exit
//! code (or a `Failure`, which `main` turns into a message and an exit code).

mod backfill;
#[cfg(feature = "cluster")]
mod cluster;
mod contract;
mod demo;
mod feeds;
mod generate;
mod ingest;
mod maintain;
mod run;
mod schedule;
mod serve;
mod sql;
mod stage;
mod status;
mod warehouse;
mod watch;

#[cfg(feature = "cluster")]
pub use cluster::ClusterRole;

use crate::cli::{Cli, Command};
use crate::Failure;

/// The flags every command accepts.
pub struct Globals {
    pub lake: String,
    pub json: bool,
    pub warehouse: Option<String>,
    pub lock_timeout: u64,
    /// `--quiet`, or `--json` (which keeps stderr for errors).
    pub quiet: bool,
}

pub async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let g = Globals { lake: cli.lake, json: cli.json, warehouse: cli.warehouse, lock_timeout: cli.lock_timeout, quiet: cli.quiet || cli.json };
    match cli.command {
        Command::Generate(a) => generate::run(&g, a).await,
        Command::Bronze(a) => stage::bronze(&g, a).await,
        Command::Silver(a) => stage::silver(&g, a).await,
        Command::Gold(a) => stage::gold(&g, a).await,
        Command::Run(a) => run::run(&g, a).await,
        Command::Backfill(a) => backfill::run(&g, a).await,
        Command::Schedule(a) => schedule::run(&g, a).await,
        Command::Watch(a) => watch::run(&g, a).await,
        Command::Demo(a) => demo::run(&g, a).await,
        Command::Status(a) => status::run(&g, a).await,
        Command::Warehouse { action } => warehouse::run(&g, action).await,
        Command::Maintain(a) => maintain::run(&g, a).await,
        Command::Sql(a) => sql::run(&g, a).await,
        Command::Ingest(a) => ingest::run(&g, a).await,
        Command::Contract => contract::run(&g),
        Command::Feeds(a) => feeds::run(&g, a).await,
        Command::Serve(a) => serve::run(&g, a).await,
        #[cfg(feature = "cluster")]
        Command::Cluster { role } => cluster::run(&g, role).await,
    }
}
