//! The OpenAPI 3.1 description of the API, served at `/openapi.json`.
//! Written by hand next to the routes it describes; a test checks every
//! route of the router appears here.

use axum::Json;
use serde_json::{Value, json};

/// The routes the document describes (method, path); kept beside the
/// document so the test can compare them with the router.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/chains"),
    ("get", "/v1/streams"),
    ("get", "/v1/streams/{name}"),
    ("get", "/v1/streams/{name}/events"),
    ("post", "/v1/streams/{name}/sinks/{sink}/rewind"),
    ("get", "/v1/sinks"),
    ("get", "/v1/sinks/{name}/dead-letters"),
    ("post", "/v1/sinks/{name}/dead-letters/{id}/redeliver"),
    ("post", "/v1/transactions"),
    ("get", "/v1/transactions"),
    ("get", "/v1/transactions/{id}"),
    ("post", "/v1/transactions/{id}/cancel"),
    ("post", "/v1/transactions/{id}/bump"),
    ("get", "/v1/accounts"),
    ("post", "/v1/pools/{name}/rotate"),
    ("get", "/v1/pools/{name}/rotation"),
    ("get", "/v1/tokens"),
    ("post", "/v1/tokens"),
    ("post", "/v1/tokens/{id}/revoke"),
    ("get", "/v1/audit"),
];

/// A response described by the error shape.
pub(crate) fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// A path parameter naming one of `names` (any string when none are
/// known): an unknown name is outside the document, and a 404.
fn path_param(param: &str, names: &[String], what: &str) -> Value {
    let schema = if names.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"enum": names})
    };
    json!({"name": param, "in": "path", "required": true, "schema": schema, "description": what})
}

