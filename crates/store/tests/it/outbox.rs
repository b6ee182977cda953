//! Outbox behaviour on a real store (SQLite, or PostgreSQL with `ETHGATE_TEST_STORE=postgres`): atomic range commits,
//! optimistic cursor checks, retractions on rewind, ordered reads.

use alloy_primitives::{Address, B256, Bytes, U64};
use ethgate_core::{BlockRef, EventEnvelope, RawLog};
use ethgate_store::scratch::Scratch;
use ethgate_store::{NewEvent, RangeCommit, Store, StoreError};

fn block(n: u64, tag: u8) -> BlockRef {
    BlockRef {
        number: n,
        hash: B256::repeat_byte(tag),
        parent_hash: B256::ZERO,
        timestamp: n * 12,
    }
}

fn log(b: &BlockRef, log_index: u64) -> RawLog {
    RawLog {
        address: Address::repeat_byte(1),
        topics: vec![B256::repeat_byte(9)],
        data: Bytes::new(),
        block_number: U64::from(b.number),
        block_hash: b.hash,
        block_timestamp: None,
        transaction_hash: B256::repeat_byte(3),
        transaction_index: U64::ZERO,
        log_index: U64::from(log_index),
        removed: false,
    }
}

/// A fresh store on the backend `ETHGATE_TEST_STORE` names.
async fn store() -> (Scratch, Store) {
    ethgate_store::fixtures::store("s", 1).await
}

/// A range to commit, owning its logs; `range()` borrows them.
struct Commit {
    expected: Option<u64>,
    logs: Vec<RawLog>,
    blocks: Vec<BlockRef>,
    cursor: BlockRef,
}

impl Commit {
    fn range(&self) -> RangeCommit<'_> {
        RangeCommit {
            stream: "s".into(),
            expected_cursor: self.expected,
            events: self
                .logs
                .iter()
                .map(|l| NewEvent {
                    log: l,
                    timestamp: l.block() * 12,
                    decoded: None,
                })
                .collect(),
            blocks: self.blocks.clone(),
            cursor: self.cursor,
            keep_window: 1000,
            children: Vec::new(),
        }
    }
}

fn commit(expected: Option<u64>, blocks: &[BlockRef], per_block: u64, cursor: BlockRef) -> Commit {
    Commit {
        expected,
        logs: blocks
            .iter()
            .flat_map(|b| (0..per_block).map(move |i| log(b, i)))
            .collect(),
        blocks: blocks.to_vec(),
        cursor,
    }
}

#[tokio::test]
async fn range_commit_moves_cursor_and_events_together() {
    let (_d, s) = store().await;
    let b1 = block(1, 1);
    let b2 = block(2, 2);
    s.commit_range(&commit(None, &[b1, b2], 3, b2).range())
        .await
        .expect("commit");
    let row = s.stream("s").await.expect("read").expect("exists");
    assert_eq!(
        (row.cursor, row.cursor_hash, row.events_recorded),
        (Some(2), Some(b2.hash), 6)
    );
    let evs = s.events_after("s", 0, 100).await.expect("read");
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    let first: EventEnvelope = serde_json::from_str(&evs[0].json()).expect("json");
    assert_eq!(
        (first.seq, first.block_number, first.log_index),
        (Some(1), 1, 0)
    );
    assert_eq!(s.events_after("s", 4, 1).await.expect("read")[0].seq, 5);
}

#[tokio::test]
async fn stale_cursor_is_refused_and_changes_nothing() {
    let (_d, s) = store().await;
    let b1 = block(1, 1);
    s.commit_range(&commit(None, &[b1], 1, b1).range())
        .await
        .expect("commit");
    let b2 = block(2, 2);
    let err = s
        .commit_range(&commit(None, &[b2], 1, b2).range())
        .await
        .expect_err("stale");
    assert!(
        matches!(err, StoreError::CursorConflict { found: Some(1), .. }),
        "{err}"
    );
    assert_eq!(s.events_after("s", 0, 100).await.expect("read").len(), 1);
}

