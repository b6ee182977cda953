//! Transaction rows on a real store (SQLite, or PostgreSQL with `ETHGATE_TEST_STORE=postgres`): the API's group commit
//! (idempotency within and across batches), nonces taken with their
//! attempts in batches larger than one statement, state changes written
//! many per statement, the writes of many senders combined (each with its
//! own outcome), and the sender's read of new rows.

use ethgate_core::TxStatus;
use ethgate_store::fixtures;
use ethgate_store::scratch::Scratch;
use ethgate_store::{
    Inserted, NewAttempt, NewTx, SignedAttempt, StateUpdate, StatusEnvelopes, Store, StoreError,
};

const SENDER: &str = "0x00000000000000000000000000000000000000aa";

/// A fresh store on the backend `ETHGATE_TEST_STORE` names.
async fn store() -> (Scratch, Store) {
    let scratch = Scratch::from_env().await;
    let s = Store::connect(scratch.url()).await.expect("connect");
    s.ensure_stream("tx.anvil", 31337).await.expect("stream");
    (scratch, s)
}

fn new_tx<'a>(id: &'a str, key: &'a str, body: &'a str, sender: &'a str) -> NewTx<'a> {
    NewTx {
        id,
        idempotency_key: key,
        body_hash: body,
        chain_id: 31337,
        sender,
        request: "{}",
        state: fixtures::state(TxStatus::Queued),
        status: ethgate_core::TxStatus::Queued,
    }
}

fn attempt(nonce: u64) -> NewAttempt {
    NewAttempt {
        nonce,
        hash: format!("0x{nonce:064x}"),
        raw: vec![nonce as u8; 100],
        noop: false,
        gas_limit: 100_000,
        max_fee: 20_000_000_000,
        max_priority_fee: 1_000_000_000,
    }
}

/// Each request with its attempt, the request then `pending` (pairs as
/// far as the shorter list goes).
fn pending<'a>(ids: &'a [String], attempts: &'a [NewAttempt]) -> Vec<SignedAttempt<'a>> {
    ids.iter()
        .zip(attempts)
        .map(|(id, a)| SignedAttempt {
            tx_id: id,
            attempt: a,
            state: fixtures::state(TxStatus::Pending),
            status: ethgate_core::TxStatus::Pending,
        })
        .collect()
}

/// Records a queued request for each id (the id is its key too).
async fn queued(s: &Store, ids: &[String]) {
    let news: Vec<NewTx<'_>> = ids.iter().map(|id| new_tx(id, id, "h", SENDER)).collect();
    s.insert_txs(&news).await.expect("insert");
}

fn no_status() -> StatusEnvelopes<'static> {
    StatusEnvelopes {
        stream: "tx.anvil",
        json: &[],
    }
}

#[tokio::test]
async fn one_batch_tells_created_from_retried_from_conflicting() {
    let (_d, s) = store().await;
    let batch = [
        new_tx("a", "k1", "h1", SENDER),
        new_tx("b", "k1", "h1", SENDER),
        new_tx("c", "k1", "h2", SENDER),
        new_tx("d", "k2", "h1", SENDER),
    ];
    let out = s.insert_txs(&batch).await.expect("insert");
    assert_eq!(
        out,
        vec![
            Inserted::Created,
            Inserted::Existing("a".into()),
            Inserted::Conflict("a".into()),
            Inserted::Created,
        ]
    );
    // And in a later batch.
    let again = [
        new_tx("e", "k2", "h1", SENDER),
        new_tx("f", "k2", "h9", SENDER),
    ];
    let out = s.insert_txs(&again).await.expect("insert");
    assert_eq!(
        out,
        vec![
            Inserted::Existing("d".into()),
            Inserted::Conflict("d".into())
        ]
    );
    assert_eq!(
        s.count_txs(ethgate_core::TxStatus::Queued)
            .await
            .expect("count"),
        2
    );
}

