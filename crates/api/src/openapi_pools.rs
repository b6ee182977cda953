//! The OpenAPI description of `/v1/accounts` and the pools' rotation
//! routes, beside the rest of the document.

use serde_json::{Value, json};

use crate::openapi::error_response;

fn rotation_schema() -> Value {
    json!({"type": ["object", "null"], "properties": {
        "id": {"type": "string"}, "pool": {"type": "string"},
        "step": {"enum": ["keys", "funding", "registering", "switching", "draining", "sweeping", "done"]},
        "attempt": {"type": "integer", "description": "bumped each time a stopped rotation is retried"},
        "error": {"type": ["string", "null"], "description": "why it stopped; run the rotation again to retry"},
        "old": {"type": "array", "items": {"type": "string"}},
        "new": {"type": "array", "items": {"type": "string"}},
        "multisig_transaction": {"type": "object", "description": "present while an external master must sign setOperators",
            "properties": {"chain_id": {"type": "integer"}, "to": {"type": "string"}, "value": {"type": "string"},
                "data": {"type": "string"}, "function": {"type": "string"}}},
        "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}}})
}

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "a [[pools]] name"})
}

/// The paths, to merge into the document.
pub fn paths() -> Vec<(&'static str, Value)> {
    let secured = json!([{"bearer": []}]);
    let wei = json!({"type": ["string", "null"], "description": "wei, decimal"});
    let pool = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "chain": {"type": "string"},
        "members": {"type": "array", "items": {"type": "object", "properties": {
            "address": {"type": "string"},
            "state": {"enum": ["new", "active", "retiring", "retired"]},
            "managed": {"type": "boolean", "description": "its keystore was made by a rotation"},
            "balance": wei}}},
        "funding": {"type": ["string", "null"]}, "min_balance": wei, "top_up": wei,
        "daily_top_up_cap": wei, "topped_up_today": wei,
        "alerts": {"type": "array", "items": {"type": "string"}, "description": "e.g. the daily top-up cap is reached"},
        "registry": {"type": ["string", "null"]}, "rotation": rotation_schema()}});
    vec![
        (
            "/v1/accounts",
            json!({"get": {"summary": "Pools with members, balances, top-ups, alerts and rotation; every sending account (scope tx:write)",
                "security": secured,
                "responses": {
                    "200": {"description": "pools and accounts", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "pools": {"type": "array", "items": pool},
                        "accounts": {"type": "array", "items": {"type": "object", "properties": {
                            "chain": {"type": "string"}, "address": {"type": "string"}}}}}}}}},
                    "401": error_response("missing or unknown token"), "403": error_response("token lacks the tx:write scope"),
                    "503": error_response("no accounts are configured")}}}),
        ),
        (
            "/v1/pools/{name}/rotate",
            json!({"post": {"summary": "Rotate a pool's operational accounts in one master transaction (scope admin); resumes an unfinished rotation",
                "security": secured, "parameters": [name_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "additionalProperties": false, "properties": {
                    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200, "description": "a repeated key returns the rotation it started, even finished"}}}}}},
                "responses": {
                    "202": {"description": "the rotation, running in the gateway", "content": {"application/json": {"schema": rotation_schema()}}},
                    "400": error_response("a bad body; `field` names it"),
                    "409": error_response("the pool lacks a setting rotation needs; `message` names it"),
                    "401": error_response("missing or unknown token"), "403": error_response("token lacks the admin scope"),
                    "404": error_response("no such pool")}}}),
        ),
        (
            "/v1/pools/{name}/rotation",
            json!({"get": {"summary": "The pool's unfinished or latest rotation (scope tx:write)",
                "security": secured, "parameters": [name_param()],
                "responses": {
                    "200": {"description": "the rotation, or null", "content": {"application/json": {"schema": rotation_schema()}}},
                    "401": error_response("missing or unknown token"), "403": error_response("token lacks the tx:write scope"),
                    "404": error_response("no such pool")}}}),
        ),
    ]
}
