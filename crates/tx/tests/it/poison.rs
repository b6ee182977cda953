//! Nothing a caller sends takes the gateway down. A signature whose types
//! nest tens of thousands deep is refused at intake with the field named;
//! one that reached the store anyway (stored before intake bounded them)
//! and a stored request that no longer parses each end `rejected` with
//! their reason, while the account's other requests are mined. Against a
//! real anvil and the real store; the poisoned rows are made by a trigger
//! in the database as the request is recorded, so the sender never saw
//! them whole.

use alloy_primitives::{Address, keccak256};
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

/// `uint256` with `n` array dimensions.
fn nested(n: usize) -> String {
    format!("uint256{}", "[]".repeat(n))
}

/// Deploys a contract whose every call reverts with `data`.
async fn reverting_with(f: &Fixture, data: &[u8]) -> Address {
    let len = |n: usize| [(n >> 8) as u8, n as u8];
    // CODECOPY the blob after this 15-byte prefix to memory, REVERT with it.
    let mut runtime = vec![0x61];
    runtime.extend(len(data.len()));
    runtime.extend([0x61, 0x00, 0x0f, 0x60, 0x00, 0x39, 0x61]);
    runtime.extend(len(data.len()));
    runtime.extend([0x60, 0x00, 0xfd]);
    runtime.extend(data);
    // The same prefix shape returns the runtime code.
    let mut init = vec![0x61];
    init.extend(len(runtime.len()));
    init.extend([0x61, 0x00, 0x0f, 0x60, 0x00, 0x39, 0x61]);
    init.extend(len(runtime.len()));
    init.extend([0x60, 0x00, 0xf3]);
    init.extend(runtime);
    let r = f.anvil.send(None, init).await;
    r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("contract address")
}

/// Rewrites the stored request of the one recorded under `key`, in the
/// transaction that records it, with `sql` (an expression of
/// `NEW.request`).
async fn poison_on_insert(f: &Fixture, key: &str, sql: &str) {
    let db = sqlx::SqlitePool::connect(&f.db_url()).await.expect("db");
    let trigger = format!(
        "CREATE TRIGGER poison_{key} AFTER INSERT ON tx_requests \
         WHEN NEW.idempotency_key = '{key}' \
         BEGIN UPDATE tx_requests SET request = {sql} WHERE id = NEW.id; END"
    );
    sqlx::query(sqlx::AssertSqlSafe(trigger))
        .execute(&db)
        .await
        .expect("trigger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_nested_too_deep_are_refused_with_the_field_named() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut body = keyed(&f, &from, "deep-function");
    body["function"] = json!(format!("f({})", nested(40_000)));
    body["args"] = json!([[]]);
    let refused = f.manager.submit(&body).await.expect_err("refused");
    assert!(
        matches!(&refused, ethgate_tx::SubmitError::Invalid(e) if e.field == "function"),
        "{refused}"
    );
    let mut body = keyed(&f, &from, "deep-errors");
    body["errors"] = json!(["Fine(uint256)", format!("Deep({})", nested(40_000))]);
    let refused = f.manager.submit(&body).await.expect_err("refused");
    assert!(
        matches!(&refused, ethgate_tx::SubmitError::Invalid(e) if e.field == "errors[1]"),
        "{refused}"
    );
    // Deep, but not too deep for the bound, nor long: refused by depth.
    body["errors"] = json!([format!("Deep({})", nested(40))]);
    let refused = f.manager.submit(&body).await.expect_err("refused");
    assert!(refused.to_string().contains("deep"), "{refused}");
    // The process is up and sends as before.
    let id = submit(&f, &keyed(&f, &from, "after")).await;
    until_status(&f, &[id], "confirmed", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_request_with_a_deep_error_signature_ends_rejected_and_others_go_on() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let deep = format!("Deep({})", nested(40_000));
    // Revert data that matches the deep error: its selector, then an
    // empty array.
    let mut data = keccak256(deep.as_bytes())[..4].to_vec();
    data.extend([0u8; 31].iter().chain(&[0x20]).chain(&[0u8; 32]));
    let target = reverting_with(&f, &data).await;
    poison_on_insert(
        &f,
        "poisoned",
        &format!("json_set(NEW.request, '$.errors', json_array('{deep}'))"),
    )
    .await;
    let from = format!("{:#x}", f.accounts[0]);
    let mut body = keyed(&f, &from, "poisoned");
    body["to"] = json!(format!("{target:#x}"));
    body["errors"] = json!(["Fine(uint256)"]);
    let poisoned = submit(&f, &body).await;
    let others = submit_all(&f, (0..3).map(|i| keyed(&f, &from, &format!("other-{i}")))).await;
    let v = &until_status(&f, std::slice::from_ref(&poisoned), "rejected", 30).await[0];
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("custom error")),
        "rejected with the revert shown: {v}"
    );
    until_status(&f, &others, "confirmed", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_request_that_no_longer_parses_ends_rejected_and_others_go_on() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    poison_on_insert(&f, "unreadable", "'{\"chain\": 7'").await;
    let from = format!("{:#x}", f.accounts[0]);
    let broken = submit(&f, &keyed(&f, &from, "unreadable")).await;
    let others = submit_all(&f, (0..3).map(|i| keyed(&f, &from, &format!("other-{i}")))).await;
    until_status(&f, &others, "confirmed", 30).await;
    let v: Value = until_status(&f, std::slice::from_ref(&broken), "rejected", 30).await[0].clone();
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot read this stored request")),
        "{v}"
    );
    assert_eq!(v["nonce"], Value::Null, "no nonce was taken for it");
}
