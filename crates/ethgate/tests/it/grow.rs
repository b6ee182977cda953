//! A contract added to a stream `ethgate serve` has been recording: the
//! process is killed, the config gains the contract, and the restarted
//! gateway backfills it alone and follows both — the stream's events then
//! equal `eth_getLogs` for both contracts (as a set: the added history
//! arrives after what was already recorded).

use crate::common;

use alloy_primitives::Address;
use common::{ShowLog, serve, until};
use ethgate_store::Store;
use ethgate_testkit::{Anvil, apply, assert_equals_truth};

fn config(store: &str, rpc: &str, addresses: &[Address]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a:#x}\"")).collect();
    format!(
        "[store]\nurl = \"{store}\"\n\n[api]\nlisten = \"127.0.0.1:{}\"\n\n\
         [[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"100ms\"\ninitial_block_range = 3\n\n\
         [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [{}]\n\
         events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
        ethgate_testkit::free_port(),
        list.join(", ")
    )
}

/// Waits until the stream's cursor is at `head` with no contract still
/// being backfilled.
async fn caught_up(store: &Store, head: u64) {
    until(
        60,
        "the stream at the head with every contract joined",
        || async move {
            let at = store.stream("source").await.ok()??.cursor? == head;
            let joined = store
                .stream_addresses("source")
                .await
                .ok()?
                .iter()
                .all(|(_, next)| next.is_none());
            (at && joined).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_added_to_a_recorded_stream_is_backfilled_after_a_restart() {
    let anvil = Anvil::start(&[]).await;
    let first = anvil.deploy_event_source().await;
    let added = anvil.deploy_event_source().await;
    for i in 0..8 {
        anvil.burst(first, 2, i * 2).await;
        anvil.burst(added, 3, 100 + i * 3).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let url = format!("sqlite://{}/ethgate.db", dir.path().display());
    let path = dir.path().join("ethgate.toml");
    std::fs::write(&path, config(&url, &anvil.url, &[first])).expect("config");
    let mut gateway = serve(dir.path(), &[]);
    let store = Store::connect(&url).await.expect("store");
    caught_up(&store, anvil.head().await).await;
    anvil.burst(first, 1, 50).await;
    anvil.burst(added, 1, 500).await;
    caught_up(&store, anvil.head().await).await;
    gateway.kill().await.expect("SIGKILL");
    let before = ethgate_testkit::outbox(&store, "source").await.len();

    std::fs::write(&path, config(&url, &anvil.url, &[first, added])).expect("config");
    let _gateway = serve(dir.path(), &[]);
    anvil.burst(added, 2, 900).await;
    anvil.burst(first, 2, 60).await;
    let head = anvil.head().await;
    caught_up(&store, head).await;

    let all = ethgate_testkit::outbox(&store, "source").await;
    assert!(all.len() > before, "the added contract's events arrived");
    let mut live = apply(&all);
    live.sort_by_key(|e| (e.block_number, e.log_index));
    let mut truth = anvil.logs(first, 0, head).await;
    truth.extend(anvil.logs(added, 0, head).await);
    truth.sort_by_key(|l| (l.block(), l.index()));
    assert_equals_truth(&live, &truth);
}
