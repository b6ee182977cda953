//! `kill -9` of a running `ethgate serve` mid-backfill, several times: after
//! the final restart the outbox equals the canonical logs exactly — nothing
//! lost, nothing recorded twice — because a range's events and the cursor
//! are committed in one transaction. On PostgreSQL with
//! `ETHGATE_TEST_STORE=postgres`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ethgate_store::Store;
use ethgate_testkit::{Anvil, assert_equals_truth, free_port, outbox};
use tokio::process::{Child, Command};

fn serve(dir: &Path, config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["--config", &config.to_string_lossy(), "serve"])
        .current_dir(dir)
        .env("ETHGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ethgate serve starts")
}

async fn cursor(store: &Store) -> Option<u64> {
    store
        .stream("source")
        .await
        .expect("read")
        .and_then(|r| r.cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_backfill_loses_nothing_and_duplicates_nothing() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    for round in 0..60u64 {
        anvil.burst(contract, 20, round * 20).await;
        anvil.mine(30).await;
    }
    let head = anvil.head().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let url = ethgate_testkit::store_url(dir.path()).await;
    let config = dir.path().join("ethgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{url}\"\n\n[api]\nlisten = \"127.0.0.1:{}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\n\
             poll_interval = \"100ms\"\ninitial_block_range = 1\nmax_block_range = 1\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
            free_port(),
            anvil.url
        ),
    )
    .expect("config");
    let store = Store::connect(&url).await.expect("store");

    let mut cursors = Vec::new();
    for kill in 0..6u64 {
        let mut child = serve(dir.path(), &config);
        let started = Instant::now();
        let before = cursor(&store).await;
        // Let it make some progress, then kill it at an arbitrary moment.
        while cursor(&store).await == before && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50 + kill * 37 % 150)).await;
        child.kill().await.expect("SIGKILL");
        let c = cursor(&store).await;
        assert!(
            c > before,
            "kill {kill}: the backfill progressed ({before:?} -> {c:?})"
        );
        cursors.push(c);
    }
    assert!(
        cursors.last().copied().flatten().is_some_and(|c| c < head),
        "every kill landed mid-backfill: {cursors:?} of {head}"
    );

    let mut child = serve(dir.path(), &config);
    let deadline = Instant::now() + Duration::from_secs(120);
    while cursor(&store).await != Some(head) {
        assert!(Instant::now() < deadline, "the final run did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await.expect("stop");
    let all = outbox(&store, "source").await;
    assert!(all.iter().all(|e| !e.removed));
    assert_equals_truth(&all, &anvil.logs(contract, 0, head).await);
    assert_eq!(all.len(), 1_200);
}
