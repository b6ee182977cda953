//! A stream that follows a factory's children (PairFactory, shaped like
//! Uniswap's): every announced child's Swap logs from its creation block
//! on — including the creation transaction's own, and those of children
//! announced and used within one fetched range — and a reorg below an
//! announcement forgets the child with its events. Checked against
//! `eth_getLogs`.

use crate::common;

use std::time::Duration;

use alloy_json_abi::Event;
use alloy_primitives::{Address, U256, keccak256};
use common::*;
use ethgate_core::{Confirmations, Factory, RawLog, StreamSpec};
use ethgate_events::Syncer;
use ethgate_testkit::Anvil;
use serde_json::Value;

const CREATED: &str = "event PairCreated(address indexed token0, address indexed token1, address pair, uint256 index)";
const SWAP: &str = "event Swap(address indexed sender, uint256 amount)";

fn call(signature: &str, words: &[U256]) -> Vec<u8> {
    let mut data = keccak256(signature)[..4].to_vec();
    for w in words {
        data.extend_from_slice(&w.to_be_bytes::<32>());
    }
    data
}

fn word(a: Address) -> U256 {
    U256::from_be_slice(a.as_slice())
}

async fn deploy_factory(anvil: &Anvil) -> Address {
    let artifact: Value = serde_json::from_str(include_str!(
        "../../../../contracts/artifacts/PairFactory.json"
    ))
    .expect("artifact");
    let code = alloy_primitives::hex::decode(artifact["bytecode"].as_str().expect("bytecode"))
        .expect("hex");
    let r = anvil.send(None, code).await;
    r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("address")
}