fn query_int(name: &str, description: &str, min: u64, max: u64) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description,
           "schema": {"type": "integer", "minimum": min, "maximum": max}})
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
    pub fn of(state: &crate::ApiState) -> Facts {
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

/// A string schema limited to `names` (any string when none are known).
pub(crate) fn one_of_names(names: &[String], description: &str) -> Value {
    if names.is_empty() {
        json!({"type": "string", "minLength": 1, "description": description})
    } else {
        json!({"enum": names, "description": description})
    }
}

/// The document, with the default facts.
#[cfg(test)]
fn spec() -> Value {
    spec_with(&Facts {
        max_wait_secs: 60,
        ..Facts::default()
    })
}

/// The document for a deployment.
pub fn spec_with(facts: &Facts) -> Value {
    let stream = path_param("name", &facts.streams, "a stream");
    let secured = json!([{"bearer": []}]);
    let auth_errors = |ok: Value| -> Value {
        let mut r = json!({
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the events:read scope"),
        });
        r["200"] = ok;
        r
    };
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "ethgate", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Ethereum gateway: contract events, reorg-exact, from a durable outbox."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                "description": "Token from `ethgate token create --scope …`; scopes: events:read, tx:write, admin."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}},
                "EventEnvelope": {"type": "object", "properties": {
                    "id": {"type": "string", "description": "chain_id:block_hash:log_index; the same on a retraction"},
                    "kind": {"const": "event"}, "stream": {"type": "string"}, "chain_id": {"type": "integer"},
                    "block_number": {"type": "integer"}, "block_hash": {"type": "string"}, "block_timestamp": {"type": "integer"},
                    "tx_hash": {"type": "string"}, "tx_index": {"type": "integer"}, "log_index": {"type": "integer"},
                    "address": {"type": "string"}, "event": {"type": ["string", "null"]}, "signature": {"type": ["string", "null"]},
                    "topic0": {"type": ["string", "null"]},
                    "args": {"type": ["object", "null"], "description": "by parameter name; integers over 53 bits are decimal strings"},
                    "topics": {"type": "array", "items": {"type": "string"}}, "data": {"type": "string"},
                    "removed": {"type": "boolean"}, "seq": {"type": "integer"}}},
                "StreamStatus": {"type": "object", "properties": {
                    "name": {"type": "string"}, "chain": {"type": "string"}, "chain_id": {"type": "integer"},
                    "addresses": {"type": "array", "items": {"type": "string"}}, "events": {"type": "array", "items": {"type": "string"}},
                    "from_block": {"type": "integer"}, "confirmations": {"type": "string"},
                    "cursor": {"type": ["integer", "null"]}, "head": {"type": ["integer", "null"]}, "lag": {"type": ["integer", "null"]},
                    "events_recorded": {"type": "integer"}, "reorgs": {"type": "integer"}, "range_span": {"type": "integer"},
                    "last_error": {"type": ["string", "null"]}, "last_ok": {"type": ["integer", "null"]}}},
                "ChainStatus": {"type": "object", "properties": {
                    "name": {"type": "string"}, "chain_id": {"type": "integer"},
                    "head": {"type": ["integer", "null"], "description": "the best head of its endpoints"},
                    "endpoints": {"type": "array", "items": {"type": "object", "properties": {
                        "endpoint": {"type": "string", "description": "scheme://host:port only"},
                        "up": {"type": "boolean"}, "head": {"type": ["integer", "null"]},
                        "lag": {"type": ["integer", "null"], "description": "blocks behind the best head"},
                        "serves_chain": {"type": ["boolean", "null"], "description": "null until it answered eth_chainId"},
                        "answered_chain_id": {"type": ["integer", "null"]},
                        "error": {"type": ["string", "null"]}, "probed_at_ms": {"type": ["integer", "null"]}}}}}}
            }
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "up"}}}},
            "/readyz": {"get": {"summary": "Readiness: store reachable, every chain answered recently",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/chains": {"get": {"summary": "Every chain's endpoints: head, up or down, lag behind the best, chain id check", "security": secured,
                "responses": auth_errors(json!({"description": "chains", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"chains": {"type": "array", "items": {"$ref": "#/components/schemas/ChainStatus"}}}}}}}))}},
            "/v1/streams": {"get": {"summary": "Every stream with its cursor, head and lag", "security": secured,
                "responses": auth_errors(json!({"description": "streams", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"streams": {"type": "array", "items": {"$ref": "#/components/schemas/StreamStatus"}}}}}}}))}},
            "/v1/streams/{name}": {"get": {"summary": "One stream's status", "security": secured, "parameters": [stream.clone()],
                "responses": {
                    "200": {"description": "status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StreamStatus"}}}},
                    "401": error_response("missing or unknown token"), "403": error_response("token lacks the events:read scope"),
                    "404": error_response("no such stream")}}},
            "/v1/streams/{name}/events": {"get": {"summary": "Envelopes with seq > after, in order; long-polls with wait",
                "security": secured,
                "parameters": [stream,
                    query_int("after", "return envelopes after this seq", 0, i64::MAX as u64),
                    query_int("limit", "page size (default 100)", 1, 1000),
                    query_int("wait", "seconds to hold the request while nothing is new (at most [api] max_wait_secs)", 0, facts.max_wait_secs)],
                "responses": {
                    "200": {"description": "a page", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "stream": {"type": "string"}, "next": {"type": "integer", "description": "pass as `after` for the next page"},
                        "events": {"type": "array", "items": {"$ref": "#/components/schemas/EventEnvelope"}}}}}}},
                    "400": error_response("bad parameter; `field` names it"),
                    "401": error_response("missing or unknown token"), "403": error_response("token lacks the events:read scope"),
                    "404": error_response("no such stream")}}}
        }
    });
    doc["paths"]["/v1/streams/{name}/sinks/{sink}/rewind"] = rewind_path(facts);
    doc["paths"]["/v1/sinks"] = sinks_path();
    doc["paths"]["/v1/sinks/{name}/dead-letters"] = dead_letters_path(facts);
    doc["paths"]["/v1/sinks/{name}/dead-letters/{id}/redeliver"] = redeliver_path(facts);
    for (path, item) in crate::openapi_tx::paths(facts)
        .into_iter()
        .chain(crate::openapi_pools::paths())
        .chain(crate::openapi_admin::paths(facts))
    {
        doc["paths"][path] = item;
    }
    doc
}

