//! `medallion warehouse migrate|grant-readonly`: schema migrations and the read-only BI role.

use crate::cli::WarehouseAction;
use crate::commands::Globals;
use crate::{config, exit, Failure};

pub async fn run(g: &Globals, action: WarehouseAction) -> Result<u8, Failure> {
    let lake = config::open("lake", &g.lake, true).await?;
    let mut wh = config::connect_warehouse(g.warehouse.as_deref(), &lake).await?;
    match action {
        WarehouseAction::Migrate => {
            let applied = crate::orchestrate::migrate_all(&mut wh).await.map_err(Failure::from)?;
            if g.json {
                crate::render::print_json(&serde_json::json!({ "warehouse": wh.display, "applied": applied }));
            } else if applied.is_empty() {
                crate::out!("warehouse {} is up to date", wh.display);
            } else {
                for a in &applied {
                    crate::out!("applied migration {a}");
                }
            }
        }
        WarehouseAction::GrantReadonly { role, password_env } => {
            let password = match &password_env {
                Some(var) => Some(std::env::var(var).map_err(|_| Failure::usage(format!("--password-env {var}: the variable is not set")))?),
                None => None,
            };
            crate::orchestrate::migrate_all(&mut wh).await.map_err(Failure::from)?;
            wh.grant_readonly(&role, password.as_deref()).await.map_err(Failure::from)?;
            if g.json {
                crate::render::print_json(&serde_json::json!({ "warehouse": wh.display, "role": role, "password_set": password.is_some(), "granted": "SELECT on schema gold" }));
            } else {
                crate::out!("role {role} can log in and read schema gold (SELECT only) in {}", wh.display);
            }
        }
    }
    wh.close().await;
    Ok(exit::OK)
}
