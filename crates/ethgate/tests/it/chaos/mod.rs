//! Exactly once under chaos: `ethgate serve` reaches anvil only through
//! chaos proxies (`ethgate-chaos`) that answer like the endpoints users
//! really have — a load balancer over nodes 1–3 blocks behind, two
//! endpoints of which the second lags, sends acknowledged and dropped,
//! errors and timeouts — with 300 requests from one account and from
//! four, and `kill -9` of ethgate in one of them. In every run each
//! request's call is on chain exactly once (counted from the `Keyed`
//! event it emits), each account's nonces are used without gaps, ethgate's
//! final state of each request is the chain's, and the stream on the same
//! contract, retractions applied, holds exactly `eth_getLogs`.

mod world;

use std::time::Duration;

use ethgate_chaos::{Lag, Modes};
use world::Run;

const REQUESTS: usize = 300;

/// Half the requests answered by a node 1–3 blocks behind.
fn load_balancer() -> Modes {
    Modes {
        lag: Some(Lag {
            rate: 0.5,
            min: 1,
            max: 3,
        }),
        ..Modes::default()
    }
}

/// Every request answered 1–3 blocks behind.
fn lagging() -> Modes {
    Modes {
        lag: Some(Lag {
            rate: 1.0,
            min: 1,
            max: 3,
        }),
        ..Modes::default()
    }
}

/// A share of requests failing: HTTP 500, 429, a timeout after the node
/// acted (held past ethgate's 1 s request timeout), a cut answer.
fn failing(rate: f64) -> Modes {
    Modes {
        errors: rate,
        hang: Duration::from_secs(2),
        ..Modes::default()
    }
}

/// A share of sends acknowledged and never forwarded.
fn dropping() -> Modes {
    Modes {
        drop_sends: 0.3,
        ..Modes::default()
    }
}

async fn run(name: &str, endpoints: Vec<Modes>, accounts: usize, kills: usize) -> world::Ended {
    let ended = Run {
        endpoints,
        accounts,
        requests: REQUESTS,
        kills,
        timeout: "1s",
    }
    .make()
    .await;
    ended.check(name).await;
    eprintln!("{name}: what the proxies did: {:?}", ended.stats);
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_with_lagging_nodes_one_account() {
    let ended = run("load balancer, 1 account", vec![load_balancer()], 1, 0).await;
    assert!(ended.stats[0].lagged.values().sum::<u64>() > 100, "lagged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_with_lagging_nodes_four_accounts_and_sigkills() {
    let ended = run(
        "load balancer, 4 accounts, kill -9",
        vec![load_balancer()],
        4,
        4,
    )
    .await;
    assert!(ended.stats[0].lagged.values().sum::<u64>() > 100, "lagged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_the_second_lagging_one_account() {
    let ended = run(
        "two endpoints, 1 account",
        vec![failing(0.1), lagging()],
        1,
        0,
    )
    .await;
    assert!(
        ended.stats[1].lagged.values().sum::<u64>() > 0,
        "the second was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_the_second_lagging_four_accounts() {
    let ended = run(
        "two endpoints, 4 accounts",
        vec![failing(0.1), lagging()],
        4,
        0,
    )
    .await;
    assert!(
        ended.stats[1].lagged.values().sum::<u64>() > 0,
        "the second was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sends_one_account() {
    let ended = run("dropped sends, 1 account", vec![dropping()], 1, 0).await;
    assert!(ended.stats[0].dropped_sends > 30, "sends dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_sends_four_accounts() {
    let ended = run("dropped sends, 4 accounts", vec![dropping()], 4, 0).await;
    assert!(ended.stats[0].dropped_sends > 30, "sends dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_timeouts_one_account() {
    let ended = run("errors and timeouts, 1 account", vec![failing(0.05)], 1, 0).await;
    assert!(
        ended.stats[0].errors.values().sum::<u64>() >= 5,
        "errors made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_timeouts_four_accounts() {
    let ended = run("errors and timeouts, 4 accounts", vec![failing(0.05)], 4, 0).await;
    assert!(
        ended.stats[0].errors.values().sum::<u64>() >= 5,
        "errors made"
    );
}
