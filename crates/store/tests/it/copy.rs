//! `store copy`: a SQLite store with rows in every table (events and their
//! retractions, cursors, a dead letter, tokens, requests with attempts and
//! nonces, pool members, a rotation, a top-up, the audit trail, spend
//! counters) copied into an empty PostgreSQL schema equals its source
//! table by table; the copy works as a store (reads, and new ids after the
//! copied ones); a target with rows is refused and left as it was.

use alloy_primitives::{Address, B256, Bytes, U64};
use ethgate_core::TxStatus;
use ethgate_core::{BlockRef, RawLog};
use ethgate_store::copy::{self, CopyError};
use ethgate_store::fixtures;
use ethgate_store::scratch::{DEFAULT_PG, Scratch};
use ethgate_store::{
    Action, AuditEntry, MemberRow, NewAttempt, NewEvent, NewToken, NewTx, Outcome, RangeCommit,
    SignedAttempt, StatusEnvelopes, Store,
};

fn block(n: u64) -> BlockRef {
    BlockRef {
        number: n,
        hash: B256::repeat_byte(n as u8),
        parent_hash: B256::repeat_byte(n.saturating_sub(1) as u8),
        timestamp: 1_700_000_000 + n * 12,
    }
}

fn log(n: u64, i: u64) -> RawLog {
    RawLog {
        address: Address::repeat_byte(1),
        topics: vec![B256::repeat_byte(9), B256::repeat_byte(i as u8)],
        data: Bytes::from(vec![n as u8; 32]),
        block_number: U64::from(n),
        block_hash: block(n).hash,
        block_timestamp: None,
        transaction_hash: B256::repeat_byte(3),
        transaction_index: U64::from(i),
        log_index: U64::from(i),
        removed: false,
    }
}

/// Fills every table of `s`.
async fn populate(s: &Store) {
    s.ensure_stream("source", 1).await.expect("stream");
    s.set_stream_addresses(
        "source",
        &[Address::repeat_byte(0x5f)],
        &[Address::repeat_byte(0x6f)],
        3,
        "spec",
    )
    .await
    .expect("addresses");
    let logs: Vec<RawLog> = (1..=30)
        .flat_map(|n| (0..50).map(move |i| log(n, i)))
        .collect();
    let range = RangeCommit {
        stream: "source".into(),
        expected_cursor: None,
        events: logs
            .iter()
            .map(|l| NewEvent {
                log: l,
                timestamp: l.block() * 12,
                decoded: None,
            })
            .collect(),
        blocks: (1..=30).map(block).collect(),
        cursor: block(30),
        keep_window: 1_000,
        children: vec![(Address::repeat_byte(0xc1), 1)],
    };
    s.commit_range(&range).await.expect("commit");
    s.rewind("source", Some(30), Some(block(25)))
        .await
        .expect("rewind");
    s.sink_cursor("source", "bus").await.expect("cursor");
    assert!(
        s.advance_sink("source", "bus", 0, 700, 700)
            .await
            .expect("advance")
    );
    assert!(
        s.dead_letter("source", "bus", 700, 701, 720, 20, "HTTP 500", "[]")
            .await
            .expect("dead letter")
    );
    s.insert_token(&NewToken {
        id: "tok_1".into(),
        hash: "h1".into(),
        scopes: vec!["admin".into()],
        label: "ops".into(),
        policy: Some("billing".into()),
        expires_at: Some(1_900_000_000),
    })
    .await
    .expect("token");
    s.revoke_token("tok_1").await.expect("revoke");
    s.ensure_stream("tx.anvil", 31337).await.expect("tx stream");
    let sender = "0x00000000000000000000000000000000000000aa";
    let ids: Vec<String> = (0..40).map(|i| format!("tx_{i:04}")).collect();
    let news: Vec<NewTx<'_>> = ids
        .iter()
        .map(|id| NewTx {
            id,
            idempotency_key: id,
            body_hash: "b",
            chain_id: 31337,
            sender,
            request: "{\"to\":\"0x01\"}",
            state: fixtures::state(TxStatus::Queued),
            status: ethgate_core::TxStatus::Queued,
        })
        .collect();
    s.insert_txs(&news).await.expect("requests");
    s.raise_next_nonce(31337, sender, 5).await.expect("account");
    let attempts: Vec<NewAttempt> = (0..30)
        .map(|k| NewAttempt {
            nonce: 5 + k,
            hash: format!("0x{:064x}", k),
            raw: vec![k as u8; 100],
            noop: k % 7 == 0,
            gas_limit: 21_000 + k,
            max_fee: 2_000_000_000 + u128::from(k),
            max_priority_fee: 1_000_000_000,
        })
        .collect();
    let signed: Vec<SignedAttempt<'_>> = ids
        .iter()
        .zip(&attempts)
        .map(|(id, a)| SignedAttempt {
            tx_id: id,
            attempt: a,
            state: fixtures::state(TxStatus::Pending),
            status: ethgate_core::TxStatus::Pending,
        })
        .collect();
    let json = vec!["{\"id\":\"status\"}".to_owned(); 3];
    let status = StatusEnvelopes {
        stream: "tx.anvil",
        json: &json,
    };
    assert!(
        s.take_nonces(31337, sender, 5, &signed, status)
            .await
            .expect("take")
    );
    let member = MemberRow {
        address: sender.into(),
        keystore: "k.json".into(),
        state: ethgate_core::MemberState::Active,
        rotation: None,
    };
    s.add_pool_member("ops", &member).await.expect("member");
    s.start_rotation("rot_1", "ops", &["0xaa".to_owned()], Some("key-1"))
        .await
        .expect("rotation");
    s.add_top_up("tx_0001", "ops", sender, 10u128.pow(18), 20_000)
        .await
        .expect("top-up");
    for i in 0..12 {
        s.audit(&AuditEntry {
            id: 0,
            at_ms: 1_700_000_000_000 + i,
            token_id: Some("tok_1".into()),
            label: "ops".into(),
            action: Action::TxSubmit,
            target: format!("tx_{i:04}"),
            outcome: if i % 3 == 0 {
                Outcome::Refused
            } else {
                Outcome::Accepted
            },
            detail: String::new(),
        })
        .await
        .expect("audit");
    }
    let whos = [("token:tok_1".to_owned(), 10u128.pow(20))];
    assert_eq!(
        s.spend(20_000, "anvil", &whos, 12345).await.expect("spend"),
        Ok(())
    );
}

