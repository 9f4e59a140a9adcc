//! `medallion cluster scheduler|executor`: a Ballista scheduler or executor from our own binary,
//! so the cluster knows gold's functions (`money`, `money_div`), decodes gold's plans (silver
//! scans, in-memory tables) and reads the lake with the lake's own S3 configuration. Both run
//! until the process is stopped.

use std::net::SocketAddr;
use std::path::PathBuf;

use gold::engine::cluster::{run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};

use crate::commands::Globals;
use crate::{exit, Failure};

#[derive(clap::Subcommand)]
pub enum ClusterRole {
    /// A Ballista scheduler: plans gold's queries into stages and hands tasks to executors.
    Scheduler {
        /// Address to listen on (gRPC, for clients and executors).
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: SocketAddr,
        /// The host executors and clients reach this scheduler at (default: the listen IP,
        /// or localhost when listening on every interface).
        #[arg(long)]
        external_host: Option<String>,
        /// Seconds without a heartbeat after which an executor is lost and its tasks are
        /// rescheduled on the others.
        #[arg(long, default_value_t = 30)]
        executor_timeout: u64,
    },
    /// A Ballista executor: runs tasks for the scheduler and serves their shuffle output.
    Executor {
        /// The scheduler, df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// Address of the Flight service other executors and clients fetch results from.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Port of the gRPC service the scheduler sends tasks to (on the listen IP).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// The host the scheduler and other executors reach this executor at.
        #[arg(long)]
        external_host: Option<String>,
        /// Tasks run at once (0: one per core).
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
        /// Folder for shuffle files and spills (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler (keep well below its --executor-timeout).
        #[arg(long, default_value_t = 5)]
        heartbeat: u64,
    },
}

/// Stack of the cluster's runtime threads: planning and (de)serialising deep plans recurses
/// far beyond the default 2 MiB (Ballista's own binaries use the same size).
const STACK_BYTES: usize = 32 * 1024 * 1024;

pub async fn run(_g: &Globals, role: ClusterRole) -> Result<u8, Failure> {
    let worker = std::thread::Builder::new().name("cluster".into()).stack_size(STACK_BYTES).spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_stack_size(STACK_BYTES)
            .build()
            .map_err(|e| Failure::failed(format!("cluster runtime: {e}")))?;
        runtime.block_on(serve(role))
    });
    let worker = worker.map_err(|e| Failure::failed(format!("cluster thread: {e}")))?;
    tokio::task::spawn_blocking(move || worker.join())
        .await
        .map_err(|e| Failure::failed(format!("cluster thread: {e}")))?
        .map_err(|_| Failure::failed("the cluster process panicked"))?
}

async fn serve(role: ClusterRole) -> Result<u8, Failure> {
    let result = match role {
        ClusterRole::Scheduler { listen, external_host, executor_timeout } => {
            let external_host = external_host.unwrap_or_else(|| if listen.ip().is_unspecified() { "localhost".into() } else { listen.ip().to_string() });
            run_scheduler(SchedulerOptions { listen, external_host, executor_timeout_seconds: executor_timeout }).await
        }
        ClusterRole::Executor { scheduler, listen, grpc_port, external_host, concurrency, work_dir, heartbeat } => {
            if !scheduler.starts_with("df://") {
                return Err(Failure::usage(format!("--scheduler {scheduler:?}: expected df://HOST:PORT")));
            }
            let external_host = external_host.or_else(|| (!listen.ip().is_unspecified()).then(|| listen.ip().to_string()));
            run_executor(ExecutorOptions { scheduler, listen, grpc_port, external_host, concurrency, work_dir, heartbeat_seconds: heartbeat }).await
        }
    };
    result.map_err(|e| Failure::failed(e.to_string()))?;
    Ok(exit::OK)
}
