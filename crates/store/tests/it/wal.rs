//! The write-ahead log under steady reads and writes. A reader that began
//! while frames were still to be copied keeps a writer from starting the
//! log over, so with reads always in flight the file only grows — until
//! SQLite's own checkpoint fires inside a commit, holding every writer
//! behind its copy and fsyncs. The store restarts the log itself, between
//! writers, once it passes a couple of thousand frames. And the journal's
//! writes are fsync'd where events need not be. (SQLite only: these are
//! its file's behaviours.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ethgate_core::TxStatus;
use ethgate_store::fixtures;
use ethgate_store::{NewTx, Store};

/// The log's size bound the store keeps to, with room for what is written
/// between checkpoints and a restart that had to wait for readers: 20,000
/// frames of a 4 KiB page (about 80 MB, what this test writes in a few
/// checkpoint intervals), well below the 32,768 at which SQLite would
/// checkpoint inside a commit.
const BOUND: u64 = 20_000 * (4_096 + 24);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_restarted_while_reads_and_writes_never_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/w.db", dir.path().display());
    let wal = dir.path().join("w.db-wal");
    let s = Store::connect(&url).await.expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    s.count_txs(ethgate_core::TxStatus::Queued)
                        .await
                        .expect("read");
                }
            })
        })
        .collect();
    // Thirty 4 KB requests a commit: the log grows by a dozen pages a
    // commit, until well past the bound.
    let body = "x".repeat(4_000);
    let (mut largest, mut written, mut last_growth) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut commits = 0u64;
    while written < 3 * BOUND && started.elapsed() < Duration::from_secs(60) {
        let ids: Vec<String> = (0..30).map(|k| format!("tx{commits}-{k}")).collect();
        let rows: Vec<NewTx<'_>> = ids
            .iter()
            .map(|id| NewTx {
                id,
                idempotency_key: id,
                body_hash: "h",
                chain_id: 1,
                sender: "0xaa",
                request: &body,
                state: fixtures::state(TxStatus::Queued),
                status: ethgate_core::TxStatus::Queued,
            })
            .collect();
        let before = std::fs::metadata(&wal).map_or(0, |m| m.len());
        s.insert_txs(&rows).await.expect("write");
        let after = std::fs::metadata(&wal).map_or(0, |m| m.len());
        // A restarted log is overwritten from its start and its file stops
        // growing; such a commit is counted at the last growth seen.
        let growth = after.saturating_sub(before);
        if growth > 0 {
            last_growth = growth;
        }
        written += growth.max(last_growth);
        largest = largest.max(after);
        commits += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    assert!(
        written >= 3 * BOUND,
        "wrote only {written} bytes of log in a minute"
    );
    assert!(
        largest <= BOUND,
        "the log grew to {largest} bytes (bound {BOUND}) over {commits} commits"
    );
}

#[tokio::test]
async fn the_journal_commits_on_disk_before_it_returns_and_events_need_not() {
    // Requests accepted, nonces taken and attempts signed commit with
    // synchronous = FULL (fsync'd before the write returns, so before any
    // byte is broadcast); the rest with NORMAL.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/j.db", dir.path().display());
    let s = Store::connect(&url).await.expect("connect");
    assert_eq!(s.synchronous_levels().await.expect("levels"), (2, 1));
}
