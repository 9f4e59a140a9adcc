//! Opening and creating tables. A table is opened if its log exists (`None` otherwise), at its
//! latest version (loaded once per [`Lakehouse`], then brought forward incrementally);
//! [`Lakehouse::open_or_create`] creates it empty (version 0) with the requested schema,
//! partitions and [`TARGET_FILE_SIZE`], or checks that an existing table has exactly that
//! layout. Two processes creating the same table at once both end up with the one that won.

use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::StructType;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, TableProperty};

use super::{local_dir, DeltaError, Lakehouse, TARGET_FILE_SIZE};

impl Lakehouse {

    /// Loads the table if it exists (`None` if it was never created).
    pub async fn open(&self, name: &str) -> Result<Option<DeltaTable>, DeltaError> {
        let url = self.checked_url(name)?;
        if let Some(dir) = local_dir(&url) {
            if !dir.join("_delta_log").is_dir() {
                self.loaded.lock().expect("table cache lock").remove(name);
                return Ok(None);
            }
        }
        let cached = self.loaded.lock().expect("table cache lock").get(name).cloned();
        if let Some(mut table) = cached {
            // Only the commits since it was loaded are read. A table that cannot be brought
            // forward (its log was replaced, say) is loaded afresh below.
            match table.update_incremental(None).await {
                Ok(()) => {
                    self.loaded.lock().expect("table cache lock").insert(name.to_string(), table.clone());
                    return Ok(Some(table));
                }
                Err(e) => {
                    tracing::debug!(table = %url, error = %e, "reloading the table");
                    self.loaded.lock().expect("table cache lock").remove(name);
                }
            }
        }
        let mut table = self.builder(&url)?.build().map_err(|e| self.err(&url, "open", e))?;
        if !table.verify_deltatable_existence().await.map_err(|e| self.err(&url, "open", e))? {
            return Ok(None);
        }
        table.load().await.map_err(|e| self.err(&url, "open", e))?;
        self.loaded.lock().expect("table cache lock").insert(name.to_string(), table.clone());
        Ok(Some(table))
    }

    /// Loads the table, or creates it empty (version 0) with this Arrow schema and partition
    /// columns (and [`TARGET_FILE_SIZE`]). An existing table must have the same columns (names
    /// and types) and partitions. Two processes creating the same table at once both end up
    /// with the one that won.
    pub async fn open_or_create(
        &self,
        name: &str,
        schema: SchemaRef,
        partitions: &[&str],
    ) -> Result<DeltaTable, DeltaError> {
        if let Some(table) = self.open(name).await? {
            self.check_layout(&table, &schema, partitions)?;
            return Ok(table);
        }
        let url = self.checked_url(name)?;
        if let Some(dir) = local_dir(&url) {
            std::fs::create_dir_all(&dir).map_err(|e| self.err(&url, "create", e))?;
        }
        let fields: StructType = schema.as_ref().try_into_kernel().map_err(|e| self.err(&url, "create", e))?;
        for p in partitions {
            if schema.field_with_name(p).is_err() {
                return Err(DeltaError::InvalidArgument {
                    table: url.to_string(),
                    operation: "create",
                    message: format!("partition column {p} is not in the schema"),
                });
            }
        }
        let table = self.builder(&url)?.build().map_err(|e| self.err(&url, "create", e))?;
        let created = table
            .create()
            .with_table_name(name)
            .with_columns(fields.fields().cloned())
            .with_partition_columns(partitions.iter().copied())
            .with_configuration_property(TableProperty::TargetFileSize, Some(TARGET_FILE_SIZE.to_string()))
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => {
                tracing::debug!(table = %url, "created Delta table");
                Ok(table)
            }
            // Most likely another process created it first: use that one if it fits. Its
            // commit may take a moment to show in a listing (seen with SeaweedFS under load),
            // so look a few times before giving up.
            Err(e) => {
                for attempt in 0..5u64 {
                    if let Some(table) = self.open(name).await? {
                        self.check_layout(&table, &schema, partitions)?;
                        return Ok(table);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
                }
                Err(self.err(&url, "create", e))
            }
        }
    }

    /// An existing table must have the requested columns (names and types, in any order) and
    /// partition columns; nullability is not compared.
    fn check_layout(&self, table: &DeltaTable, requested: &SchemaRef, partitions: &[&str]) -> Result<(), DeltaError> {
        const OP: &str = "open_or_create";
        let url = table.table_url();
        let stored = self.table_schema(table, OP)?;
        // Compare in Delta's own type system (e.g. the time zone spelling of timestamps).
        let requested: Schema = requested
            .as_ref()
            .try_into_kernel()
            .and_then(|s: StructType| (&s).try_into_arrow())
            .map_err(|e| self.err(url, OP, e))?;
        let mut problems = Vec::new();
        for field in requested.fields() {
            match stored.field_with_name(field.name()) {
                Ok(s) if s.data_type() == field.data_type() => {}
                Ok(s) => problems.push(format!(
                    "{} is {} in the table, not {}",
                    field.name(),
                    s.data_type(),
                    field.data_type()
                )),
                Err(_) => problems.push(format!("{} is missing from the table", field.name())),
            }
        }
        for field in stored.fields() {
            if requested.field_with_name(field.name()).is_err() {
                problems.push(format!("the table has an extra column {}", field.name()));
            }
        }
        let stored_partitions = table.snapshot().map_err(|e| self.err(url, OP, e))?.metadata().partition_columns();
        if stored_partitions.iter().map(String::as_str).ne(partitions.iter().copied()) {
            problems.push(format!("it is partitioned by {stored_partitions:?}, not {partitions:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DeltaError::SchemaMismatch {
                table: url.to_string(),
                operation: OP,
                message: format!("the table exists with another layout: {}", problems.join("; ")),
            })
        }
    }
}
