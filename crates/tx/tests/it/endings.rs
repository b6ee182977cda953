//! A request that holds a nonce and then is cancelled, or passes its
//! `valid_until`, ends by a no-op mined at its nonce: a 0-value self-send
//! replaces the call on chain, the nonce is used (nothing left gapped),
//! the call never happens, and the request ends `cancelled` or `expired`
//! with that nonce.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_primitives::U64;
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

/// The account's transaction at `nonce`, as mined.
async fn mined_at(f: &Fixture, nonce: u64) -> Value {
    let head = f.anvil.head().await;
    for n in (0..=head).rev() {
        let block: Value = f
            .anvil
            .rpc("eth_getBlockByNumber", json!([format!("{n:#x}"), true]))
            .await;
        for tx in block["transactions"].as_array().into_iter().flatten() {
            let from = tx["from"].as_str().unwrap_or_default().to_lowercase();
            let at = serde_json::from_value::<U64>(tx["nonce"].clone())
                .ok()
                .map(|n| n.to::<u64>());
            if from == format!("{:#x}", f.accounts[0]) && at == Some(nonce) {
                return tx.clone();
            }
        }
    }
    panic!("no transaction of the account at nonce {nonce}");
}

async fn ends_with_a_noop(f: &Fixture, id: &str, status: &str) {
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let v = &until_status(f, &[id.to_owned()], status, 30).await[0];
    let nonce = v["nonce"].as_u64().expect("the nonce it held");
    let tx = mined_at(f, nonce).await;
    assert_eq!(tx["to"], tx["from"], "a self-send: {tx}");
    assert_eq!(
        (tx["value"].clone(), tx["input"].clone()),
        (json!("0x0"), json!("0x"))
    );
    // Bumped while unmined, the no-op may have several attempts: the one
    // mined is one of them.
    let mined = v["attempts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["hash"] == tx["hash"]))
        .unwrap_or_else(|| panic!("the transaction mined is one of the request's: {v}"));
    assert_eq!(mined["noop"], true, "the attempt mined is a no-op: {v}");
    let count: U64 = f
        .anvil
        .rpc("eth_getTransactionCount", json!([f.accounts[0], "latest"]))
        .await;
    assert_eq!(count.to::<u64>(), nonce + 1, "the nonce is used");
    let head = f.anvil.head().await;
    let calls = f.anvil.logs(f.contract, 0, head).await;
    assert!(calls.is_empty(), "the call never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_pending_request_ends_by_a_noop_mined_at_its_nonce() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "to-cancel")).await;
    until_status(&f, std::slice::from_ref(&id), "pending", 30).await;
    let outcome = f.manager.cancel(&id).await.expect("cancel");
    assert_eq!(outcome, ethgate_tx::CancelOutcome::Requested);
    // The replacement is recorded before any block is mined.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ends_with_a_noop(&f, &id, "cancelled").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_request_past_valid_until_ends_by_a_noop_mined_at_its_nonce() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut body = keyed(&f, &from, "to-expire");
    body["valid_until"] = json!(now + 2);
    let id = submit(&f, &body).await;
    until_status(&f, std::slice::from_ref(&id), "pending", 30).await;
    // Past valid_until the sender replaces it with the no-op.
    tokio::time::sleep(Duration::from_secs(4)).await;
    ends_with_a_noop(&f, &id, "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noop_left_unmined_is_bumped_as_a_noop_never_as_the_call() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "to-cancel-unmined")).await;
    until_status(&f, std::slice::from_ref(&id), "pending", 30).await;
    f.manager.cancel(&id).await.expect("cancel");
    // No block comes, so the no-op falls due for bumps (every 3 s here):
    // each replacement of it must be a no-op too, not the call again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
            .expect("json");
        let attempts = v["attempts"].as_array().cloned().unwrap_or_default();
        let ending: Vec<&Value> = attempts.iter().skip_while(|a| a["noop"] != true).collect();
        assert!(
            ending.iter().all(|a| a["noop"] == true),
            "an attempt after the no-op re-signs the call: {v}"
        );
        if ending.len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the no-op was not bumped twice: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ends_with_a_noop(&f, &id, "cancelled").await;
}
