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

/// A made-up state of `status`'s kind, stored (the store never looks
/// inside a state; its tests only need one that decodes). Made once per
/// status, so rows built in closures can borrow it.
pub fn state(status: ethgate_core::TxStatus) -> &'static crate::StoredState {
    static MADE: std::sync::OnceLock<
        std::collections::HashMap<ethgate_core::TxStatus, crate::StoredState>,
    > = std::sync::OnceLock::new();
    let made = MADE.get_or_init(|| {
        ethgate_core::TxStatus::ALL
            .iter()
            .map(|s| (*s, made_up(*s)))
            .collect()
    });
    &made[&status]
}

fn made_up(status: ethgate_core::TxStatus) -> crate::StoredState {
    use ethgate_core::TxStatus as S;
    use ethgate_core::tx::{Inclusion, Pending, TxState};
    let included = Inclusion {
        nonce: 0,
        block_number: 1,
        block_hash: B256::repeat_byte(1),
        hash: B256::repeat_byte(2),
        success: status != S::Failed,
        noop: None,
    };
    let state = match status {
        S::Queued => TxState::Queued,
        S::Pending => TxState::Pending(Pending {
            nonce: 0,
            attempts: 1,
            sent_at: 0,
            bumped_at: 0,
            capped: false,
            ending: None,
            unaccounted_since: None,
        }),
        S::Mined => TxState::Mined(included),
        S::Confirmed => TxState::Confirmed(included),
        S::Failed => TxState::Failed(included),
        S::Rejected => TxState::Rejected {
            reason: "made up".into(),
        },
        S::Cancelled => TxState::Cancelled { nonce: None },
        S::Expired => TxState::Expired { nonce: None },
    };
    crate::StoredState::encode(&state).expect("a state encodes")
}
