//! The OpenAPI description of `/v1/transactions`, beside the rest of the
//! document (split only to keep files short).

use serde_json::{Value, json};

use crate::openapi::error_response;

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn request_schema(facts: &crate::openapi::Facts) -> Value {
    let uint = |d: &str| json!({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$"}], "description": d});
    json!({"type": "object", "required": ["chain", "from", "to", "idempotency_key"], "additionalProperties": false, "properties": {
        "chain": crate::openapi::one_of_names(&facts.chains, "a [[chains]] name"),
        "from": {"type": "string", "description": "a configured account address, or a [[pools]] name (least-loaded account)"},
        "to": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"},
        "data": {"type": "string", "description": "0x calldata; or give function + args"},
        "function": {"type": "string", "description": "e.g. \"charge(uint256)\""},
        "args": {"type": "array"},
        "value": uint("wei"),
        "gas_limit": {"type": "integer", "minimum": 21000, "description": "default: estimate × tx.gas_margin"},
        "speed": {"enum": ["slow", "normal", "fast"]},
        "max_fee_per_gas": uint("cap, wei"),
        "max_priority_fee_per_gas": uint("cap, wei; at most max_fee_per_gas"),
        "valid_until": {"type": "integer", "minimum": 0, "description": "unix seconds; then cancelled as expired"},
        "confirmations": {"type": "integer", "minimum": 0, "maximum": 1000},
        "metadata": {"description": "any JSON, echoed back"},
        "errors": {"type": "array", "items": {"type": "string"}, "maxItems": 64, "description": "custom errors the call may revert with, e.g. \"TooEarly(uint256 billingId, uint64 nextChargeAt)\": a rejection then names the error and its arguments (errors in a [[streams]] ABI file for the contract are known without this)"},
        "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200, "description": "same key + same body = same transaction; another body = 409"}}})
}

fn tx_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "idempotency_key": {"type": "string"},
        "status": {"enum": ["queued", "pending", "mined", "confirmed", "failed", "rejected", "cancelled", "expired"]},
        "chain": {"type": "string"}, "chain_id": {"type": "integer"}, "from": {"type": "string"}, "to": {"type": "string"},
        "nonce": {"type": ["integer", "null"]}, "hash": {"type": ["string", "null"]},
        "block_number": {"type": ["integer", "null"]}, "block_hash": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"], "description": "revert reason of a rejected request, or the last broadcast refusal"},
        "attempts": {"type": "array", "items": {"type": "object", "properties": {
            "n": {"type": "integer"}, "nonce": {"type": "integer"}, "hash": {"type": "string"}, "noop": {"type": "boolean"},
            "gas_limit": {"type": "integer"}, "max_fee_per_gas": {"type": "string"}, "max_priority_fee_per_gas": {"type": "string"}}}}}})
}

/// The paths, to merge into the document.
pub fn paths(facts: &crate::openapi::Facts) -> Vec<(&'static str, Value)> {
    let secured = json!([{"bearer": []}]);
    let common = |ok: Value| {
        let mut r = json!({
            "401": error_response("missing or unknown token"),
            "403": error_response("token lacks the tx:write scope"),
            "503": error_response("no accounts are configured"),
        });
        for (k, v) in ok.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r
    };
    let one = json!({"application/json": {"schema": tx_schema()}});
    vec![
        (
            "/v1/transactions",
            json!({
            "post": {"summary": "Submit a transaction request (scope tx:write)", "security": secured,
                "requestBody": {"required": true, "content": {"application/json": {"schema": request_schema(facts)}}},
                "responses": common(json!({
                    "202": {"description": "accepted, queued", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "id": {"type": "string"}, "status": {"const": "queued"}, "existing": {"type": "boolean"}}}}}},
                    "200": {"description": "the same key and body were accepted before: the same transaction"},
                    "400": error_response("invalid request; `field` names it; nothing stored"),
                    "409": error_response("idempotency_key used before with a different body")}))},
            "get": {"summary": "List transactions, newest first (scope tx:write)", "security": secured,
                "parameters": [
                    {"name": "status", "in": "query", "required": false, "schema": {"enum": ["queued", "pending", "mined", "confirmed", "failed", "rejected", "cancelled", "expired"]}},
                    {"name": "from", "in": "query", "required": false, "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}},
                    {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": common(json!({
                    "200": {"description": "transactions", "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "transactions": {"type": "array", "items": tx_schema()}}}}}},
                    "400": error_response("bad parameter; `field` names it")}))}}),
        ),
        (
            "/v1/transactions/{id}",
            json!({
            "get": {"summary": "A transaction with its attempts (scope tx:write)", "security": secured,
                "parameters": [id_param()],
                "responses": common(json!({"200": {"description": "the transaction", "content": one},
                    "404": error_response("no such transaction")}))}}),
        ),
        (
            "/v1/transactions/{id}/cancel",
            json!({
            "post": {"summary": "Cancel: a queued request ends; a pending one is replaced by a 0-value self-send (scope tx:write)",
                "security": secured, "parameters": [id_param()],
                "responses": common(json!({"202": {"description": "cancel requested"},
                    "404": error_response("no such transaction"),
                    "409": error_response("already mined or ended")}))}}),
        ),
        (
            "/v1/transactions/{id}/bump",
            json!({
            "post": {"summary": "Replace a pending transaction with higher fees, past its fee caps if need be (scope tx:write)",
                "security": secured, "parameters": [id_param()],
                "responses": common(json!({"202": {"description": "bump requested"},
                    "404": error_response("no such transaction"),
                    "409": error_response("not pending")}))}}),
        ),
    ]
}