fn rewind_path(facts: &Facts) -> Value {
    json!({"post": {"summary": "Replay: move a sink's cursor back (scope admin)",
        "security": [{"bearer": []}],
        "parameters": [path_param("name", &facts.streams, "a stream"), path_param("sink", &facts.sinks, "a sink it is delivered to")],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "description": "exactly one of seq (redeliver everything after it; at most the stream's last seq) or block (redeliver from that block on)",
            "oneOf": [
                {"type": "object", "required": ["seq"], "additionalProperties": false,
                 "properties": {"seq": {"type": "integer", "minimum": 0, "maximum": i64::MAX}}},
                {"type": "object", "required": ["block"], "additionalProperties": false,
                 "properties": {"block": {"type": "integer", "minimum": 0, "maximum": i64::MAX}}}]}}}},
        "responses": {
            "200": {"description": "the new cursor", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "stream": {"type": "string"}, "sink": {"type": "string"}, "cursor": {"type": "integer"}}}}}},
            "400": error_response("bad body; `field` names it"),
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the admin scope"),
            "404": error_response("no such stream, or the stream is not delivered to that sink"),
            "409": error_response("seq is past the stream's last seq")}}})
}

fn sinks_path() -> Value {
    let item = json!({"type": "object", "properties": {
        "sink": {"type": "string"}, "stream": {"type": "string"}, "cursor": {"type": "integer"}, "lag": {"type": "integer"},
        "delivered": {"type": "integer"}, "failures": {"type": "integer"}, "dead_letters": {"type": "integer"},
        "updated_at": {"type": ["integer", "null"]}}});
    let body = json!({"type": "object", "properties": {"sinks": {"type": "array", "items": item}}});
    json!({"get": {"summary": "Every sink's cursor, lag, delivered, failure and dead-letter counts per stream",
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "sinks", "content": {"application/json": {"schema": body}}},
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the events:read scope")}}})
}

fn dead_letters_path(facts: &Facts) -> Value {
    let item = json!({"type": "object", "properties": {
        "id": {"type": "integer"}, "stream": {"type": "string"}, "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"},
        "count": {"type": "integer"}, "error": {"type": "string"}, "created_at": {"type": "integer"},
        "envelopes": {"type": "array", "items": {"$ref": "#/components/schemas/EventEnvelope"}}}});
    json!({"get": {"summary": "Batches the sink gave up on (oldest first)", "security": [{"bearer": []}],
        "parameters": [path_param("name", &facts.sinks, "a sink"), query_int("limit", "most dead letters returned (default 100)", 1, 1000)],
        "responses": {
            "200": {"description": "dead letters", "content": {"application/json": {"schema": {"type": "object", "properties": {
                "sink": {"type": "string"}, "dead_letters": {"type": "array", "items": item}}}}}},
            "400": error_response("bad parameter; `field` names it"),
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the events:read scope"),
            "404": error_response("no such sink")}}})
}

fn redeliver_path(facts: &Facts) -> Value {
    json!({"post": {"summary": "Send a dead letter again (scope admin); removed once acknowledged",
        "security": [{"bearer": []}],
        "parameters": [path_param("name", &facts.sinks, "a sink"), {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0, "maximum": i64::MAX}}],
        "responses": {
            "200": {"description": "redelivered"},
            "400": error_response("bad id"),
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the admin scope"),
            "404": error_response("no such sink or dead letter"),
            "502": error_response("the sink refused again; the dead letter stays")}}})
}

/// `GET /openapi.json`: the document for this deployment.
pub async fn document(
    axum::extract::State(state): axum::extract::State<crate::ApiState>,
) -> Json<Value> {
    Json(spec_with(&Facts::of(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = spec();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        let paths: std::collections::BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
        assert_eq!(doc["paths"].as_object().map(|p| p.len()), Some(paths.len()));
    }
}
