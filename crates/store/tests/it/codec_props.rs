//! Properties of the outbox record codec, over generated inputs: every
//! event written reads back as the envelope it was (retraction flag
//! included), and no byte string — a torn write, a foreign row, a flipped
//! bit — panics the reader; it is an error at worst.

use alloy_primitives::{Address, B256, Bytes, U64};
use ethgate_core::{Decoded, Envelope, RawLog};
use ethgate_store::codec::{self, NewEvent};
use proptest::prelude::*;

fn log() -> impl Strategy<Value = RawLog> {
    (
        any::<[u8; 20]>(),
        proptest::collection::vec(any::<[u8; 32]>(), 0..5),
        proptest::collection::vec(any::<u8>(), 0..300),
        (any::<u32>(), any::<[u8; 32]>(), any::<[u8; 32]>()),
        (0u64..1 << 20, 0u64..1 << 20),
    )
        .prop_map(
            |(address, topics, data, (block, bh, th), (txi, li))| RawLog {
                address: Address::from(address),
                topics: topics.into_iter().map(B256::from).collect(),
                data: Bytes::from(data),
                block_number: U64::from(block),
                block_hash: B256::from(bh),
                block_timestamp: None,
                transaction_hash: B256::from(th),
                transaction_index: U64::from(txi),
                log_index: U64::from(li),
                removed: false,
            },
        )
}

proptest! {
    #[test]
    fn every_record_reads_back_as_written(
        log in log(),
        ts in any::<u32>(),
        name in "[A-Za-z][A-Za-z0-9_]{0,20}",
        arg in any::<i64>(),
        decoded in any::<bool>(),
        retract in any::<bool>(),
    ) {
        let sig = format!("{name}(int64)");
        let d = decoded.then(|| Decoded { name: &name, signature: &sig, args: serde_json::json!({"x": arg}) });
        let mut out = Vec::new();
        codec::encode(&NewEvent { log: &log, timestamp: u64::from(ts), decoded: d }, &mut out);
        if retract {
            let record = codec::records(&out).next().expect("one").expect("record").to_vec();
            out.clear();
            codec::push_retraction(&record, &mut out);
        }
        let records: Vec<&[u8]> = codec::records(&out).collect::<Result<_, _>>().expect("records");
        prop_assert_eq!(records.len(), 1);
        prop_assert_eq!(codec::block_number(records[0]).expect("block"), log.block());
        let Envelope::Event(e) = codec::decode(records[0], "s", 7, 9).expect("decodes") else {
            panic!("an event record read back as a status");
        };
        prop_assert_eq!(e.block_number, log.block());
        prop_assert_eq!(e.block_hash, log.block_hash);
        prop_assert_eq!(e.tx_hash, log.transaction_hash);
        prop_assert_eq!(e.log_index, log.log_index.to::<u64>());
        prop_assert_eq!(e.tx_index, log.transaction_index.to::<u64>());
        prop_assert_eq!(&e.topics, &log.topics);
        prop_assert_eq!(&e.data, &log.data);
        prop_assert_eq!(e.block_timestamp, u64::from(ts));
        prop_assert_eq!(e.removed, retract);
        prop_assert_eq!(e.seq, Some(9));
        prop_assert_eq!(e.event.as_deref(), decoded.then_some(name.as_str()));
        let want_args = if decoded { serde_json::json!({"x": arg}) } else { serde_json::Value::Null };
        prop_assert_eq!(e.args, want_args);
    }

    #[test]
    fn no_byte_string_panics_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for record in codec::records(&bytes).flatten() {
            let _ = codec::block_number(record);
            let _ = codec::decode(record, "s", 1, 1);
        }
        let _ = codec::decode(&bytes, "s", 1, 1);
    }

    #[test]
    fn a_damaged_record_is_an_error_or_a_record_never_a_panic(
        log in log(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let mut out = Vec::new();
        codec::encode(&NewEvent { log: &log, timestamp: 1, decoded: None }, &mut out);
        let mut bad = out.clone();
        let at = flip.index(bad.len());
        bad[at] ^= 1 << bit;
        for payload in [&out[..cut.index(out.len())], &bad[..]] {
            for record in codec::records(payload).flatten() {
                let _ = codec::decode(record, "s", 1, 1);
            }
        }
    }
}