#[tokio::test]
async fn nonces_taken_in_one_batch_past_a_statement_record_every_attempt() {
    let (_d, s) = store().await;
    let ids: Vec<String> = (0..450).map(|i| format!("tx{i:04}")).collect();
    queued(&s, &ids).await;
    s.raise_next_nonce(31337, SENDER, 7).await.expect("account");
    let attempts: Vec<NewAttempt> = (0..450).map(|k| attempt(7 + k)).collect();
    let items = pending(&ids, &attempts);
    // A stale first nonce writes nothing.
    assert!(
        !s.take_nonces(31337, SENDER, 6, &items, no_status())
            .await
            .expect("stale")
    );
    assert!(s.attempts("tx0000").await.expect("attempts").is_empty());
    assert!(
        s.take_nonces(31337, SENDER, 7, &items, no_status())
            .await
            .expect("take")
    );
    assert_eq!(s.next_nonce(31337, SENDER).await.expect("next"), Some(457));
    assert_eq!(
        s.count_txs(ethgate_core::TxStatus::Pending)
            .await
            .expect("count"),
        450
    );
    assert_eq!(s.extra_attempts().await.expect("extra"), 0);
    for (k, id) in ids.iter().enumerate() {
        let row = s.tx(id).await.expect("row").expect("exists");
        assert_eq!(row.nonce, Some(7 + k as u64), "{id}");
        let list = s.attempts(id).await.expect("attempts");
        assert_eq!(list.len(), 1, "{id}");
        assert_eq!((list[0].n, list[0].nonce), (1, 7 + k as u64), "{id}");
        assert_eq!(list[0].raw, attempts[k].raw, "{id}");
    }
    // Replacements, a tick's worth in one call, are numbered after the
    // first attempts; a request twice in one call writes nothing.
    let bumps: Vec<NewAttempt> = (0..300u64).map(|k| attempt(7 + k)).collect();
    let replacements = pending(&ids, &bumps);
    let twice = [replacements[0], replacements[1], replacements[0]];
    assert!(matches!(
        s.add_attempts(&twice).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(
        s.extra_attempts().await.expect("extra"),
        0,
        "nothing written"
    );
    s.add_attempts(&replacements).await.expect("bumps");
    for id in &ids[..300] {
        let list = s.attempts(id).await.expect("attempts");
        assert_eq!(
            list.iter().map(|a| a.n).collect::<Vec<_>>(),
            vec![1, 2],
            "{id}"
        );
    }
    assert_eq!(
        s.extra_attempts().await.expect("extra"),
        300,
        "one bump each"
    );
}

#[tokio::test]
async fn many_state_changes_keep_errors_and_refuse_a_request_twice() {
    let (_d, s) = store().await;
    let ids: Vec<String> = (0..250).map(|i| format!("tx{i:04}")).collect();
    queued(&s, &ids).await;
    s.set_tx_error("tx0001", Some("broadcast refused: x"))
        .await
        .expect("error");
    // Each request holds its own nonce: its number.
    let update = |id: &str, error: Option<&str>| StateUpdate {
        tx_id: id.to_owned(),
        state: fixtures::state(TxStatus::Mined).clone(),
        status: ethgate_core::TxStatus::Mined,
        nonce: id[2..].parse().ok(),
        block_number: Some(9),
        error: error.map(str::to_owned),
    };
    let mut updates: Vec<StateUpdate> = ids.iter().map(|id| update(id, None)).collect();
    updates[2] = update("tx0002", Some("fee cap reached"));
    s.set_tx_states(&updates, no_status()).await.expect("set");
    assert_eq!(
        s.count_txs(ethgate_core::TxStatus::Mined)
            .await
            .expect("count"),
        250
    );
    let one = s.tx("tx0001").await.expect("row").expect("exists");
    assert_eq!(one.error.as_deref(), Some("broadcast refused: x"));
    assert_eq!((one.nonce, one.block_number), (Some(1), Some(9)));
    let last = s.tx("tx0249").await.expect("row").expect("exists");
    assert_eq!((last.status.as_str(), last.nonce), ("mined", Some(249)));
    let two = s.tx("tx0002").await.expect("row").expect("exists");
    assert_eq!(two.error.as_deref(), Some("fee cap reached"));
    // The same request twice in one call: refused, nothing written.
    let twice = vec![update("tx0003", None), update("tx0003", Some("late"))];
    let refused = s.set_tx_states(&twice, no_status()).await;
    assert!(
        matches!(refused, Err(StoreError::Corrupt { .. })),
        "{refused:?}"
    );
    let three = s.tx("tx0003").await.expect("row").expect("exists");
    assert_eq!(three.error, None);
}

#[tokio::test]
async fn new_rows_are_the_senders_queued_rows_after_the_last_seen() {
    let (_d, s) = store().await;
    let other = "0x00000000000000000000000000000000000000bb";
    s.insert_txs(&[
        new_tx("a", "a", "h", SENDER),
        new_tx("b", "b", "h", other),
        new_tx("c", "c", "h", SENDER),
    ])
    .await
    .expect("insert");
    let all = s.new_txs(31337, SENDER, 0).await.expect("new");
    let ids: Vec<&str> = all.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "c"]);
    assert!(all[0].0 < all[1].0, "in the order accepted");
    assert_eq!(all[0].1.request, "{}");
    let after_a = all[0].0;
    // A row that is no longer queued is not new.
    let u = StateUpdate {
        tx_id: "c".into(),
        state: fixtures::state(TxStatus::Rejected).clone(),
        status: ethgate_core::TxStatus::Rejected,
        nonce: None,
        block_number: None,
        error: Some("reverted".into()),
    };
    s.set_tx_states(&[u], no_status()).await.expect("set");
    let shown = |s: Store| async move { s.tx("c").await.expect("get").expect("row").error };
    assert_eq!(shown(s.clone()).await.as_deref(), Some("reverted"));
    // No error given keeps the one shown; an empty one clears it.
    let again = |error: Option<&str>| StateUpdate {
        tx_id: "c".into(),
        state: fixtures::state(TxStatus::Rejected).clone(),
        status: ethgate_core::TxStatus::Rejected,
        nonce: None,
        block_number: None,
        error: error.map(str::to_owned),
    };
    s.set_tx_states(&[again(None)], no_status())
        .await
        .expect("set");
    assert_eq!(shown(s.clone()).await.as_deref(), Some("reverted"));
    s.set_tx_states(&[again(Some(""))], no_status())
        .await
        .expect("set");
    assert_eq!(shown(s.clone()).await, None);
    assert!(
        s.new_txs(31337, SENDER, after_a)
            .await
            .expect("new")
            .is_empty()
    );
    s.insert_txs(&[new_tx("d", "d", "h", SENDER)])
        .await
        .expect("insert");
    let later = s.new_txs(31337, SENDER, after_a).await.expect("new");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].1.id, "d");
    // The full read holds every open row of the sender.
    let open = s.open_txs(31337, SENDER, 0).await.expect("open");
    let ids: Vec<&str> = open.iter().map(|(_, r)| r.id.as_str()).collect();
    assert_eq!(ids, vec!["a", "d"]);
}

