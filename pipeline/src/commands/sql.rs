//! `medallion sql`: ad-hoc DataFusion SQL over bronze, silver and gold (computed from silver),
//! printed as a table, CSV or JSON. Read-only: only queries run (see `gold::read_only_query`).

use crate::cli::{SqlArgs, SqlFormat};
use crate::commands::Globals;
use crate::{config, exit, Failure};

pub async fn run(g: &Globals, a: SqlArgs) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, true).await?;
    let ctx = gold::sql_session(&lake).await.map_err(|e| Failure::failed(e.to_string()))?;
    // Read-only: a query that would write (or read outside the lake) is refused, exit 2.
    let df = gold::read_only_query(&ctx, &a.query).await.map_err(|e| Failure::usage(format!("query: {e} (medallion sql only reads: queries over the lake's tables; DDL, DML, COPY and other statements are refused)")))?;
    let batches = df.collect().await.map_err(|e| Failure::failed(format!("query: {e}")))?;
    if g.json {
        // --json: one object, {"rows": [...]} (each row an object, as with --format json).
        let mut buf = Vec::new();
        let mut w = arrow::json::ArrayWriter::new(&mut buf);
        batches.iter().try_for_each(|b| w.write(b)).and_then(|_| w.finish()).map_err(|e| Failure::failed(format!("writing the result: {e}")))?;
        drop(w);
        let rows: serde_json::Value = if buf.is_empty() { serde_json::json!([]) } else { serde_json::from_slice(&buf).map_err(|e| Failure::failed(format!("writing the result: {e}")))? };
        crate::render::print_json(&serde_json::json!({ "rows": rows }));
        return Ok(exit::OK);
    }
    // A reader that has gone (`medallion sql … | head`) ends the command quietly (141).
    let mut out = crate::render::Stdout::lock();
    let written = match a.format {
        SqlFormat::Table => arrow::util::pretty::pretty_format_batches(&batches)
            .map(|t| {
                use std::io::Write;
                writeln!(out, "{t}").map_err(|e| arrow::error::ArrowError::IoError(e.to_string(), e))
            })
            .and_then(|r| r),
        SqlFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            batches.iter().try_for_each(|b| w.write(b))
        }
        SqlFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            batches.iter().try_for_each(|b| w.write(b)).and_then(|_| w.finish())
        }
    };
    written.map_err(|e| Failure::failed(format!("writing the result: {e}")))?;
    Ok(exit::OK)
}
