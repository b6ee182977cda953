//! The OpenAPI 3.1 description of the API, served at `/openapi.json`.
//!
//! Generated, not written: each handler carries its `#[utoipa::path]`, the
//! bodies are the typed structures handlers return and read, and the
//! router is built from the same registrations ([`routes`]), so a route
//! cannot exist undescribed nor a description outlive its route. What
//! depends on the deployment — the names a request may use, the longest
//! long-poll — is then written in from [`Facts`], so a request the
//! document allows is one this server accepts. `scripts/fuzz-api` checks
//! the document against live answers.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ErrorBody;
use crate::{
    ApiState, audit, calls, chains, cluster, dashboard, health, pools, sinks, stats, streams,
    tokens, transactions,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ethgate",
        description = "Ethereum gateway: contract events, reorg-exact, from a durable outbox; transactions mined exactly once."
    ),
    modifiers(&Bearer),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Adds the bearer scheme the `security` of each route names.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `ethgate token create --policy … | --scope …`; scopes: events:read, tx:write, chain:read, admin.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every route with its description; [`crate::router`] adds the layers.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dashboard::page))
        .routes(routes!(dashboard::script))
        .routes(routes!(dashboard::style))
        .routes(routes!(stats::stats))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(document))
        .routes(routes!(chains::list))
        .routes(routes!(cluster::get))
        .routes(routes!(calls::calls))
        .routes(routes!(calls::account))
        .routes(routes!(streams::list))
        .routes(routes!(streams::one))
        .routes(routes!(streams::events))
        .routes(routes!(sinks::rewind))
        .routes(routes!(sinks::list))
        .routes(routes!(sinks::dead_letters))
        .routes(routes!(sinks::redeliver))
        .routes(routes!(transactions::submit, transactions::list))
        .routes(routes!(transactions::one))
        .routes(routes!(transactions::cancel))
        .routes(routes!(transactions::bump))
        .routes(routes!(pools::list))
        .routes(routes!(pools::rotate))
        .routes(routes!(pools::rotation))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
}

/// The generated document, before the deployment's facts.
static GENERATED: LazyLock<Value> = LazyLock::new(|| {
    let (_, doc) = routes().split_for_parts();
    serde_json::to_value(doc).unwrap_or(Value::Null)
});

/// Every (method, path) the API serves, from the generated document.
pub fn described_routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in GENERATED["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((method.clone(), path.clone()));
            }
        }
    }
    out
}

/// What the document says that depends on the deployment: the limits
/// validation applies and the names a request may use, so that a request
/// the document allows is one the server accepts.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Longest long-poll `wait`, seconds.
    pub max_wait_secs: u64,
    /// `[[chains]]` names.
    pub chains: Vec<String>,
    /// `[[policies]]` names.
    pub policies: Vec<String>,
    /// Readable streams: configured ones and the `tx.<chain>` status streams.
    pub streams: Vec<String>,
    /// `[[sinks]]` names.
    pub sinks: Vec<String>,
}

impl Facts {
    /// The facts of a running API.
    pub fn of(state: &ApiState) -> Facts {
        let mut policies: Vec<String> = state.policies.keys().cloned().collect();
        policies.sort();
        let mut streams: Vec<String> = state.streams.iter().map(|s| s.name.clone()).collect();
        if state.tx.is_some() {
            streams.extend(state.chains.iter().map(|c| format!("tx.{}", c.name)));
        }
        let mut sinks: Vec<String> = state.sinks.keys().cloned().collect();
        sinks.sort();
        Facts {
            max_wait_secs: state.max_wait.as_secs(),
            chains: state.chains.iter().map(|c| c.name.clone()).collect(),
            policies,
            streams,
            sinks,
        }
    }
}

/// A string schema limited to `names` (any non-empty string when none are
/// known).
fn one_of_names(names: &[String], description: &str) -> Value {
    if names.is_empty() {
        json!({"type": "string", "minLength": 1, "description": description})
    } else {
        json!({"enum": names, "description": description})
    }
}

