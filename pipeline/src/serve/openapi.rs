//! The OpenAPI 3 document's frame: title, version, tags and the API-key security scheme. The
//! operations and schemas are collected from the handlers' `#[utoipa::path]` annotations by
//! the routers (`utoipa_axum`), so the document cannot drift from the code.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "medallion",
        description = "The medallion pipeline as a service: feed upload, runs as jobs, products and analytics, health and metrics. \
                       Errors are application/problem+json with the CLI's exit-code class. Send an API key as `Authorization: Bearer <key>` or `X-API-Key`.",
    ),
    modifiers(&Security),
    components(schemas(super::error::Problem)),
    tags(
        (name = "feeds", description = "Feed upload and the feed registry"),
        (name = "runs", description = "Pipeline runs: queue, poll, cancel (the run ledger)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The `api_key` scheme: a bearer token, or the same key in `X-API-Key`.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("An API key (role ingest, operator or reader)")).build()));
        components.add_security_scheme("api_key_header", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    }
}

/// The document for this binary's version.
pub fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
