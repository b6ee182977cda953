//! Several endpoints, through real proxies before one anvil: every signed
//! transaction is broadcast to every endpoint (one dropping it does not
//! lose it), and after a failover the configured first endpoint is asked
//! again as soon as it is healthy — a second one that lags must not keep
//! the gateway behind.

use std::time::Duration;

use ethgate_testkit::{Anvil, Fault, Proxy};
use serde_json::json;

use crate::common;
use crate::fixture;
use fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_is_broadcast_to_every_endpoint() {
    let f = fixture_endpoints(Mining::Auto, 2, fast()).await;
    let from = format!("{:#x}", f.accounts[0]);
    let ids = submit_all(&f, (0..5).map(|i| keyed(&f, &from, &format!("both-{i}")))).await;
    let views = until_status(&f, &ids, "confirmed", 30).await;
    for v in &views {
        let hash = v["hash"].as_str().expect("hash").to_owned();
        for (k, p) in f.proxies.iter().enumerate() {
            assert!(p.sent().contains(&hash), "endpoint {k} was sent {hash}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_endpoint_is_preferred_again_once_it_recovers() {
    // Proxies of its own: no sender shares them.
    let anvil = Anvil::start(&[]).await;
    let (first, second) = (
        Proxy::start(&anvil.url).await,
        Proxy::start(&anvil.url).await,
    );
    let pool = common::pool_of(&[&first.url, &second.url]);
    let number = || async {
        pool.call::<serde_json::Value>("eth_blockNumber", json!([]))
            .await
            .expect("answered")
    };
    first.set(Fault::Http500);
    number().await;
    let during = second.calls("eth_blockNumber");
    assert!(
        during > 0,
        "the second endpoint answered while the first failed"
    );
    first.set(Fault::Pass);
    // The first one's cooldown (a few hundred milliseconds) passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = first.calls("eth_blockNumber");
    for _ in 0..5 {
        number().await;
    }
    assert_eq!(
        first.calls("eth_blockNumber") - before,
        5,
        "back to the first"
    );
    assert_eq!(second.calls("eth_blockNumber"), during, "the second rests");
}
