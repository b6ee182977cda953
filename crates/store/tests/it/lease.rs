//! Leases and fencing on a real store (SQLite, or PostgreSQL with
//! `ETHGATE_TEST_STORE=postgres`): a lease has one holder until it expires
//! or is released; a takeover bumps the epoch; and the old holder's writes
//! through its fenced handle — a range commit, a sink advance, a nonce
//! taken by the combined writer — are refused and change nothing.

use std::time::Duration;

use alloy_primitives::Address;
use ethgate_core::TxStatus;
use ethgate_core::{BlockRef, RawLog};
use ethgate_store::lease::{Acquired, Fence};
use ethgate_store::scratch::Scratch;
use ethgate_store::{
    NewAttempt, NewEvent, NewTx, RangeCommit, SignedAttempt, StatusEnvelopes, fixtures,
};
use ethgate_store::{Store, StoreError};

async fn store() -> (Scratch, Store) {
    let scratch = Scratch::from_env().await;
    let s = Store::connect(scratch.url()).await.expect("connect");
    (scratch, s)
}

fn block(n: u64) -> BlockRef {
    fixtures::block(n, n as u8)
}

fn log(n: u64) -> RawLog {
    fixtures::log(Address::repeat_byte(1), &block(n), 0)
}

/// Commits block `n` with one event after cursor `n - 1`.
async fn commit(s: &Store, n: u64) -> Result<(), StoreError> {
    let l = log(n);
    let range = RangeCommit {
        stream: "s".into(),
        expected_cursor: n.checked_sub(1).filter(|p| *p > 0),
        events: vec![NewEvent {
            log: &l,
            timestamp: n * 12,
            decoded: None,
        }],
        blocks: vec![block(n)],
        cursor: block(n),
        keep_window: 100,
        children: Vec::new(),
    };
    s.commit_range(&range).await
}

fn fence(unit: &str, holder: &str, got: Acquired) -> Fence {
    Fence {
        unit: unit.into(),
        holder: holder.into(),
        epoch: got.epoch,
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires_and_a_takeover_bumps_its_epoch() {
    let (_d, s) = store().await;
    let a = s
        .acquire("stream:s", "a", 200)
        .await
        .expect("a")
        .expect("free");
    assert_eq!(
        a,
        Acquired {
            epoch: 1,
            took_over: false
        }
    );
    assert_eq!(
        s.acquire("stream:s", "b", 200).await.expect("b"),
        None,
        "held"
    );
    // Renewed, it stays a's past its first expiry.
    tokio::time::sleep(Duration::from_millis(120)).await;
    let renewed = s.renew("a", 200).await.expect("renew");
    assert_eq!(renewed, vec![("stream:s".to_owned(), 1)]);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        s.acquire("stream:s", "b", 200).await.expect("b"),
        None,
        "renewed"
    );
    // Unrenewed, it expires and b takes it over.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let b = s
        .acquire("stream:s", "b", 200)
        .await
        .expect("b")
        .expect("expired");
    assert_eq!(
        b,
        Acquired {
            epoch: 2,
            took_over: true
        }
    );
    assert!(
        s.renew("a", 200).await.expect("renew").is_empty(),
        "a lost it"
    );
    // Released, c takes it at once, and that is no failover.
    s.release("stream:s", "b", 2).await.expect("release");
    let c = s
        .acquire("stream:s", "c", 60_000)
        .await
        .expect("c")
        .expect("released");
    assert_eq!(
        c,
        Acquired {
            epoch: 3,
            took_over: false
        }
    );
    let leases = s.leases().await.expect("leases");
    assert_eq!((leases[0].holder.as_str(), leases[0].epoch), ("c", 3));
}

#[tokio::test]
async fn a_stale_holder_cannot_commit_a_range_or_advance_a_sink() {
    let (_d, s) = store().await;
    s.ensure_stream("s", 1).await.expect("stream");
    let got = s
        .acquire("stream:s", "a", 100)
        .await
        .expect("a")
        .expect("free");
    let old = s.fenced(fence("stream:s", "a", got));
    commit(&old, 1).await.expect("the holder writes");
    s.sink_cursor("s", "k").await.expect("cursor");
    assert!(old.advance_sink("s", "k", 0, 1, 1).await.expect("advance"));

    // a pauses past its lease; b takes over.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let got = s
        .acquire("stream:s", "b", 60_000)
        .await
        .expect("b")
        .expect("expired");
    let new = s.fenced(fence("stream:s", "b", got));

    let refused = commit(&old, 2).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { ref unit, epoch: 1 }) if unit == "stream:s"),
        "{refused:?}"
    );
    let refused = old.advance_sink("s", "k", 1, 1, 0).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { .. })),
        "{refused:?}"
    );
    let row = s.stream("s").await.expect("read").expect("stream");
    assert_eq!(
        (row.cursor, row.events_recorded),
        (Some(1), 1),
        "nothing written"
    );
    assert_eq!(s.sink_cursor("s", "k").await.expect("cursor").seq, 1);
    commit(&new, 2).await.expect("the new holder writes");
    assert_eq!(s.events_after("s", 0, 10).await.expect("read").len(), 2);
}

