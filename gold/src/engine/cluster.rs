//! The Ballista side of the engine: the client session, the plan codec, and the scheduler and
//! executor processes `medallion cluster` runs. Scheduler and executors know gold's UDFs, read
//! the lake with its own object-store configuration, and decode [`SilverScan`]s and in-memory
//! tables; a task lost with its executor is retried by Ballista on another one
//! (`task_max_failures`, stage re-runs on lost shuffle output).

use std::net::SocketAddr;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista::prelude::SessionContextExt;
use ballista_core::config::BALLISTA_CLIENT_GRPC_MAX_MESSAGE_SIZE;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use deltalake::datafusion::common::{DataFusionError, Result as DfResult, TableReference};
use deltalake::datafusion::datasource::memory::MemTable;
use deltalake::datafusion::datasource::TableProvider;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionStateBuilder;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};

use super::{gold_functions, gold_state, lake_runtime, LakeStores, SilverScan, SilverScanWire, MAX_MESSAGE_BYTES};
use crate::GoldError;

/// A session whose queries run on the scheduler at `url` (`df://HOST:PORT`).
pub(crate) async fn client_context(url: &str) -> Result<SessionContext, GoldError> {
    reach_scheduler(url).await?;
    let config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(GoldCodec::default()))
        .set_str(BALLISTA_CLIENT_GRPC_MAX_MESSAGE_SIZE, &MAX_MESSAGE_BYTES.to_string());
    let state = gold_state(config, lake_runtime(None)?)?;
    let ctx = SessionContext::remote_with_state(url, state).await?;
    // Ballista sets the session's scalar functions to its own list: ours are added after.
    for f in gold_functions().into_values() {
        ctx.register_udf(f.as_ref().clone());
    }
    Ok(ctx)
}

/// Connects to the scheduler once before planning, so that one that is down or unreachable is
/// a typed I/O error (connection refused, timed out), which `run` retries as transient,
/// rather than an error Ballista reports as text.
async fn reach_scheduler(url: &str) -> Result<(), GoldError> {
    let err = |source| GoldError::Scheduler { url: url.to_string(), source };
    let parsed = url::Url::parse(url).map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
        return Err(err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "expected df://HOST:PORT")));
    };
    let target = (host.to_string(), port);
    let reached = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::net::ToSocketAddrs;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
        for addr in target.to_socket_addrs()? {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10)) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
        }
        Err(last)
    })
    .await
    .map_err(|e| err(std::io::Error::other(e)))?;
    reached.map_err(err)
}

/// Errors starting or running a cluster process.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{what} {address}: {source}")]
    Ballista { what: &'static str, address: String, source: ballista_core::error::BallistaError },
    #[error("{what}: {source}")]
    Engine { what: &'static str, source: DataFusionError },
    #[error("{0}")]
    Config(String),
}

/// How the scheduler watches its executors.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub listen: SocketAddr,
    /// The host executors and clients reach this scheduler at.
    pub external_host: String,
    /// An executor silent this long is lost: its running tasks are rescheduled elsewhere.
    pub executor_timeout_seconds: u64,
}

/// Runs a Ballista scheduler until the process ends.
pub async fn run_scheduler(o: SchedulerOptions) -> Result<(), ClusterError> {
    let runtime = lake_runtime(None).map_err(|source| ClusterError::Engine { what: "scheduler runtime", source })?;
    let session_builder = move |config: SessionConfig| -> DfResult<deltalake::datafusion::execution::session_state::SessionState> {
        let base = ballista_core::utils::default_session_builder(config)?;
        let mut functions: Vec<_> = base.scalar_functions().values().cloned().collect();
        functions.extend(gold_functions().into_values());
        Ok(SessionStateBuilder::new_from_existing(base).with_runtime_env(runtime.clone()).with_scalar_functions(functions).build())
    };
    let timeout = o.executor_timeout_seconds.max(2);
    let mut config = SchedulerConfig::default()
        .with_hostname(o.external_host.clone())
        .with_port(o.listen.port())
        .with_grpc_server_max_decoding_message_size(MAX_MESSAGE_BYTES)
        .with_grpc_server_max_encoding_message_size(MAX_MESSAGE_BYTES)
        .with_grpc_client_max_message_size(MAX_MESSAGE_BYTES)
        .with_no_executors_grace_period_seconds(timeout)
        .with_override_session_builder(Arc::new(session_builder));
    config.bind_host = o.listen.ip().to_string();
    config.executor_timeout_seconds = timeout;
    config.expire_dead_executor_interval_seconds = (timeout / 3).max(1);
    config.override_logical_codec = Some(Arc::new(GoldCodec::default()));
    let address = o.listen.to_string();
    let cluster = BallistaCluster::new_from_config(&config).await.map_err(|source| ClusterError::Ballista { what: "scheduler", address: address.clone(), source })?;
    start_server(cluster, o.listen, Arc::new(config)).await.map_err(|source| ClusterError::Ballista { what: "scheduler", address, source })
}

