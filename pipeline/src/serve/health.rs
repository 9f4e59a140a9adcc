//! `GET /healthz` (the process answers) and `GET /readyz` (the lake answers, the warehouse
//! answers and has every migration this binary knows applied). Readiness never migrates: the
//! server applies the migrations once, at start. Both are open (no API key), for load
//! balancers and the docker-compose healthcheck.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// ok, or unavailable.
    pub status: String,
    /// Each check (lake, warehouse, migrations): ok, or why not.
    #[schema(value_type = Object)]
    pub checks: serde_json::Map<String, serde_json::Value>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz)).routes(routes!(readyz))
}

/// Liveness: the server process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into(), checks: serde_json::Map::new() })
}

/// Readiness: the lake and the warehouse can be reached and the warehouse is migrated.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Health),
    (status = 503, description = "Not ready: the failing checks say why", body = Health),
))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let mut put = |name: &str, r: Result<(), String>| {
        ok &= r.is_ok();
        checks.insert(name.into(), r.err().unwrap_or_else(|| "ok".into()).into());
    };
    put("lake", state.lake.check().await.map_err(|e| e.to_string()));
    put("landing", state.landing.check().await.map_err(|e| e.to_string()));
    put("warehouse", migrations_applied(&state).await);
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Health { status: if ok { "ok" } else { "unavailable" }.into(), checks }))
}

/// Every migration version this binary knows is recorded in the warehouse.
async fn migrations_applied(state: &AppState) -> Result<(), String> {
    let table = state.dialect().table("medallion", "schema_migrations");
    let rows = state.query(&format!("SELECT CAST(version AS TEXT) FROM {table}"), &[]).await.map_err(|e| e.detail)?;
    let applied: Vec<i64> = rows.into_iter().filter_map(|r| r.into_iter().next().flatten()).filter_map(|v| v.parse().ok()).collect();
    let missing: Vec<String> = gold::warehouse::GOLD_MIGRATIONS
        .iter()
        .chain(crate::ledger::MIGRATIONS)
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{:03} {}", m.version, m.name))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("migrations not applied: {} (restart the server or run `medallion warehouse migrate`)", missing.join(", ")))
    }
}
