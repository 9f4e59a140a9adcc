//! `medallion demo`: generates a few days of partner feeds, runs the whole pipeline on each
//! day into a local lake and the embedded SQLite warehouse, and shows where to look.

use crate::cli::DemoArgs;
use crate::commands::Globals;
use crate::generate::{GenerateOptions, Generator};
use crate::stage::Stage;
use crate::{config, exit, orchestrate, render, Failure};

pub async fn run(g: &Globals, a: DemoArgs) -> Result<u8, Failure> {
    let (dir, partners, days, rows, json) = (a.dir.as_path(), a.partners, a.days, a.rows, g.json);
    if partners == 0 || days == 0 {
        return Err(Failure::usage("--partners and --days must be at least 1"));
    }
    std::fs::create_dir_all(dir).map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
    let dir = dir.canonicalize().map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
    let (landing_dir, lake_dir) = (dir.join("landing"), dir.join("lake"));
    let start = chrono::NaiveDate::from_ymd_opt(2026, 11, 18).expect("valid date");
    let landing = config::open("landing zone", &landing_dir.display().to_string(), true).await?;
    let g = Generator::new(GenerateOptions { partners, days, start, rows, products: None, seed: 42, defect_rate: 0.02 });
    let summary = g.write(&landing, &|_: &str, _: u64| {}).await.map_err(Failure::failed)?;
    eprintln!("generated {} files ({} rows) for {} partners and {} days in {}", summary.files, summary.rows, partners, days, landing_dir.display());
    let ctx = orchestrate::context(&lake_dir.display().to_string(), Some((&landing_dir.display().to_string(), true)), None, 2, crate::lock::DEFAULT_WAIT_SECS, json).await?;
    let mut wh = orchestrate::connect(&ctx).await?;
    let mut results = Vec::new();
    for date in &summary.dates {
        let date: schemas::RunDate = date.parse().map_err(Failure::failed)?;
        let guard = orchestrate::take_lock(&ctx, &format!("medallion demo ({date})")).await?;
        orchestrate::abandon_dead_holder(&mut wh, &guard).await;
        let r = orchestrate::run_date(&ctx, &mut wh, date, "run", &Stage::ALL).await;
        guard.release().await;
        results.push(r?.summary);
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
        render::print_json(&serde_json::json!({ "dir": dir, "lake": lake_dir, "warehouse": warehouse, "runs": results }));
        return Ok(exit::OK);
    }
    let cell = |r: &Vec<Option<String>>, i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    crate::out!();
    for r in &results {
        crate::out!("  {} {:<9} {}", r.date, r.status, render::stage_list(r));
    }
    crate::out!("\nOrder KPIs (gold.order_kpis):");
    crate::out!("  {:<12} {:<8} {:>8} {:>16} {:>10}", "date", "currency", "orders", "net revenue", "customers");
    for r in &kpis {
        let money = cell(r, 3).parse::<f64>().map(|v| format!("{v:.2}")).unwrap_or_default();
        crate::out!("  {:<12} {:<8} {:>8} {:>16} {:>10}", cell(r, 0), cell(r, 1), cell(r, 2), money, cell(r, 4));
    }
    crate::out!("\nTop partners by net revenue (gold.partner_revenue):");
    for r in &top {
        crate::out!("  {:<12} {} {:.2}", cell(r, 0), cell(r, 1), cell(r, 2).parse::<f64>().unwrap_or_default());
    }
    let me = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "medallion".into());
    let lake = lake_dir.display();
    crate::out!("\nWhere to look:");
    crate::out!("  lake       {lake}   (raw/ immutable copies, bronze/ Parquet, silver/ Delta tables, gold/ Parquet)");
    crate::out!("  warehouse  {warehouse}   (open it with sqlite3 or any BI tool)");
    crate::out!("\nTry:");
    crate::out!("  {me} status --lake {lake} --date {last}");
    crate::out!("  {me} feeds --lake {lake} --date {last}");
    crate::out!("  {me} sql --lake {lake} \"SELECT * FROM gold.daily_sales ORDER BY net_revenue DESC LIMIT 5\"");
    crate::out!("  sqlite3 {lake}/warehouse.db \"SELECT * FROM category_kpis ORDER BY daily_revenue DESC LIMIT 5\"");
    Ok(exit::OK)
}