/// Creates a pair (swapping `before` and `after` times around the
/// announcement); returns the pair's address.
async fn create(anvil: &Anvil, factory: Address, before: u64, after: u64) -> Address {
    let data = call(
        "create(address,address,uint256,uint256)",
        &[
            word(Address::repeat_byte(0xa0)),
            word(Address::repeat_byte(0xb0)),
            U256::from(before),
            U256::from(after),
        ],
    );
    let r = anvil.send(Some(factory), data).await;
    let created = Event::parse(CREATED).expect("event").selector();
    let log = r["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .find(|l| l["topics"][0].as_str() == Some(&created.to_string()))
        .expect("a PairCreated log");
    let data = log["data"].as_str().expect("data");
    // `pair` is the first word of the data.
    format!("0x{}", &data[26..66])
        .parse()
        .expect("pair address")
}

/// The children the store follows for the test stream.
async fn followed(store: &ethgate_store::Store) -> Vec<Address> {
    let recorded = store.children("source").await.expect("children");
    recorded.into_iter().map(|(a, _)| a).collect()
}

async fn swap(anvil: &Anvil, pair: Address, amount: u64) {
    anvil
        .send(Some(pair), call("swap(uint256)", &[U256::from(amount)]))
        .await;
}

/// The truth: the factory's announcements, and each canonical child's
/// Swaps, in block and log order.
async fn truth(anvil: &Anvil, factory: Address, head: u64) -> (Vec<RawLog>, Vec<Address>) {
    let created = Event::parse(CREATED).expect("event").selector();
    let swap = Event::parse(SWAP).expect("event").selector();
    let mut all: Vec<RawLog> = anvil.logs(factory, 0, head).await;
    all.retain(|l| l.topics.first() == Some(&created));
    let children: Vec<Address> = all
        .iter()
        .map(|l| Address::from_slice(&l.data[12..32]))
        .collect();
    for c in &children {
        let mut logs = anvil.logs(*c, 0, head).await;
        logs.retain(|l| l.topics.first() == Some(&swap));
        all.extend(logs);
    }
    all.sort_by_key(|l| (l.block(), l.index()));
    (all, children)
}

/// The stream of `factory`'s pairs' Swaps.
fn pairs(factory: Address) -> StreamSpec {
    StreamSpec {
        name: "source".into(),
        chain: "anvil".into(),
        chain_id: 31337,
        addresses: Vec::new(),
        events: vec![Event::parse(SWAP).expect("event")],
        from_block: 0,
        confirmations: Confirmations::Depth(0),
        factory: Some(Factory {
            address: factory,
            event: Event::parse(CREATED).expect("event"),
            parameter: 2,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_stream_records_every_childs_logs_and_forgets_orphaned_children() {
    let anvil = Anvil::start(&[]).await;
    let factory = deploy_factory(&anvil).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let mut s = Syncer::new(
        pairs(factory),
        pool(&[&anvil.url], Duration::from_secs(10)),
        store.clone(),
        config(100, 1_000),
    )
    .await
    .expect("syncer");

    // One child, used after its announcement.
    let first = create(&anvil, factory, 2, 3).await;
    swap(&anvil, first, 1).await;
    sync_to_head(&mut s).await;
    // Two children announced and used within one range, and the first
    // one used again.
    let second = create(&anvil, factory, 1, 1).await;
    swap(&anvil, second, 2).await;
    let third = create(&anvil, factory, 0, 2).await;
    swap(&anvil, third, 3).await;
    swap(&anvil, first, 4).await;
    sync_to_head(&mut s).await;
    // A child whose announcement a reorg orphans.
    let orphan = create(&anvil, factory, 1, 1).await;
    swap(&anvil, orphan, 5).await;
    sync_to_head(&mut s).await;
    let recorded: Vec<Address> = followed(&store).await;
    assert!(
        recorded.contains(&orphan),
        "the child was followed before the reorg"
    );
    anvil.reorg(2).await;
    sync_to_head(&mut s).await;
    let after_reorg: Vec<Address> = followed(&store).await;
    assert_eq!(
        after_reorg,
        [first, second, third],
        "the orphaned announcement's child is forgotten"
    );
    // The factory's nonce went back with the reorg: the next child is
    // created at the orphan's address, announced afresh.
    let fourth = create(&anvil, factory, 1, 1).await;
    swap(&anvil, fourth, 6).await;
    swap(&anvil, second, 7).await;
    sync_to_head(&mut s).await;

    let head = anvil.head().await;
    let (want, children) = truth(&anvil, factory, head).await;
    assert_eq!(orphan, fourth);
    let all = outbox(&store).await;
    assert!(
        all.iter().any(|e| e.removed),
        "the orphaned child's events were retracted"
    );
    assert_equals_truth(&apply(&all), &want);
    let mut recorded: Vec<Address> = followed(&store).await;
    recorded.sort();
    let mut canonical = children.clone();
    canonical.sort();
    assert_eq!(
        recorded, canonical,
        "the store follows exactly the canonical children"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_stream_at_the_tip_grows_through_the_chains_follower() {
    let anvil = Anvil::start(&[]).await;
    let factory = deploy_factory(&anvil).await;
    let early = create(&anvil, factory, 1, 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store(&dir).await;
    let follower = ethgate_events::Follower::new(
        "anvil",
        pool(&[&anvil.url], Duration::from_secs(10)),
        config(100, 1_000),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(follower.clone().run(stopped.clone()));
    let s = Syncer::new(
        pairs(factory),
        pool(&[&anvil.url], Duration::from_secs(10)),
        store.clone(),
        config(100, 1_000),
    )
    .await
    .expect("syncer")
    .with_follower(follower.clone());
    tokio::spawn(s.run(ethgate_events::SyncState::default(), stopped));
    let caught_up = |head: u64| {
        let store = store.clone();
        async move {
            for _ in 0..3_000 {
                let row = store.stream("source").await.expect("read");
                if row.and_then(|r| r.cursor) == Some(head) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the stream never reached block {head}");
        }
    };
    caught_up(anvil.head().await).await;
    for _ in 0..200 {
        if follower.members() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        follower.members(),
        1,
        "the stream follows the tip with the follower"
    );
    let later = create(&anvil, factory, 2, 2).await;
    swap(&anvil, later, 1).await;
    swap(&anvil, early, 2).await;
    caught_up(anvil.head().await).await;
    anvil.reorg(1).await;
    swap(&anvil, later, 3).await;
    let head = anvil.head().await;
    caught_up(head).await;
    let (want, children) = truth(&anvil, factory, head).await;
    assert_eq!(children, [early, later]);
    assert_equals_truth(&apply(&outbox(&store).await), &want);
    let _ = stop.send(true);
}
