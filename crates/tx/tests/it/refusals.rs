//! Requests that do not go through, and why: refused at intake with the
//! field named (and an idempotency key reused with another body); a
//! reverting call rejected before any nonce is taken, its reason decoded
//! by ethgate (Error(string), Panic(uint256), custom errors from the
//! request's signatures or the contract's ABI, no data); a call that
//! passed simulation but reverted on chain, failed with its reason
//! replayed at its block. Against a real anvil.

use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverting_call_is_rejected_with_its_reason_and_takes_no_nonce() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let call = |key: &str, function: &str, args: Value| {
        json!({
            "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
            "function": function, "args": args, "idempotency_key": key,
        })
    };
    // The request's own signatures come first (their parameter names show
    // which were used); else the configuration's ABI for the contract.
    let mut named = call("named", "refuse(uint256,string)", json!([7, "closed"]));
    named["errors"] = json!(["Refused(uint256 status, string text)"]);
    let empty = json!({
        "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
        "data": "0xdeadbeef", "gas_limit": 100_000, "idempotency_key": "empty",
    });
    // Each reason is decoded from the revert data by ethgate, whatever
    // the node's own message says.
    let cases = [
        (
            call("message", "fail(string)", json!(["not due yet"])),
            "execution reverted: not due yet",
        ),
        (
            call("panic", "divide(uint256,uint256)", json!([1, 0])),
            "execution reverted: panic 0x12 (division or modulo by zero)",
        ),
        (
            named,
            r#"execution reverted: Refused(status: 7, text: "closed")"#,
        ),
        (
            call("from-abi", "refuse(uint256,string)", json!([7, "closed"])),
            r#"execution reverted: Refused(code: 7, why: "closed")"#,
        ),
        // No such function and no fallback: a revert without data.
        (empty, "execution reverted without a reason"),
    ];
    for (body, reason) in cases {
        // Estimated (no gas limit), and simulated with eth_simulateV1
        // (a fixed one): the same reason either way.
        let mut fixed = body.clone();
        fixed["gas_limit"] = json!(100_000);
        fixed["idempotency_key"] = json!(format!("{}-fixed", body["idempotency_key"]));
        for body in [body, fixed] {
            let id = submit(&f, &body).await;
            let v = &until_status(&f, std::slice::from_ref(&id), "rejected", 30).await[0];
            let said = v["error"].as_str().unwrap_or_default();
            assert_eq!(said, reason, "{body}: decoded reason");
            assert_eq!(v["nonce"], Value::Null, "{body}: no nonce taken");
        }
    }
    let good = submit(&f, &keyed(&f, &from, "good")).await;
    let v = &until_status(&f, &[good], "confirmed", 30).await[0];
    assert_eq!(v["nonce"], 0, "the rejected requests took no nonce");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_returns_the_same_transaction_and_a_different_body_conflicts() {
    let f = fixture(Mining::Auto, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let body = keyed(&f, &from, "once");
    let a = f.manager.submit(&body).await.expect("accepted");
    let b = f.manager.submit(&body).await.expect("accepted again");
    assert_eq!(
        (a.id.clone(), a.existing, b.existing),
        (b.id.clone(), false, true)
    );
    let mut other = body.clone();
    other["args"] = json!(["something else"]);
    assert!(matches!(
        f.manager.submit(&other).await,
        Err(ethgate_tx::SubmitError::Conflict(id)) if id == a.id
    ));
    for (patch, field) in [
        (json!({"to": "0x12"}), "to"),
        (json!({"chain": "mainnet"}), "chain"),
        (json!({"from": "nobody"}), "from"),
        (json!({"speed": "ludicrous"}), "speed"),
        (json!({"args": [1, 2]}), "args"),
        (json!({"gas_limit": 5}), "gas_limit"),
        (json!({"colour": "red"}), "colour"),
        (json!({"errors": "Refused(uint256)"}), "errors"),
        (
            json!({"errors": ["Refused(uint256)", "not a signature"]}),
            "errors[1]",
        ),
    ] {
        let mut b = body.clone();
        b["idempotency_key"] = json!(format!("bad-{field}"));
        for (k, v) in patch.as_object().expect("object") {
            b[k] = v.clone();
        }
        match f.manager.submit(&b).await {
            Err(ethgate_tx::SubmitError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: expected a field error, got {other:?}"),
        }
    }
    // A request built in this process (a top-up, a rotation step) is held
    // to the same rules.
    let built = |key: &str| {
        f.manager
            .request("anvil", f.accounts[0], f.accounts[0], key.to_owned())
    };
    let mut cases = vec![(built(""), "idempotency_key")];
    let mut r = built("t-chain");
    r.chain = "mainnet".into();
    cases.push((r, "chain"));
    let mut r = built("t-from");
    r.from = alloy_primitives::Address::repeat_byte(9);
    cases.push((r, "from"));
    let mut r = built("t-gas");
    r.gas_limit = Some(5);
    cases.push((r, "gas_limit"));
    let mut r = built("t-confirmations");
    r.confirmations = 5_000;
    cases.push((r, "confirmations"));
    let mut r = built("t-errors");
    r.errors = vec!["not a signature".into()];
    cases.push((r, "errors[0]"));
    for (req, field) in cases {
        match f.manager.submit_request(req).await {
            Err(ethgate_tx::SubmitError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("{field}: expected a field error, got {other:?}"),
        }
    }
    assert_eq!(
        f.store.txs(None, None, 100).await.expect("list").len(),
        1,
        "refused requests stored nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_reverts_on_chain_ends_failed_with_its_reason_replayed() {
    let f = fixture(Mining::Off, 1, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    // Both simulate against the same state, where "k" is unused; mined in
    // one block, the second reverts with Used("k").
    let once = |key: &str| {
        json!({
            "chain": "anvil", "from": from, "to": format!("{:#x}", f.contract),
            "function": "once(string)", "args": ["k"], "gas_limit": 100_000,
            "idempotency_key": key,
        })
    };
    let first = submit(&f, &once("first")).await;
    until_status(&f, std::slice::from_ref(&first), "pending", 30).await;
    let second = submit(&f, &once("second")).await;
    until_status(&f, std::slice::from_ref(&second), "pending", 30).await;
    let _: Value = f.anvil.rpc("evm_mine", json!([])).await;
    let ok = &until_status(&f, &[first], "confirmed", 30).await[0];
    let failed = &until_status(&f, std::slice::from_ref(&second), "failed", 30).await[0];
    assert_eq!(
        (ok["nonce"].as_u64(), failed["nonce"].as_u64()),
        (Some(0), Some(1))
    );
    let block = failed["block_number"].as_u64().expect("block number");
    assert_eq!(
        failed["error"].as_str().unwrap_or_default(),
        format!(
            r#"reverted on chain in block {block}; replayed there: execution reverted: Used(key: "k")"#
        ),
        "{failed}"
    );
    // Its status envelope says so too.
    let page = f
        .store
        .events_after("tx.anvil", 0, 100)
        .await
        .expect("outbox");
    let said = page.iter().find_map(|e| match &e.envelope {
        ethgate_core::Envelope::Tx(t)
            if t.tx_id == second && t.status == ethgate_core::TxStatus::Failed =>
        {
            t.error.clone()
        }
        _ => None,
    });
    assert_eq!(
        said.as_deref(),
        failed["error"].as_str(),
        "the failed envelope carries it"
    );
}