/// The document for a deployment: the generated one with its facts.
pub fn spec_with(facts: &Facts) -> Value {
    let mut doc = GENERATED.clone();
    for (path, item) in doc["paths"].as_object_mut().into_iter().flatten() {
        for op in item.as_object_mut().into_iter().flatten().map(|(_, op)| op) {
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                let names = match (param["in"].as_str(), param["name"].as_str()) {
                    (Some("path"), Some("name")) if path.starts_with("/v1/streams/") => {
                        Some(&facts.streams)
                    }
                    (Some("path"), Some("name")) if path.starts_with("/v1/sinks/") => {
                        Some(&facts.sinks)
                    }
                    (Some("path"), Some("sink")) => Some(&facts.sinks),
                    (Some("path"), Some("chain")) => Some(&facts.chains),
                    (Some("query"), Some("wait")) => {
                        param["schema"]["maximum"] = facts.max_wait_secs.into();
                        None
                    }
                    _ => None,
                };
                if let Some(names) = names {
                    let what = param["description"].as_str().unwrap_or_default().to_owned();
                    param["schema"] = one_of_names(names, &what);
                }
            }
        }
    }
    let schemas = &mut doc["components"]["schemas"];
    schemas["TxSubmitBody"]["properties"]["chain"] =
        one_of_names(&facts.chains, "a [[chains]] name");
    schemas["CallRequest"]["properties"]["chain"] =
        one_of_names(&facts.chains, "a [[chains]] name");
    schemas["PolicyToken"]["properties"]["policy"] =
        one_of_names(&facts.policies, "a [[policies]] name");
    if facts.policies.is_empty() {
        // No policy exists, so no policy token can be made.
        let no_policy = |v: &Value| v["$ref"] != "#/components/schemas/PolicyToken";
        if let Some(variants) = schemas["NewTokenBody"]["oneOf"].as_array_mut() {
            variants.retain(no_policy);
        }
    }
    doc
}

/// `GET /openapi.json`: the document for this deployment.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "health", summary = "This document",
    responses((status = 200, body = Object, description = "OpenAPI 3.1")))]
pub async fn document(axum::extract::State(state): axum::extract::State<ApiState>) -> Json<Value> {
    Json(spec_with(&Facts::of(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_narrow_names_and_the_wait() {
        let facts = Facts {
            max_wait_secs: 7,
            chains: vec!["anvil".into()],
            policies: Vec::new(),
            streams: vec!["billing".into()],
            sinks: vec!["hook".into()],
        };
        let doc = spec_with(&facts);
        let events = &doc["paths"]["/v1/streams/{name}/events"]["get"]["parameters"];
        let param = |n: &str| {
            events
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == n))
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(param("name")["schema"]["enum"], json!(["billing"]));
        assert_eq!(param("wait")["schema"]["maximum"], 7);
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["TxSubmitBody"]["properties"]["chain"]["enum"],
            json!(["anvil"])
        );
        let variants = schemas["NewTokenBody"]["oneOf"].as_array().map(Vec::len);
        assert_eq!(variants, Some(1), "no policy token without policies");
        let rewind = &doc["paths"]["/v1/streams/{name}/sinks/{sink}/rewind"]["post"];
        assert_eq!(rewind["parameters"][1]["schema"]["enum"], json!(["hook"]));
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = spec_with(&Facts::default());
        let mut ids = std::collections::BTreeSet::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, i)| i)
        {
            for op in item.as_object().into_iter().flatten().map(|(_, o)| o) {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(
                    !id.is_empty() && ids.insert(id.clone()),
                    "operationId {id:?}"
                );
            }
        }
        assert_eq!(ids.len(), described_routes().len());
    }

    #[test]
    fn every_body_names_a_described_schema() {
        let doc = spec_with(&Facts::default());
        let text = doc.to_string();
        assert!(!text.contains(":null"), "no field is set to null: {text}");
        let schemas = doc["components"]["schemas"].as_object().cloned();
        let schemas = schemas.unwrap_or_default();
        let mut at = 0;
        while let Some(i) = text[at..].find("#/components/schemas/") {
            let start = at + i + "#/components/schemas/".len();
            let end = start + text[start..].find('"').unwrap_or(0);
            let name = &text[start..end];
            assert!(
                schemas.contains_key(name),
                "{name} is referenced, not described"
            );
            at = end;
        }
    }
}
