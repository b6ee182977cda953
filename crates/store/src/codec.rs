//! The stored form of an event: a compact binary record, rendered to the
//! wire JSON only when read.
//!
//! Hashes, topics and data are kept as bytes (half the size of hex), and
//! what is derivable is not kept at all (`id`, `kind`, `topic0`, the stream
//! name and chain id). That halves what the outbox writes per event and lets
//! the envelope's JSON shape change without migrating stored data.
//!
//! Layout (little-endian), each record prefixed by its `u32` length:
//! `version u8 | flags u8 (bit 0: removed) | block_number u64 |
//! block_timestamp u64 | tx_index u32 | log_index u32 | block_hash [32] |
//! tx_hash [32] | address [20] | topic count u8 | topics [32]… |
//! data len u32 | data | event len u16 | event | signature len u16 |
//! signature | args len u32 | args JSON`. A string length of `u16::MAX`
//! means null.

use alloy_primitives::{Address, B256, Bytes};
use ethgate_core::{Decoded, Envelope, EventEnvelope, RawLog, TxEnvelope, event_id};

const VERSION: u8 = 1;
const NULL: u16 = u16::MAX;
/// Offset of `block_number` in a record (after version and flags).
const BLOCK_AT: usize = 2;

/// Why a stored record could not be read.
#[derive(Debug, thiserror::Error)]
#[error("stored event record is malformed: {0}")]
pub struct CodecError(pub &'static str);

fn put_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) if s.len() < NULL as usize => {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        _ => out.extend_from_slice(&NULL.to_le_bytes()),
    }
}

/// An event to record: the canonical log, its block's time, and what the
/// stream's ABI made of it (`None`: recorded undecoded). Borrowed, so the
/// ingest path builds no intermediate envelope.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    /// The log as the node returned it.
    pub log: &'a RawLog,
    /// Unix seconds of its block.
    pub timestamp: u64,
    /// Decoded name, signature and arguments.
    pub decoded: Option<Decoded<'a>>,
}

/// Appends `e` as a length-prefixed record (not removed).
pub fn encode(e: &NewEvent<'_>, out: &mut Vec<u8>) {
    let log = e.log;
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&log.block().to_le_bytes());
    out.extend_from_slice(&e.timestamp.to_le_bytes());
    out.extend_from_slice(&(log.transaction_index.to::<u64>() as u32).to_le_bytes());
    out.extend_from_slice(&(log.index() as u32).to_le_bytes());
    out.extend_from_slice(log.block_hash.as_slice());
    out.extend_from_slice(log.transaction_hash.as_slice());
    out.extend_from_slice(log.address.as_slice());
    out.push(log.topics.len().min(255) as u8);
    for t in log.topics.iter().take(255) {
        out.extend_from_slice(t.as_slice());
    }
    out.extend_from_slice(&(log.data.len() as u32).to_le_bytes());
    out.extend_from_slice(&log.data);
    put_str(out, e.decoded.as_ref().map(|d| d.name));
    put_str(out, e.decoded.as_ref().map(|d| d.signature));
    let args_at = out.len();
    out.extend_from_slice(&[0; 4]);
    match &e.decoded {
        Some(d) => {
            if serde_json::to_writer(&mut *out, &d.args).is_err() {
                out.truncate(args_at + 4);
                out.extend_from_slice(b"null");
            }
        }
        None => out.extend_from_slice(b"null"),
    }
    let args_len = (out.len() - args_at - 4) as u32;
    out[args_at..args_at + 4].copy_from_slice(&args_len.to_le_bytes());
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// The records of a segment payload, in order.
pub fn records(payload: &[u8]) -> impl Iterator<Item = Result<&[u8], CodecError>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(CodecError("truncated length")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            rest = &[];
            return Some(Err(CodecError("truncated record")));
        }
        let (record, tail) = tail.split_at(len);
        rest = tail;
        Some(Ok(record))
    })
}

