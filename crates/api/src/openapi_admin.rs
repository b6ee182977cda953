//! The OpenAPI description of `/v1/tokens` and `/v1/audit`, beside the
//! rest of the document.

use serde_json::{Value, json};

use crate::openapi::error_response;

fn token_schema() -> Value {
    let when = json!({"type": ["integer", "null"], "description": "Unix seconds"});
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "label": {"type": "string"},
        "scopes": {"type": "array", "items": {"enum": ["events:read", "tx:write", "admin"]}},
        "policy": {"type": ["string", "null"]}, "created_at": {"type": "integer"},
        "expires_at": when, "revoked_at": when, "last_used_at": when}})
}

fn new_token_schema(facts: &crate::openapi::Facts) -> Value {
    let label = json!({"type": "string", "maxLength": 100});
    let expires = json!({"type": "string", "pattern": "^[1-9][0-9]{0,3}[smhd]$",
        "description": "lifetime, e.g. \"90d\" or \"12h\""});
    let policy = crate::openapi::one_of_names(&facts.policies, "a [[policies]] name");
    let scopes = json!({"type": "array", "minItems": 1, "items": {"enum": ["events:read", "tx:write", "admin"]}});
    let mut variants = vec![
        json!({"type": "object", "required": ["scopes"], "additionalProperties": false,
        "properties": {"label": label, "scopes": scopes, "expires": expires}}),
    ];
    if !facts.policies.is_empty() {
        variants.push(
            json!({"type": "object", "required": ["policy"], "additionalProperties": false,
            "properties": {"label": label, "policy": policy, "expires": expires}}),
        );
    }
    json!({"description": "a policy or scopes, not both", "oneOf": variants})
}

/// The paths, to merge into the document.
pub fn paths(facts: &crate::openapi::Facts) -> Vec<(&'static str, Value)> {
    let secured = json!([{"bearer": []}]);
    let refused = "the token may not manage tokens (admin scope or a policy with manage_tokens)";
    vec![
        (
            "/v1/tokens",
            json!({
                "get": {"summary": "Every token, revoked ones included; never a secret", "security": secured,
                    "responses": {
                        "200": {"description": "tokens", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"tokens": {"type": "array", "items": token_schema()}}}}}},
                        "401": error_response("missing, unknown, revoked or expired token"), "403": error_response(refused)}},
                "post": {"summary": "Create a token held to a policy or scopes; the answer shows it once", "security": secured,
                    "requestBody": {"required": true, "content": {"application/json": {"schema": new_token_schema(facts)}}},
                    "responses": {
                        "201": {"description": "the token, shown this once", "content": {"application/json": {"schema": {"type": "object",
                            "properties": {"id": {"type": "string"}, "token": {"type": "string"}, "label": {"type": "string"},
                                "policy": {"type": ["string", "null"]}, "scopes": {"type": "array", "items": {"type": "string"}},
                                "expires_at": {"type": ["integer", "null"]}}}}}},
                        "400": error_response("a field is invalid; `field` names it"),
                        "401": error_response("missing, unknown, revoked or expired token"), "403": error_response(refused)}}}),
        ),
        (
            "/v1/tokens/{id}/revoke",
            json!({"post": {"summary": "Revoke a token: refused on every path from the next request", "security": secured,
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "revoked", "content": {"application/json": {"schema": {"type": "object",
                        "properties": {"id": {"type": "string"}, "revoked": {"const": true}}}}}},
                    "401": error_response("missing, unknown, revoked or expired token"), "403": error_response(refused),
                    "404": error_response("no such unrevoked token")}}}),
        ),
        (
            "/v1/audit",
            json!({"get": {"summary": "The audit trail: every admin action and transaction request, with who, when and the outcome",
                "security": secured,
                "parameters": [
                    {"name": "after", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {
                    "200": {"description": "entries after `after`, oldest first", "content": {"application/json": {"schema": {"type": "object",
                        "properties": {"next": {"type": "integer"}, "entries": {"type": "array", "items": {"type": "object", "properties": {
                            "id": {"type": "integer"}, "at_ms": {"type": "integer"}, "token_id": {"type": ["string", "null"]},
                            "label": {"type": "string"},
                            "action": {"enum": ["tx_submit", "tx_cancel", "tx_bump", "pool_rotate", "sink_rewind", "redeliver", "token_create", "token_revoke"]},
                            "target": {"type": "string"}, "outcome": {"enum": ["accepted", "refused", "failed"]},
                            "detail": {"type": "string"}}}}}}}}},
                    "400": error_response("a parameter is invalid"),
                    "401": error_response("missing, unknown, revoked or expired token"),
                    "403": error_response("the token may not read the audit trail (admin scope or a policy with audit)")}}}),
        ),
    ]
}