#[tokio::test]
async fn a_stale_sender_takes_no_nonce_while_others_in_its_batch_do() {
    let (_d, s) = store().await;
    s.ensure_stream("tx.anvil", 31337).await.expect("stream");
    let accounts = [
        "0x00000000000000000000000000000000000000aa",
        "0x00000000000000000000000000000000000000bb",
    ];
    for (i, account) in accounts.iter().enumerate() {
        let id = format!("t{i}");
        let tx = NewTx {
            id: &id,
            idempotency_key: &id,
            body_hash: "h",
            chain_id: 31337,
            sender: account,
            request: "{}",
            state: fixtures::state(TxStatus::Queued),
            status: ethgate_core::TxStatus::Queued,
        };
        s.insert_txs(&[tx]).await.expect("insert");
        s.raise_next_nonce(31337, account, 0)
            .await
            .expect("account");
    }
    let got_a = s
        .acquire("account:a", "r1", 100)
        .await
        .expect("a")
        .expect("free");
    let got_b = s
        .acquire("account:b", "r1", 60_000)
        .await
        .expect("b")
        .expect("free");
    let stale = s.fenced(fence("account:a", "r1", got_a));
    let live = s.fenced(fence("account:b", "r1", got_b));
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.acquire("account:a", "r2", 60_000)
        .await
        .expect("r2")
        .expect("expired");

    let attempt = NewAttempt {
        nonce: 0,
        hash: format!("0x{}", "11".repeat(32)),
        raw: vec![1, 2, 3],
        noop: false,
        gas_limit: 21_000,
        max_fee: 2,
        max_priority_fee: 1,
    };
    let status = || StatusEnvelopes {
        stream: "tx.anvil",
        json: &[],
    };
    let item = |id: &'static str| SignedAttempt {
        tx_id: id,
        attempt: &attempt,
        state: fixtures::state(TxStatus::Pending),
        status: ethgate_core::TxStatus::Pending,
    };
    // Both at once, so the combined writer may put them in one batch.
    let (t0, t1) = ([item("t0")], [item("t1")]);
    let (a, b) = tokio::join!(
        stale.take_nonces(31337, accounts[0], 0, &t0, status()),
        live.take_nonces(31337, accounts[1], 0, &t1, status()),
    );
    assert!(matches!(a, Err(StoreError::Fenced { .. })), "{a:?}");
    assert!(b.expect("the live sender's take"), "taken");
    assert_eq!(
        s.next_nonce(31337, accounts[0]).await.expect("next"),
        Some(0)
    );
    assert_eq!(
        s.next_nonce(31337, accounts[1]).await.expect("next"),
        Some(1)
    );
    assert!(s.attempts("t0").await.expect("attempts").is_empty());
}

#[tokio::test]
async fn replicas_heartbeat_and_vanish_when_unseen_or_gone() {
    let (_d, s) = store().await;
    s.heartbeat("r1", "127.0.0.1:1").await.expect("r1");
    s.heartbeat("r2", "127.0.0.1:2").await.expect("r2");
    let ids =
        |v: Vec<ethgate_store::lease::ReplicaRow>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(s.replicas(60_000).await.expect("list")), ["r1", "r2"]);
    s.leave("r1").await.expect("leave");
    assert_eq!(ids(s.replicas(60_000).await.expect("list")), ["r2"]);
    tokio::time::sleep(Duration::from_millis(120)).await;
    s.heartbeat("r3", "127.0.0.1:3").await.expect("r3");
    assert_eq!(
        ids(s.replicas(100).await.expect("list")),
        ["r3"],
        "r2 unseen"
    );
}
