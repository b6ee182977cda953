//! What the router tests share: tokens put straight into the store, and a
//! request answered by the router with `oneshot` (no socket).

// Each test file uses its own part of this module.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ethgate_api::{ApiState, hash_token, new_token, router};
use ethgate_store::{NewToken, Store};
use serde_json::Value;
use tower::ServiceExt;

/// A new token with `scope`, stored; its secret.
pub async fn add_token(store: &Store, scope: &str, label: &str) -> String {
    let (id, token) = new_token();
    let row = NewToken {
        id,
        hash: hash_token(&token),
        scopes: vec![scope.into()],
        label: label.into(),
        ..Default::default()
    };
    store.insert_token(&row).await.expect("token");
    token
}

/// The router's answer to `req`: its status and its JSON body (`null`
/// when the body is not JSON).
pub async fn answer(state: &ApiState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router(state.clone()).oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
