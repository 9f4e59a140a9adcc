//! `medallion generate`: deterministic synthetic partner feeds in the landing-zone layout.

use crate::cli::GenerateArgs;
use crate::commands::Globals;
use crate::generate::{GenerateOptions, Generator};
use crate::{config, exit, render, Failure};

pub async fn run(g: &Globals, a: GenerateArgs) -> Result<u8, Failure> {
    if !(0.0..=1.0).contains(&a.defect_rate) {
        return Err(Failure::usage(format!("--defect-rate must be between 0 and 1, got {}", a.defect_rate)));
    }
    if a.partners == 0 || a.days == 0 {
        return Err(Failure::usage("--partners and --days must be at least 1"));
    }
    let landing = config::open("landing zone", &a.out, true).await?;
    let opts = GenerateOptions { partners: a.partners, days: a.days, start: a.start_date.date(), rows: a.rows, products: a.products, seed: a.seed, defect_rate: a.defect_rate };
    let quiet = g.quiet;
    let on_file = |path: &str, bytes: u64| {
        if !quiet {
            tracing::info!("wrote {path} ({bytes} bytes)");
        }
    };
    let summary = Generator::new(opts).write(&landing, &on_file).await.map_err(Failure::failed)?;
    if g.json {
        render::print_json(&summary);
    } else {
        crate::out!(
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
