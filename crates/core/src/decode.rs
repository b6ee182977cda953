//! ABI decoding of logs into arguments by parameter name.
//!
//! Integers that fit in 53 bits are JSON numbers; wider ones are decimal
//! strings, because JavaScript consumers silently lose precision above 2^53.
//! Indexed dynamic values (strings, bytes, arrays) are only present as their
//! keccak hash in a topic, and are given as that hash.

use std::collections::HashMap;

use alloy_dyn_abi::{DynSolEvent, DynSolValue, Specifier};
use alloy_json_abi::{Event, Param};
use alloy_primitives::{B256, I256, U256};
use serde_json::{Map, Value};

/// Largest integer a JSON number holds exactly in every consumer.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a log could not be decoded. The log is still recorded, with
/// `args: null`, so a consumer sees it and an operator can fix the ABI.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The log has no topics, or a topic0 the stream's ABI doesn't know.
    #[error("no event in the ABI has selector {0:?}")]
    UnknownSelector(Option<B256>),
    /// Topics or data don't match the event's parameters.
    #[error("log does not match {signature}: {source}")]
    Mismatch {
        /// Signature the log claimed by its topic0.
        signature: String,
        /// What the ABI decoder said.
        #[source]
        source: alloy_dyn_abi::Error,
    },
}

/// Decodes the logs of one stream: a lookup from selector to event, built
/// once per stream so decoding a log is one hash-map probe plus the ABI walk.
#[derive(Debug, Clone)]
pub struct EventDecoder {
    by_selector: HashMap<B256, Known>,
}

/// An event with its types resolved once, so decoding never re-parses types
/// or re-hashes the signature.
#[derive(Debug, Clone)]
struct Known {
    event: Event,
    resolved: Option<DynSolEvent>,
    signature: String,
    params: Vec<Param>,
}

/// A decoded log: the event's name and canonical signature (borrowed from
/// the decoder, so decoding allocates only the arguments) and its named
/// arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    /// Event name, e.g. `Transfer`.
    pub name: &'a str,
    /// Canonical signature, e.g. `Transfer(address,address,uint256)`.
    pub signature: &'a str,
    /// Arguments by parameter name.
    pub args: Value,
}

impl EventDecoder {
    /// Indexes the given events by selector (anonymous events are skipped:
    /// they have no selector to filter or match on).
    pub fn new(events: &[Event]) -> Self {
        let by_selector = events
            .iter()
            .filter(|e| !e.anonymous)
            .map(|e| {
                let params = e
                    .inputs
                    .iter()
                    .map(|i| Param {
                        ty: i.ty.clone(),
                        name: i.name.clone(),
                        components: i.components.clone(),
                        internal_type: None,
                    })
                    .collect();
                let known = Known {
                    event: e.clone(),
                    resolved: e.resolve().ok(),
                    signature: e.signature(),
                    params,
                };
                (e.selector(), known)
            })
            .collect();
        EventDecoder { by_selector }
    }

    /// Decodes one log's topics and data.
    pub fn decode(&self, topics: &[B256], data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
        let selector = topics.first().copied();
        let known = selector
            .and_then(|s| self.by_selector.get(&s))
            .ok_or(DecodeError::UnknownSelector(selector))?;
        let (event, signature) = (&known.event, &known.signature);
        let mismatch = |source| DecodeError::Mismatch {
            signature: signature.clone(),
            source,
        };
        let decoded = match &known.resolved {
            Some(r) => r
                .decode_log_parts(topics.iter().copied(), data)
                .map_err(mismatch)?,
            None => {
                return Err(mismatch(alloy_dyn_abi::Error::TypeMismatch {
                    expected: signature.clone(),
                    actual: "an event the ABI decoder cannot resolve".into(),
                }));
            }
        };
        let mut indexed = decoded.indexed.into_iter();
        let mut body = decoded.body.into_iter();
        let mut args = Map::with_capacity(event.inputs.len());
        for (i, input) in event.inputs.iter().enumerate() {
            let value = if input.indexed {
                indexed.next()
            } else {
                body.next()
            };
            let name = if input.name.is_empty() {
                format!("arg{i}")
            } else {
                input.name.clone()
            };
            args.insert(
                name,
                value.map_or(Value::Null, |v| to_json(&v, known.params.get(i))),
            );
        }
        Ok(Decoded {
            name: &event.name,
            signature,
            args: Value::Object(args),
        })
    }
}

fn uint_json(v: &U256) -> Value {
    if *v <= U256::from(MAX_SAFE_INTEGER) {
        Value::from(v.to::<u64>())
    } else {
        Value::String(v.to_string())
    }
}

fn int_json(v: &I256) -> Value {
    let max = I256::try_from(MAX_SAFE_INTEGER).unwrap_or(I256::MAX);
    if *v <= max && *v >= -max {
        Value::from(v.as_i64())
    } else {
        Value::String(v.to_string())
    }
}