#[tokio::test]
async fn recording_an_event_at_or_below_the_cursor_fails_the_whole_range() {
    let (_d, s) = store().await;
    let b1 = block(1, 1);
    s.commit_range(&commit(None, &[b1], 2, b1).range())
        .await
        .expect("commit");
    let b2 = block(2, 2);
    let mut c = commit(Some(1), &[b2], 1, b2);
    c.logs.insert(0, log(&b1, 0));
    let err = s
        .commit_range(&c.range())
        .await
        .expect_err("a second copy of a live event");
    assert!(
        matches!(err, StoreError::OutOfRange { block: 1, .. }),
        "{err}"
    );
    let mut c = commit(Some(1), &[b2], 1, b2);
    c.logs.push(log(&block(3, 3), 0));
    assert!(
        matches!(
            s.commit_range(&c.range()).await,
            Err(StoreError::OutOfRange { block: 3, .. })
        ),
        "past the new cursor"
    );
    let row = s.stream("s").await.expect("read").expect("exists");
    assert_eq!(
        (row.cursor, row.events_recorded),
        (Some(1), 2),
        "nothing of the failed ranges was kept"
    );
    assert_eq!(s.events_after("s", 0, 100).await.expect("read").len(), 2);
}

#[tokio::test]
async fn segments_are_read_across_boundaries_and_retracted_by_watermark() {
    let (_d, s) = store().await;
    // 2,500 events over 5 blocks: three segments, each spanning blocks.
    let blocks: Vec<BlockRef> = (1..=5).map(|n| block(n, n as u8)).collect();
    s.commit_range(&commit(None, &blocks, 500, blocks[4]).range())
        .await
        .expect("commit");
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = s.events_after("s", after, 333).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.seq;
        seqs.extend(page.iter().map(|e| e.seq));
    }
    assert_eq!(seqs, (1..=2_500).collect::<Vec<u64>>());
    // Rewind into the middle of the second segment, then further down.
    assert_eq!(
        s.rewind("s", Some(5), Some(blocks[2]))
            .await
            .expect("rewind"),
        1_000
    );
    assert_eq!(
        s.rewind("s", Some(3), Some(blocks[0]))
            .await
            .expect("rewind"),
        1_000
    );
    let all = s.events_after("s", 0, 10_000).await.expect("read");
    assert_eq!(all.len(), 4_500);
    let retracted: Vec<EventEnvelope> = all[2_500..]
        .iter()
        .map(|e| serde_json::from_str(&e.json()).expect("json"))
        .collect();
    assert!(retracted.iter().all(|e| e.removed));
    assert!(retracted[..1_000].iter().all(|e| e.block_number > 3));
    assert!(
        retracted[1_000..]
            .iter()
            .all(|e| e.block_number == 2 || e.block_number == 3)
    );
    assert_eq!(
        s.stream("s")
            .await
            .expect("read")
            .expect("row")
            .events_recorded,
        500
    );
}

#[tokio::test]
async fn rewind_retracts_exactly_the_events_above_the_fork() {
    let (_d, s) = store().await;
    let blocks: Vec<BlockRef> = (1..=4).map(|n| block(n, n as u8)).collect();
    s.commit_range(&commit(None, &blocks, 2, blocks[3]).range())
        .await
        .expect("commit");
    let retracted = s
        .rewind("s", Some(4), Some(blocks[1]))
        .await
        .expect("rewind");
    assert_eq!(retracted, 4);
    let all = s.events_after("s", 0, 100).await.expect("read");
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<u64>>()
    );
    let tail: Vec<EventEnvelope> = all[8..]
        .iter()
        .map(|e| serde_json::from_str(&e.json()).expect("json"))
        .collect();
    assert_eq!(tail.len(), 4);
    assert!(tail.iter().all(|e| e.removed && e.block_number > 2));
    let row = s.stream("s").await.expect("read").expect("exists");
    assert_eq!(
        (row.cursor, row.events_recorded, row.reorgs),
        (Some(2), 4, 1)
    );
    assert_eq!(
        s.window("s", 10)
            .await
            .expect("window")
            .iter()
            .map(|b| b.number)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    // A second rewind to the same point retracts nothing more.
    assert_eq!(
        s.rewind("s", Some(2), Some(blocks[1]))
            .await
            .expect("rewind"),
        0
    );
    // The orphaned block may come back and be recorded again.
    s.commit_range(&commit(Some(2), &blocks[2..3], 2, blocks[2]).range())
        .await
        .expect("re-record");
}

#[tokio::test]
async fn unsupported_store_url_names_the_key() {
    let err = Store::connect("mysql://x").await.err().expect("refused");
    assert!(err.to_string().starts_with("store.url"), "{err}");
}