/// Where an executor serves and which scheduler it works for.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `df://HOST:PORT`.
    pub scheduler: String,
    /// The Flight address shuffle data is fetched from.
    pub listen: SocketAddr,
    /// The gRPC port the scheduler sends tasks to.
    pub grpc_port: u16,
    /// The host the scheduler and other executors reach this executor at.
    pub external_host: Option<String>,
    /// Tasks run at once (0: one per core).
    pub concurrency: usize,
    pub work_dir: Option<std::path::PathBuf>,
    pub heartbeat_seconds: u64,
}

/// Runs a Ballista executor until the process ends (or the scheduler stops it).
pub async fn run_executor(o: ExecutorOptions) -> Result<(), ClusterError> {
    let url = url::Url::parse(&o.scheduler).map_err(|e| ClusterError::Config(format!("--scheduler {}: {e}", o.scheduler)))?;
    let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
        return Err(ClusterError::Config(format!("--scheduler {}: expected df://HOST:PORT", o.scheduler)));
    };
    let mut registry = BallistaFunctionRegistry::default();
    registry.scalar_functions.extend(gold_functions());
    let stores = Arc::new(LakeStores::default());
    let work_dir = o.work_dir.clone();
    let runtime_producer = move |_: &SessionConfig| {
        let mut b = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
        if let Some(d) = &work_dir {
            b = b.with_temp_file_path(d.clone());
        }
        b.build_arc()
    };
    let config = ExecutorProcessConfig {
        bind_host: o.listen.ip().to_string(),
        port: o.listen.port(),
        grpc_port: o.grpc_port,
        external_host: o.external_host.clone(),
        scheduler_host: host.to_string(),
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        vcores: o.concurrency,
        work_dir: o.work_dir.as_ref().map(|d| d.display().to_string()),
        executor_heartbeat_interval_seconds: o.heartbeat_seconds.max(1),
        grpc_max_decoding_message_size: MAX_MESSAGE_BYTES,
        grpc_max_encoding_message_size: MAX_MESSAGE_BYTES,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(Arc::new(runtime_producer)),
        override_execution_engine: fault::engine(),
        ..ExecutorProcessConfig::default()
    };
    let address = o.listen.to_string();
    start_executor_process(Arc::new(config)).await.map_err(|source| ClusterError::Ballista { what: "executor", address, source })
}

/// The `cluster_task` fault point (`MEDALLION_FAULT`, see `lake::fault`): reached by every
/// task an executor starts, before it runs. Installed only when `MEDALLION_FAULT` is set, so a
/// test can stop an executor mid-query at a known point and kill it there.
mod fault {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use ballista_core::serde::protobuf::{RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport};
    use ballista_core::JobId;
    use ballista_executor::execution_engine::{DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor};
    use deltalake::datafusion::common::{DataFusionError, Result};
    use deltalake::datafusion::execution::TaskContext;
    use deltalake::datafusion::physical_plan::metrics::MetricsSet;
    use deltalake::datafusion::physical_plan::ExecutionPlan;
    use deltalake::datafusion::prelude::SessionConfig;

    pub(super) fn engine() -> Option<Arc<dyn ExecutionEngine>> {
        std::env::var_os("MEDALLION_FAULT").map(|_| Arc::new(FaultEngine { inner: DefaultExecutionEngine::new(), tasks: Arc::new(AtomicUsize::new(0)) }) as Arc<dyn ExecutionEngine>)
    }

    struct FaultEngine {
        inner: DefaultExecutionEngine,
        tasks: Arc<AtomicUsize>,
    }

    impl ExecutionEngine for FaultEngine {
        fn create_query_stage_exec(
            &self,
            job_id: JobId,
            stage_id: usize,
            task_id: usize,
            global_output_partition_ids: Vec<usize>,
            plan: Arc<dyn ExecutionPlan>,
            work_dir: &str,
            config: &SessionConfig,
        ) -> Result<Arc<dyn QueryStageExecutor>> {
            let inner = self.inner.create_query_stage_exec(job_id, stage_id, task_id, global_output_partition_ids, plan, work_dir, config)?;
            Ok(Arc::new(FaultStage { inner, tasks: self.tasks.clone() }))
        }
    }

    #[derive(Debug)]
    struct FaultStage {
        inner: Arc<dyn QueryStageExecutor>,
        tasks: Arc<AtomicUsize>,
    }