/// Converts a decoded value to JSON; `param` gives tuple component names so
/// structs become objects rather than positional arrays.
pub fn to_json(value: &DynSolValue, param: Option<&Param>) -> Value {
    match value {
        DynSolValue::Bool(b) => Value::Bool(*b),
        DynSolValue::Int(v, _) => int_json(v),
        DynSolValue::Uint(v, _) => uint_json(v),
        DynSolValue::FixedBytes(word, size) => {
            Value::String(format!("0x{}", hex_lower(&word[..(*size).min(32)])))
        }
        DynSolValue::Address(a) => Value::String(format!("{a:#x}")),
        DynSolValue::Function(f) => Value::String(format!("0x{}", hex_lower(f.as_slice()))),
        DynSolValue::Bytes(b) => Value::String(format!("0x{}", hex_lower(b))),
        DynSolValue::String(s) => Value::String(s.clone()),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            let elem = param.map(|p| Param {
                ty: p
                    .ty
                    .rsplit_once('[')
                    .map_or(p.ty.clone(), |(t, _)| t.to_owned()),
                name: String::new(),
                components: p.components.clone(),
                internal_type: None,
            });
            Value::Array(items.iter().map(|v| to_json(v, elem.as_ref())).collect())
        }
        DynSolValue::Tuple(items) => {
            let names: Vec<&Param> = param
                .map(|p| p.components.iter().collect())
                .unwrap_or_default();
            if names.len() == items.len() && names.iter().all(|p| !p.name.is_empty()) {
                let mut obj = Map::with_capacity(items.len());
                for (p, v) in names.iter().zip(items) {
                    obj.insert(p.name.clone(), to_json(v, Some(p)));
                }
                Value::Object(obj)
            } else {
                Value::Array(items.iter().map(|v| to_json(v, None)).collect())
            }
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_dyn_abi::DynSolValue as V;
    use alloy_primitives::{Address, keccak256};

    fn event(sig: &str) -> Event {
        Event::parse(sig).expect("valid signature")
    }

    fn topic_addr(a: Address) -> B256 {
        B256::left_padding_from(a.as_slice())
    }

    #[test]
    fn decodes_transfer_by_parameter_name() {
        let ev = event("event Transfer(address indexed from, address indexed to, uint256 value)");
        let dec = EventDecoder::new(std::slice::from_ref(&ev));
        let from = Address::repeat_byte(0xaa);
        let to = Address::repeat_byte(0xbb);
        let data = V::Uint(U256::from(7u64), 256).abi_encode();
        let d = dec
            .decode(&[ev.selector(), topic_addr(from), topic_addr(to)], &data)
            .expect("decodes");
        let (name, sig, args) = (d.name, d.signature, d.args);
        assert_eq!(name, "Transfer");
        assert_eq!(sig, "Transfer(address,address,uint256)");
        assert_eq!(args["from"], format!("{from:#x}"));
        assert_eq!(args["to"], format!("{to:#x}"));
        assert_eq!(args["value"], 7);
    }

    #[test]
    fn integers_over_53_bits_are_decimal_strings() {
        let ev = event("event V(uint256 a, uint256 b, int256 c, int256 d)");
        let dec = EventDecoder::new(std::slice::from_ref(&ev));
        let big = U256::from(1u64 << 53);
        let data = V::Tuple(vec![
            V::Uint(U256::from(MAX_SAFE_INTEGER), 256),
            V::Uint(big, 256),
            V::Int(I256::try_from(-5i64).expect("fits"), 256),
            V::Int(I256::MIN, 256),
        ])
        .abi_encode_params();
        let args = dec.decode(&[ev.selector()], &data).expect("decodes").args;
        assert_eq!(args["a"], MAX_SAFE_INTEGER);
        assert_eq!(args["b"], "9007199254740992");
        assert_eq!(args["c"], -5);
        assert_eq!(args["d"], I256::MIN.to_string());
    }

    #[test]
    fn indexed_string_is_its_hash_and_body_string_is_text() {
        let ev = event("event N(string indexed key, string text, bytes32 tag, bool flag)");
        let dec = EventDecoder::new(std::slice::from_ref(&ev));
        let key_hash = keccak256("k");
        let data = V::Tuple(vec![
            V::String("hello".into()),
            V::FixedBytes(B256::repeat_byte(1), 32),
            V::Bool(true),
        ])
        .abi_encode_params();
        let args = dec
            .decode(&[ev.selector(), key_hash], &data)
            .expect("decodes")
            .args;
        assert_eq!(args["key"], format!("{key_hash}"));
        assert_eq!(args["text"], "hello");
        assert_eq!(args["tag"], format!("{}", B256::repeat_byte(1)));
        assert_eq!(args["flag"], true);
    }

    #[test]
    fn unknown_selector_and_short_data_are_errors_not_panics() {
        let ev = event("event Transfer(address indexed from, address indexed to, uint256 value)");
        let dec = EventDecoder::new(std::slice::from_ref(&ev));
        assert!(matches!(
            dec.decode(&[], &[]),
            Err(DecodeError::UnknownSelector(None))
        ));
        assert!(matches!(
            dec.decode(&[B256::ZERO], &[]),
            Err(DecodeError::UnknownSelector(Some(_)))
        ));
        let err = dec
            .decode(&[ev.selector()], &[1, 2])
            .expect_err("too few topics and data");
        assert!(matches!(err, DecodeError::Mismatch { .. }));
    }
}
