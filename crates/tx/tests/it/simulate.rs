//! How requests are simulated before they take a nonce, against a real
//! anvil through a real JSON-RPC proxy that counts the calls: requests
//! with a fixed gas limit are simulated together with `eth_simulateV1`
//! (no `eth_call` at all when every one passes); a node without it is
//! asked once and then simulated with `eth_call` per request, with the
//! same verdicts, and so is one whose `eth_simulateV1` goes unanswered
//! while `eth_call` is answered; a gas limit too low for the call is a
//! rejection that names it, not a node failure retried for ever in front
//! of the account's other requests; a call the node cannot run (an error
//! that names no failure) while it runs others lets them go first and
//! ends rejected with the node's words, and a node that can run none
//! rejects none.

use ethgate_testkit::Fault;
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

/// `keyed(key)` with a fixed gas limit (simulated by one execution).
fn fixed(f: &Fixture, from: &str, key: &str) -> Value {
    let mut body = keyed(f, from, key);
    body["gas_limit"] = json!(100_000);
    body
}

/// `fail(reason)`, which always reverts, with a fixed gas limit.
fn failing(f: &Fixture, from: &str, key: &str) -> Value {
    json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "function": "fail(string)", "args": ["not due yet"], "gas_limit": 100_000,
        "idempotency_key": key,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_gas_limit_are_simulated_together_in_one_call() {
    const N: usize = 20;
    let f = fixture_proxied(Mining::Off, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    let from = format!("{:#x}", f.accounts[0]);
    let ids = submit_all(
        &f,
        (0..N).map(|i| fixed(&f, &from, &format!("together-{i}"))),
    )
    .await;
    let bad = submit(&f, &failing(&f, &from, "bad")).await;
    until_status(&f, &ids, "pending", 30).await;
    let rejected = &until_status(&f, std::slice::from_ref(&bad), "rejected", 30).await[0];
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    until_status(&f, &ids, "confirmed", 30).await;

    assert_eq!(
        rejected["error"], "execution reverted: not due yet",
        "decoded as before: {rejected}"
    );
    let simulations = proxy.calls("eth_simulateV1");
    assert!(
        (1..N as u64).contains(&simulations),
        "{N} requests took {simulations} eth_simulateV1 calls"
    );
    assert_eq!(
        proxy.calls("eth_call"),
        1,
        "only the failing request was run again on its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_simulate_v1_is_asked_once_then_simulated_per_request() {
    let f = fixture_proxied(Mining::Auto, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    proxy.set(Fault::NoSimulate);
    let from = format!("{:#x}", f.accounts[0]);
    let bad = submit(&f, &failing(&f, &from, "bad")).await;
    let rejected = &until_status(&f, std::slice::from_ref(&bad), "rejected", 30).await[0];
    let ids = submit_all(&f, (0..3).map(|i| fixed(&f, &from, &format!("each-{i}")))).await;
    until_status(&f, &ids, "confirmed", 30).await;

    assert_eq!(rejected["error"], "execution reverted: not due yet");
    assert_eq!(rejected["nonce"], Value::Null, "no nonce taken");
    assert_eq!(
        proxy.calls("eth_simulateV1"),
        1,
        "asked once; the answer is remembered"
    );
    assert!(
        proxy.calls("eth_call") >= 4,
        "every request simulated with eth_call ({} calls)",
        proxy.calls("eth_call")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_answers_simulate_v1_is_simulated_with_eth_call() {
    let f = fixture_proxied(Mining::Auto, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    proxy.set(Fault::SimulateUnanswered);
    let from = format!("{:#x}", f.accounts[0]);
    let first = submit(&f, &fixed(&f, &from, "first")).await;
    until_status(&f, std::slice::from_ref(&first), "confirmed", 30).await;
    let asked = proxy.calls("eth_simulateV1");
    let ids = submit_all(&f, (0..3).map(|i| fixed(&f, &from, &format!("later-{i}")))).await;
    until_status(&f, &ids, "confirmed", 30).await;

    assert!(asked >= 1, "eth_simulateV1 was tried");
    assert_eq!(
        proxy.calls("eth_simulateV1"),
        asked,
        "not tried again once eth_call was answered in its place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gas_limit_too_low_for_the_call_is_rejected_and_does_not_hold_up_the_rest() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    // Above the intrinsic cost (so the node takes it as a call), below
    // what emitting the event needs.
    let mut short = fixed(&f, &from, "short");
    short["gas_limit"] = json!(23_800);
    let short = submit(&f, &short).await;
    let next = submit(&f, &fixed(&f, &from, "next")).await;
    let rejected = &until_status(&f, std::slice::from_ref(&short), "rejected", 30).await[0];
    let mined = &until_status(&f, &[next], "confirmed", 30).await[0];

    let why = rejected["error"].as_str().unwrap_or_default();
    assert!(
        why.to_ascii_lowercase().contains("outofgas")
            || why.to_ascii_lowercase().contains("out of gas"),
        "the node's reason: {rejected}"
    );
    assert_eq!(rejected["nonce"], Value::Null, "no nonce taken");
    assert_eq!(mined["nonce"], 0, "the next request took the first nonce");
}

/// The 4-byte selector of a function signature.
fn selector(signature: &str) -> [u8; 4] {
    alloy_json_abi::Function::parse(signature)
        .expect("signature")
        .selector()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_the_node_cannot_simulate_lets_the_rest_go_first_then_ends_rejected() {
    let f = fixture_proxied(Mining::Auto, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    proxy.set(Fault::CallErrs(selector("once(string)")));
    let from = format!("{:#x}", f.accounts[0]);
    let odd = json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "function": "once(string)", "args": ["odd"], "gas_limit": 100_000,
        "idempotency_key": "odd",
    });
    let odd = submit(&f, &odd).await;
    // Each later request is simulated in a tick beside the odd one, so the
    // node is seen simulating others while it cannot run that one call.
    let mut nonces = Vec::new();
    for i in 0..ethgate_tx::sender::SIMULATION_ERRORS {
        let id = submit(&f, &fixed(&f, &from, &format!("after-{i}"))).await;
        let done = &until_status(&f, &[id], "confirmed", 30).await[0];
        nonces.push(done["nonce"].as_u64().expect("a nonce"));
    }
    let rejected = &until_status(&f, std::slice::from_ref(&odd), "rejected", 30).await[0];

    let expected: Vec<u64> = (0..u64::from(ethgate_tx::sender::SIMULATION_ERRORS)).collect();
    assert_eq!(nonces, expected, "later requests were not held behind it");
    let why = rejected["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("could not simulate") && why.contains("cannot run this call"),
        "the node's words, and why: {rejected}"
    );
    assert_eq!(rejected["nonce"], Value::Null, "no nonce taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_can_simulate_nothing_rejects_nothing() {
    let f = fixture_proxied(Mining::Auto, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    proxy.set(Fault::CallErrs(selector("keyed(string)")));
    let from = format!("{:#x}", f.accounts[0]);
    let ids = submit_all(&f, (0..3).map(|i| fixed(&f, &from, &format!("all-{i}")))).await;
    // Enough ticks (each runs every request's eth_call) that a request
    // counted in each would have been rejected twice over.
    let ticks = u64::from(ethgate_tx::sender::SIMULATION_ERRORS) * 2;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while proxy.calls("eth_call") < ticks * ids.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender stopped simulating"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Still waiting, none rejected.
    until_status(&f, &ids, "queued", 5).await;
    proxy.set(Fault::Pass);
    let done = until_status(&f, &ids, "confirmed", 30).await;

    let nonces: Vec<_> = done.iter().map(|t| t["nonce"].as_u64()).collect();
    assert_eq!(
        nonces,
        vec![Some(0), Some(1), Some(2)],
        "in order, once the node could"
    );
}
