//! Contracts added to a recording stream, on either backend: their
//! backfill moves on only from where it was, appends without moving the
//! stream's cursor, joins the filter at the cursor, and a rewind below
//! its progress sends it back to the fork.

use alloy_primitives::Address;
use ethgate_core::{BlockRef, RawLog};
use ethgate_store::{AddedRange, NewEvent, RangeCommit, StoreError, fixtures};

fn block(n: u64) -> BlockRef {
    fixtures::block(n, n as u8)
}

fn log(address: Address, n: u64) -> RawLog {
    fixtures::log(address, &block(n), 0)
}

fn events(logs: &[RawLog]) -> Vec<NewEvent<'_>> {
    fixtures::events(logs, None)
}

#[tokio::test]
async fn an_added_contracts_backfill_appends_moves_on_and_joins_at_the_cursor() {
    let (_scratch, s) = fixtures::store("s", 1).await;
    let (old, new) = (Address::repeat_byte(1), Address::repeat_byte(2));
    s.set_stream_addresses("s", &[old], &[], 0, "h")
        .await
        .expect("set");
    let main: Vec<RawLog> = (1..=10).map(|n| log(old, n)).collect();
    s.commit_range(&RangeCommit {
        stream: "s".into(),
        expected_cursor: None,
        events: events(&main),
        blocks: (1..=10).map(block).collect(),
        cursor: block(10),
        keep_window: 100,
        children: Vec::new(),
    })
    .await
    .expect("range");
    s.set_stream_addresses("s", &[], &[new], 1, "h2")
        .await
        .expect("add");
    assert_eq!(
        s.stream_addresses("s").await.expect("read"),
        [(old, None), (new, Some(1))]
    );
    let added: Vec<RawLog> = (1..=10).map(|n| log(new, n)).collect();
    let range = |from: u64, to: u64| AddedRange {
        stream: "s".into(),
        cursor: 10,
        addresses: vec![new],
        from,
        to,
        events: events(&added[(from - 1) as usize..to as usize]),
    };
    s.commit_added(&range(1, 4)).await.expect("first part");
    assert!(
        matches!(
            s.commit_added(&range(1, 4)).await,
            Err(StoreError::CursorConflict { .. })
        ),
        "the same part twice is refused"
    );
    let row = s.stream("s").await.expect("read").expect("row");
    assert_eq!(row.cursor, Some(10), "the cursor did not move");
    assert_eq!(row.events_recorded, 14);
    // A reorg at block 2 sends the backfill back to block 3.
    s.rewind("s", Some(10), Some(block(2)))
        .await
        .expect("rewind");
    assert_eq!(
        s.stream_addresses("s").await.expect("read")[1],
        (new, Some(3))
    );
    let main: Vec<RawLog> = (3..=10).map(|n| log(old, n)).collect();
    s.commit_range(&RangeCommit {
        stream: "s".into(),
        expected_cursor: Some(2),
        events: events(&main),
        blocks: (3..=10).map(block).collect(),
        cursor: block(10),
        keep_window: 100,
        children: Vec::new(),
    })
    .await
    .expect("the new branch");
    s.commit_added(&range(3, 10)).await.expect("the rest");
    assert_eq!(
        s.stream_addresses("s").await.expect("read"),
        [(old, None), (new, None)],
        "at the cursor it joins the filter"
    );
    let mut live: Vec<(String, (u64, String))> = Vec::new();
    for e in s.events_after("s", 0, 1_000).await.expect("read") {
        let e = e.envelope.as_event().expect("an event").clone();
        if e.removed {
            live.retain(|(id, _)| *id != e.id);
        } else {
            live.push((e.id.clone(), (e.block_number, e.address.clone())));
        }
    }
    let mut got: Vec<(u64, String)> = live.into_iter().map(|(_, k)| k).collect();
    got.sort();
    let mut want: Vec<(u64, String)> = (1..=10)
        .flat_map(|n| [(n, format!("{old:#x}")), (n, format!("{new:#x}"))])
        .collect();
    want.sort();
    assert_eq!(got, want, "each block's logs of both contracts, once");
}