/// The block number of a record, without decoding the rest.
pub fn block_number(record: &[u8]) -> Result<u64, CodecError> {
    record
        .get(BLOCK_AT..BLOCK_AT + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(CodecError("no block number"))
}

/// Appends a copy of `record`, length-prefixed, marked as a retraction.
pub fn push_retraction(record: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(record.len() as u32).to_le_bytes());
    let at = out.len();
    out.extend_from_slice(record);
    if let Some(flags) = out.get_mut(at + 1) {
        *flags |= 1;
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError("record too short"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| CodecError("u16"))?,
        ))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| CodecError("u32"))?,
        ))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| CodecError("u64"))?,
        ))
    }
    fn b256(&mut self) -> Result<B256, CodecError> {
        Ok(B256::from_slice(self.take(32)?))
    }
    fn str(&mut self) -> Result<Option<String>, CodecError> {
        match self.u16()? {
            NULL => Ok(None),
            n => Ok(Some(
                String::from_utf8(self.take(n as usize)?.to_vec())
                    .map_err(|_| CodecError("utf-8"))?,
            )),
        }
    }
}

/// Flag of a transaction status record: the rest after the (zero) block
/// number is the status envelope's JSON.
const TX_RECORD: u8 = 2;
/// Flag of an audit record (JSON, like a status record).
const AUDIT_RECORD: u8 = 4;

/// Appends a transaction status envelope (its JSON) as a length-prefixed
/// record. Status records have block number 0 and are never retracted.
pub fn encode_tx(json: &str, out: &mut Vec<u8>) {
    encode_json(TX_RECORD, json, out);
}

/// Appends an audit envelope (its JSON) as a length-prefixed record, like
/// a status record.
pub fn encode_audit(json: &str, out: &mut Vec<u8>) {
    encode_json(AUDIT_RECORD, json, out);
}

