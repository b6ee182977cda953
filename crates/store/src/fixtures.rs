//! Made-up blocks, logs and committed ranges for tests and benchmarks
//! that need an outbox without a chain. Behind the `scratch` feature, as
//! [`crate::scratch`] is: the gateway itself never makes one up.

use alloy_primitives::{Address, B256, Bytes, U64};
use ethgate_core::{BlockRef, Decoded, RawLog};

use crate::scratch::Scratch;
use crate::{NewEvent, RangeCommit, Store, StoreError};

/// Seconds between made-up blocks.
const BLOCK_SECS: u64 = 12;

/// Block `number`: its hash every byte `tag`, a timestamp of
/// [`BLOCK_SECS`] a block.
pub fn block(number: u64, tag: u8) -> BlockRef {
    BlockRef {
        number,
        hash: B256::repeat_byte(tag),
        parent_hash: B256::ZERO,
        timestamp: number * BLOCK_SECS,
    }
}

/// Log `index` of `address` in `block`: one topic (every byte 0x09), no
/// data, transaction 0x03….
pub fn log(address: Address, block: &BlockRef, index: u64) -> RawLog {
    RawLog {
        address,
        topics: vec![B256::repeat_byte(9)],
        data: Bytes::new(),
        block_number: U64::from(block.number),
        block_hash: block.hash,
        block_timestamp: None,
        transaction_hash: B256::repeat_byte(3),
        transaction_index: U64::ZERO,
        log_index: U64::from(index),
        removed: false,
    }
}

/// `logs` as events to record, each decoded as `decoded` says (or not),
/// stamped with its block's fixture timestamp.
pub fn events<'a>(logs: &'a [RawLog], decoded: Option<&Decoded<'a>>) -> Vec<NewEvent<'a>> {
    logs.iter()
        .map(|log| NewEvent {
            log,
            timestamp: log.block() * BLOCK_SECS,
            decoded: decoded.cloned(),
        })
        .collect()
}

/// Records `events` in one range of `stream` over `blocks`, on top of
/// cursor `expected`; the cursor moves to the last block.
pub async fn record(
    store: &Store,
    stream: &str,
    expected: Option<u64>,
    blocks: &[BlockRef],
    events: Vec<NewEvent<'_>>,
) -> Result<(), StoreError> {
    let Some(cursor) = blocks.last().copied() else {
        return Ok(());
    };
    store
        .commit_range(&RangeCommit {
            stream: stream.into(),
            expected_cursor: expected,
            events,
            blocks: blocks.to_vec(),
            cursor,
            keep_window: 100,
            children: Vec::new(),
        })
        .await
}

/// A fresh store on the backend `ETHGATE_TEST_STORE` names, with
/// `stream` registered for `chain_id`; keep the scratch while the store
/// is used.
pub async fn store(stream: &str, chain_id: u64) -> (Scratch, Store) {
    let scratch = Scratch::from_env().await;
    let store = Store::connect(scratch.url()).await.expect("connect");
    store.ensure_stream(stream, chain_id).await.expect("stream");
    (scratch, store)
}