#[tokio::test]
async fn a_populated_sqlite_store_copied_to_postgres_equals_it_table_by_table() {
    let from_scratch = Scratch::sqlite().expect("sqlite");
    let from = Store::connect(from_scratch.url()).await.expect("source");
    populate(&from).await;
    let to_scratch = Scratch::postgres(DEFAULT_PG)
        .await
        .expect("PostgreSQL (scripts/services starts it)");
    let to = Store::connect(to_scratch.url()).await.expect("target");

    let mut seen = Vec::new();
    let counts = copy::copy(&from, &to, |t, n| seen.push((t.to_owned(), n)))
        .await
        .expect("copy");
    for table in copy::tables() {
        let (a, b) = (
            copy::dump(&from, table).await.expect("source"),
            copy::dump(&to, table).await.expect("target"),
        );
        assert!(!a.is_empty(), "{table} was populated");
        assert_eq!(a, b, "{table} differs");
        let n = counts.iter().find(|(t, _)| *t == table).expect("counted").1;
        assert_eq!(n, a.len() as u64, "{table}'s count");
    }
    assert!(
        seen.iter().any(|(t, _)| t == "outbox"),
        "progress was reported"
    );

    // The copy is a working store: same envelopes, and new rows get ids
    // after the copied ones.
    let (a, b) = (
        from.events_after("source", 0, 5_000).await.expect("read"),
        to.events_after("source", 0, 5_000).await.expect("read"),
    );
    assert_eq!(
        a.iter().map(|e| e.json()).collect::<Vec<_>>(),
        b.iter().map(|e| e.json()).collect::<Vec<_>>()
    );
    let last_audit = from
        .audit_since(0, 100)
        .await
        .expect("audit")
        .last()
        .expect("one")
        .id;
    to.audit(&AuditEntry {
        id: 0,
        at_ms: 0,
        token_id: None,
        label: "cli".into(),
        action: Action::TxSubmit,
        target: "after".into(),
        outcome: Outcome::Accepted,
        detail: String::new(),
    })
    .await
    .expect("a new entry");
    let newest = to.audit_since(last_audit, 10).await.expect("read");
    assert_eq!(newest.len(), 1);
    assert!(newest[0].id > last_audit);

    // A target with rows is refused and keeps what it had.
    let before = copy::dump(&to, "audit").await.expect("read");
    let again = copy::copy(&from, &to, |_, _| {}).await;
    assert!(
        matches!(again, Err(CopyError::TargetNotEmpty("streams"))),
        "{again:?}"
    );
    assert_eq!(copy::dump(&to, "audit").await.expect("read"), before);
}
