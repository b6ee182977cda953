//! An account's next nonce that the node holds but will never mine wedges
//! every later nonce of the account. anvil does this: a transaction that
//! arrives while the block mining its predecessor is being built is parked
//! in the pool's queue, waiting for a predecessor already mined, and a
//! re-broadcast of the same bytes is answered "transaction already
//! imported". A real JSON-RPC proxy parks the first attempt the same way
//! here; the sender has to see the stall in the node's pending count and
//! replace the attempt long before `bump_after`.

use ethgate_testkit::Fault;
use ethgate_tx::Settings;
use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_next_nonce_is_replaced_and_every_nonce_behind_it_mined() {
    const N: usize = 5;
    // Only the stall rule can get the parked nonce mined in time.
    let settings = Settings {
        stall_after: 1,
        ..without_bumps()
    };
    let f = fixture_proxied(Mining::EverySecond, 1, settings).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    proxy.set(Fault::Park(1));
    let from = format!("{:#x}", f.accounts[0]);
    let ids = submit_all(&f, (0..N).map(|i| keyed(&f, &from, &format!("stall-{i}")))).await;
    let views = until_status(&f, &ids, "confirmed", 60).await;

    assert!(
        proxy.held() >= 2,
        "the first attempt was parked and so was a re-broadcast of it ({} sends held)",
        proxy.held()
    );
    let replaced: Vec<&Value> = views
        .iter()
        .filter(|v| v["hash"] != v["attempts"][0]["hash"])
        .collect();
    assert!(
        !replaced.is_empty(),
        "the parked request was mined by a replacement: {views:?}"
    );
    for v in &replaced {
        let attempts = v["attempts"].as_array().expect("attempts");
        assert!(attempts.len() >= 2, "replaced at its nonce: {v}");
        assert!(
            attempts
                .iter()
                .all(|a| a["nonce"] == v["nonce"] && a["noop"] == false),
            "a replacement of the same call at the same nonce: {v}"
        );
    }
    // Each request mined once, at nonces 0..N: nothing skipped, nothing
    // moved to a new nonce.
    let mut nonces: Vec<u64> = views.iter().filter_map(|v| v["nonce"].as_u64()).collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (0..N as u64).collect::<Vec<_>>());
    let count: alloy_primitives::U64 = f
        .anvil
        .rpc("eth_getTransactionCount", json!([from, "latest"]))
        .await;
    assert_eq!(count.to::<u64>(), N as u64);
}