fn encode_json(kind: u8, json: &str, out: &mut Vec<u8>) {
    let len = (2 + 8 + json.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(json.as_bytes());
}

/// Rebuilds the envelope of a record of `stream` on `chain_id`.
pub fn decode(
    record: &[u8],
    stream: &str,
    chain_id: u64,
    seq: u64,
) -> Result<Envelope, CodecError> {
    let mut r = Reader(record);
    if r.u8()? != VERSION {
        return Err(CodecError("unknown version"));
    }
    let flags = r.u8()?;
    if flags & AUDIT_RECORD != 0 {
        let _block = r.u64()?;
        let mut a: ethgate_core::AuditEnvelope =
            serde_json::from_slice(r.0).map_err(|_| CodecError("audit envelope JSON"))?;
        a.seq = Some(seq);
        return Ok(Envelope::Audit(a));
    }
    if flags & TX_RECORD != 0 {
        let _block = r.u64()?;
        let mut t: TxEnvelope =
            serde_json::from_slice(r.0).map_err(|_| CodecError("status envelope JSON"))?;
        t.seq = Some(seq);
        return Ok(Envelope::Tx(t));
    }
    decode_event(r, flags, stream, chain_id, seq).map(Envelope::Event)
}

fn decode_event(
    mut r: Reader<'_>,
    flags: u8,
    stream: &str,
    chain_id: u64,
    seq: u64,
) -> Result<EventEnvelope, CodecError> {
    let removed = flags & 1 == 1;
    let block_number = r.u64()?;
    let block_timestamp = r.u64()?;
    let tx_index = u64::from(r.u32()?);
    let log_index = u64::from(r.u32()?);
    let block_hash = r.b256()?;
    let tx_hash = r.b256()?;
    let address = Address::from_slice(r.take(20)?);
    let topics = (0..r.u8()?)
        .map(|_| r.b256())
        .collect::<Result<Vec<_>, _>>()?;
    let data_len = r.u32()? as usize;
    let data = Bytes::copy_from_slice(r.take(data_len)?);
    let event = r.str()?;
    let signature = r.str()?;
    let args_len = r.u32()? as usize;
    let args = serde_json::from_slice(r.take(args_len)?).map_err(|_| CodecError("args JSON"))?;
    Ok(EventEnvelope {
        id: event_id(chain_id, &block_hash, log_index),
        kind: "event".to_owned(),
        stream: stream.to_owned(),
        chain_id,
        block_number,
        block_hash,
        block_timestamp,
        tx_hash,
        tx_index,
        log_index,
        address: format!("{address:#x}"),
        event,
        signature,
        topic0: topics.first().copied(),
        args,
        topics,
        data,
        removed,
        seq: Some(seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::U64;
    use ethgate_core::RawLog;

    fn log() -> RawLog {
        RawLog {
            address: Address::repeat_byte(0xab),
            topics: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
            data: Bytes::from(vec![1, 2, 3]),
            block_number: U64::from(77),
            block_hash: B256::repeat_byte(9),
            block_timestamp: None,
            transaction_hash: B256::repeat_byte(8),
            transaction_index: U64::from(3),
            log_index: U64::from(5),
            removed: false,
        }
    }

    fn decoded() -> Decoded<'static> {
        Decoded {
            name: "Ev",
            signature: "Ev(uint256)",
            args: serde_json::json!({"v": "12345678901234567890"}),
        }
    }

    #[test]
    fn round_trips_to_the_envelope_of_the_log() {
        let log = log();
        for d in [Some(decoded()), None] {
            let mut buf = Vec::new();
            let new = NewEvent {
                log: &log,
                timestamp: 1_700_000_000,
                decoded: d.clone(),
            };
            encode(&new, &mut buf);
            encode(&new, &mut buf);
            let recs: Vec<&[u8]> = records(&buf).collect::<Result<_, _>>().expect("records");
            assert_eq!(recs.len(), 2);
            assert_eq!(block_number(recs[0]).expect("block"), 77);
            let mut want = EventEnvelope::from_log("s", 10, &log, 1_700_000_000, d);
            want.seq = Some(4);
            assert_eq!(
                decode(recs[1], "s", 10, 4).expect("decodes"),
                Envelope::Event(want.clone())
            );
            let mut r = Vec::new();
            push_retraction(recs[0], &mut r);
            let back =
                decode(records(&r).next().expect("one").expect("ok"), "s", 10, 4).expect("decodes");
            let Envelope::Event(back) = back else {
                panic!("an event")
            };
            assert!(back.removed);
            assert_eq!(back.id, want.id);
        }
    }

    #[test]
    fn a_status_record_round_trips_and_reads_block_zero() {
        let t = TxEnvelope {
            id: "tx_1:confirmed".into(),
            kind: "tx".into(),
            tx_id: "tx_1".into(),
            idempotency_key: "k".into(),
            chain_id: 5,
            from: "0xab".into(),
            nonce: Some(3),
            status: ethgate_core::TxStatus::Confirmed,
            hash: Some("0x01".into()),
            block_number: Some(9),
            error: None,
            metadata: serde_json::json!({"order": 7}),
            seq: None,
        };
        let mut buf = Vec::new();
        encode_tx(&serde_json::to_string(&t).expect("json"), &mut buf);
        let rec = records(&buf).next().expect("one").expect("ok");
        assert_eq!(block_number(rec).expect("block"), 0);
        let mut want = t.clone();
        want.seq = Some(12);
        assert_eq!(
            decode(rec, "tx.x", 5, 12).expect("decodes"),
            Envelope::Tx(want)
        );
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let mut buf = Vec::new();
        let log = log();
        encode(
            &NewEvent {
                log: &log,
                timestamp: 1,
                decoded: Some(decoded()),
            },
            &mut buf,
        );
        for cut in [1, 3, 10, 60, buf.len() - 1] {
            let short = &buf[..cut];
            let ok = records(short).all(|r| r.and_then(|rec| decode(rec, "s", 1, 1)).is_ok());
            assert!(!ok, "cut at {cut}");
        }
        assert!(decode(&[2, 0], "s", 1, 1).is_err(), "unknown version");
        assert!(block_number(&[1]).is_err());
    }
}
