//! `medallion ingest`: pushes local files into the landing zone as
//! `{partner}/{dataset}/{date}/{file name}`, after every check, before any byte is written.

use crate::cli::IngestArgs;
use crate::commands::Globals;
use crate::{config, exit, render, Failure};

pub async fn run(g: &Globals, a: IngestArgs) -> Result<u8, Failure> {
    schemas::contract::validate_partner_id(&a.partner).map_err(Failure::usage)?;
    let landing = config::open("landing zone", &a.landing, true).await?;
    let written = bronze::ingest_files(&landing, &a.partner, &a.dataset, a.date, &a.files).await?;
    if g.json {
        render::print_json(&serde_json::json!({ "ingested": written }));
    } else {
        for w in &written {
            crate::out!("ingested {w}");
        }
    }
    Ok(exit::OK)
}