#[tokio::test]
async fn many_accounts_taking_nonces_at_once_each_stand_or_fall_alone() {
    let (_d, s) = store().await;
    let accounts: Vec<String> = (0..12).map(|a| format!("0x{a:040x}")).collect();
    let ids: Vec<Vec<String>> = (0..12)
        .map(|a| (0..2).map(|k| format!("a{a}-{k}")).collect())
        .collect();
    for (a, account) in accounts.iter().enumerate() {
        let news: Vec<NewTx<'_>> = ids[a]
            .iter()
            .map(|id| new_tx(id, id, "h", account))
            .collect();
        s.insert_txs(&news).await.expect("insert");
        s.raise_next_nonce(31337, account, 0)
            .await
            .expect("account");
    }
    let attempts: Vec<NewAttempt> = (0..2).map(attempt).collect();
    let stale: Vec<NewAttempt> = (3..5).map(attempt).collect();
    let json: Vec<Vec<String>> = ids
        .iter()
        .map(|pair| {
            pair.iter()
                .map(|id| format!("{{\"id\":\"{id}\"}}"))
                .collect()
        })
        .collect();
    // Every account's sender at once; account 5's read a stale next nonce.
    let takes = accounts.iter().enumerate().map(|(a, account)| {
        let (first, signed) = if a == 5 { (3, &stale) } else { (0, &attempts) };
        let items = pending(&ids[a], signed);
        let status = StatusEnvelopes {
            stream: "tx.anvil",
            json: &json[a],
        };
        let s = &s;
        async move { s.take_nonces(31337, account, first, &items, status).await }
    });
    let answers = futures::future::join_all(takes).await;
    for (a, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.expect("take"), a != 5, "account {a}");
        let next = s.next_nonce(31337, &accounts[a]).await.expect("next");
        assert_eq!(next, Some(if a == 5 { 0 } else { 2 }), "account {a}");
        for (k, id) in ids[a].iter().enumerate() {
            let row = s.tx(id).await.expect("row").expect("exists");
            let list = s.attempts(id).await.expect("attempts");
            if a == 5 {
                assert_eq!((row.status.as_str(), list.len()), ("queued", 0), "{id}");
            } else {
                assert_eq!(row.nonce, Some(k as u64), "{id}");
                assert_eq!((row.status.as_str(), list.len()), ("pending", 1), "{id}");
            }
        }
    }
    // The eleven batches' status envelopes, and none of the stale one's.
    let stream = s.stream("tx.anvil").await.expect("read").expect("stream");
    assert_eq!(stream.events_recorded, 22);
}