    impl std::fmt::Display for FaultStage {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            std::fmt::Display::fmt(&self.inner, f)
        }
    }

    #[async_trait::async_trait]
    impl QueryStageExecutor for FaultStage {
        async fn execute_query_stage(&self, task_id: usize, context: Arc<TaskContext>) -> Result<Vec<ShuffleWritePartition>> {
            let n = self.tasks.fetch_add(1, Ordering::SeqCst);
            if lake::fault::point("cluster_task", n).await.is_some() {
                return Err(DataFusionError::Execution(format!("fault injection: cluster_task#{n}")));
            }
            self.inner.execute_query_stage(task_id, context).await
        }
        fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
            self.inner.collect_plan_metrics()
        }
        fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
            self.inner.collect_runtime_stats_reports()
        }
        fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
            self.inner.collect_window_state_reports()
        }
        fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
            self.inner.collect_column_stats()
        }
    }
}

/// Plans' table codec: [`SilverScan`]s and in-memory tables, the rest as Ballista does.
#[derive(Debug, Default)]
pub struct GoldCodec {
    inner: BallistaLogicalExtensionCodec,
}

const TAG_SILVER: u8 = 1;
const TAG_MEMORY: u8 = 2;

impl GoldCodec {
    fn encode_memory(table: &MemTable, buf: &mut Vec<u8>) -> DfResult<()> {
        buf.push(TAG_MEMORY);
        let partitions = table.batches.len() as u32;
        buf.extend_from_slice(&partitions.to_le_bytes());
        for p in &table.batches {
            let batches = p.try_read().map_err(|_| DataFusionError::Internal("in-memory table is being written while its plan is serialised".into()))?;
            let mut bytes = Vec::new();
            {
                let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, table.schema().as_ref())?;
                for b in batches.iter() {
                    w.write(b)?;
                }
                w.finish()?;
            }
            buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            buf.extend_from_slice(&bytes);
        }
        Ok(())
    }

    fn decode_memory(mut buf: &[u8], schema: SchemaRef) -> DfResult<MemTable> {
        let bad = || DataFusionError::Internal("truncated in-memory table in a plan".into());
        let take = |buf: &mut &[u8], n: usize| -> DfResult<Vec<u8>> {
            if buf.len() < n {
                return Err(bad());
            }
            let (head, rest) = buf.split_at(n);
            *buf = rest;
            Ok(head.to_vec())
        };
        let partitions = u32::from_le_bytes(take(&mut buf, 4)?.try_into().map_err(|_| bad())?);
        let mut out = Vec::with_capacity(partitions as usize);
        for _ in 0..partitions {
            let len = u64::from_le_bytes(take(&mut buf, 8)?.try_into().map_err(|_| bad())?) as usize;
            let bytes = take(&mut buf, len)?;
            let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
            out.push(reader.collect::<Result<Vec<_>, _>>()?);
        }
        // The batches keep their own schema; the table's must match it field by field.
        MemTable::try_new(schema, out)
    }
}

impl LogicalExtensionCodec for GoldCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[deltalake::datafusion::logical_expr::LogicalPlan],
        ctx: &deltalake::datafusion::execution::TaskContext,
    ) -> DfResult<deltalake::datafusion::logical_expr::Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &deltalake::datafusion::logical_expr::Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &deltalake::datafusion::execution::TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match buf.first() {
            Some(&TAG_SILVER) => {
                let wire: SilverScanWire = serde_json::from_slice(&buf[1..]).map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(Arc::new(SilverScan::from_wire(schema, wire)))
            }
            Some(&TAG_MEMORY) => Ok(Arc::new(Self::decode_memory(&buf[1..], schema)?)),
            _ => self.inner.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(&self, table_ref: &TableReference, node: Arc<dyn TableProvider>, buf: &mut Vec<u8>) -> DfResult<()> {
        if let Some(scan) = node.downcast_ref::<SilverScan>() {
            buf.push(TAG_SILVER);
            serde_json::to_writer(&mut *buf, &scan.wire).map_err(|e| DataFusionError::External(Box::new(e)))?;
            return Ok(());
        }
        if let Some(mem) = node.downcast_ref::<MemTable>() {
            return Self::encode_memory(mem, buf);
        }
        self.inner.try_encode_table_provider(table_ref, node, buf)
    }
}



#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::RecordBatch;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn memory_tables_round_trip() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]))]).unwrap();
        let t = MemTable::try_new(schema.clone(), vec![vec![batch.clone()], vec![]]).unwrap();
        let mut buf = Vec::new();
        GoldCodec::encode_memory(&t, &mut buf).unwrap();
        let back = GoldCodec::decode_memory(&buf[1..], schema).unwrap();
        assert_eq!(back.batches.len(), 2);
        assert_eq!(back.batches[0].try_read().unwrap().as_slice(), &[batch]);
        assert!(back.batches[1].try_read().unwrap().is_empty());
        assert!(GoldCodec::decode_memory(&buf[1..buf.len() - 3], t.schema()).is_err());
    }
}