#[tokio::test]
async fn a_failing_write_among_concurrent_ones_fails_alone() {
    let (_d, s) = store().await;
    let ids: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
    queued(&s, &ids).await;
    s.raise_next_nonce(31337, SENDER, 0).await.expect("account");
    let first = attempt(0);
    let take = [SignedAttempt {
        tx_id: "s0",
        attempt: &first,
        state: fixtures::state(TxStatus::Pending),
        status: ethgate_core::TxStatus::Pending,
    }];
    let json: Vec<Vec<String>> = ids
        .iter()
        .map(|id| vec![format!("{{\"id\":\"{id}\"}}")])
        .collect();
    // Nine state saves and a take at once; save 4 reports to a stream
    // that does not exist, which fails the write that carries it.
    let saves = (1..10).map(|i| {
        let update = [StateUpdate {
            tx_id: ids[i].clone(),
            state: fixtures::state(TxStatus::Cancelled).clone(),
            status: ethgate_core::TxStatus::Cancelled,
            nonce: None,
            block_number: None,
            error: None,
        }];
        let status = StatusEnvelopes {
            stream: if i == 4 { "tx.nowhere" } else { "tx.anvil" },
            json: &json[i],
        };
        let s = &s;
        async move { s.set_tx_states(&update, status).await }
    });
    let status = StatusEnvelopes {
        stream: "tx.anvil",
        json: &json[0],
    };
    let (took, saved) = tokio::join!(
        s.take_nonces(31337, SENDER, 0, &take, status),
        futures::future::join_all(saves)
    );
    assert!(took.expect("take"));
    for (i, answer) in (1..10).zip(saved) {
        let row = s.tx(&ids[i]).await.expect("row").expect("exists");
        if i == 4 {
            assert!(
                matches!(answer, Err(StoreError::UnknownStream(ref n)) if n == "tx.nowhere"),
                "{answer:?}"
            );
            assert_eq!(row.status.as_str(), "queued", "nothing written for it");
        } else {
            answer.expect("saved");
            assert_eq!(row.status.as_str(), "cancelled", "{}", ids[i]);
        }
    }
    let row = s.tx("s0").await.expect("row").expect("exists");
    assert_eq!((row.status.as_str(), row.nonce), ("pending", Some(0)));
    assert_eq!(s.next_nonce(31337, SENDER).await.expect("next"), Some(1));
    // Every write's envelope but the failed one's.
    let stream = s.stream("tx.anvil").await.expect("read").expect("stream");
    assert_eq!(stream.events_recorded, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_reading_after_the_last_row_misses_none_that_two_replicas_accept() {
    // Two handles with pools and write turns of their own, as two replicas
    // have, accept requests for one account at once while its sender reads
    // the rows after the last one it saw. Ids generated out of commit
    // order would let it step past a row committed late.
    let scratch = Scratch::from_env().await;
    let a = Store::connect(scratch.url()).await.expect("a");
    let b = Store::connect(scratch.url()).await.expect("b");
    let accept = |s: Store, tag: &'static str| async move {
        for k in 0..150 {
            let id = format!("{tag}{k:03}");
            s.insert_txs(&[new_tx(&id, &id, "h", SENDER)])
                .await
                .expect("insert");
        }
    };
    let reader = {
        let a = a.clone();
        tokio::spawn(async move {
            let (mut after, mut seen) = (0i64, std::collections::HashSet::new());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while seen.len() < 300 && std::time::Instant::now() < deadline {
                for (rid, row) in a.new_txs(31337, SENDER, after).await.expect("read") {
                    after = after.max(rid);
                    seen.insert(row.id);
                }
            }
            seen.len()
        })
    };
    tokio::join!(accept(a.clone(), "a"), accept(b.clone(), "b"));
    assert_eq!(
        reader.await.expect("reader"),
        300,
        "every accepted row was read"
    );
}
