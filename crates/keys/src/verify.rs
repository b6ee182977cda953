//! Checks a transaction signed elsewhere (a remote signer, a KMS) before
//! ethgate stores or sends it: it must decode, be signed by the account,
//! and carry exactly the fields that were asked for. A signer that is
//! compromised or confused then cannot slip a different transaction
//! (another recipient, value, nonce or fee) past the transaction manager.

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::Address;

use crate::{KeyError, SignedTx, UnsignedTx};

/// Decodes `raw`, checks it against `asked` and `address`, and returns it
/// with its hash.
pub fn signed_as_asked(
    raw: &[u8],
    asked: &UnsignedTx,
    address: Address,
) -> Result<SignedTx, KeyError> {
    let bad = |why: &str| KeyError::Sign(format!("the signer returned {why}"));
    let mut slice = raw;
    let envelope = TxEnvelope::decode_2718(&mut slice)
        .map_err(|e| bad(&format!("bytes that are not a transaction ({e})")))?;
    if !slice.is_empty() {
        return Err(bad("trailing bytes after the transaction"));
    }
    let signer = envelope
        .recover_signer()
        .map_err(|_| bad("a signature that does not recover"))?;
    if signer != address {
        return Err(bad(&format!(
            "a transaction signed by {signer:#x}, not {address:#x}"
        )));
    }
    let differs = |field: &str| {
        bad(&format!(
            "a transaction whose {field} differs from the request"
        ))
    };
    match (asked, &envelope) {
        (UnsignedTx::Eip1559(a), TxEnvelope::Eip1559(s)) => {
            let t = s.tx();
            if t.chain_id != a.chain_id {
                return Err(differs("chain id"));
            }
            if t.nonce != a.nonce {
                return Err(differs("nonce"));
            }
            if t.gas_limit != a.gas_limit {
                return Err(differs("gas limit"));
            }
            if t.max_fee_per_gas != a.max_fee_per_gas
                || t.max_priority_fee_per_gas != a.max_priority_fee_per_gas
            {
                return Err(differs("fee"));
            }
            if t.to != a.to {
                return Err(differs("recipient"));
            }
            if t.value != a.value {
                return Err(differs("value"));
            }
            if t.input != a.input {
                return Err(differs("data"));
            }
            if t.access_list != a.access_list {
                return Err(differs("access list"));
            }
        }
        (UnsignedTx::Legacy(a), TxEnvelope::Legacy(s)) => {
            let t = s.tx();
            if t.chain_id != a.chain_id {
                return Err(differs("chain id"));
            }
            if t.nonce != a.nonce {
                return Err(differs("nonce"));
            }
            if t.gas_limit != a.gas_limit {
                return Err(differs("gas limit"));
            }
            if t.gas_price != a.gas_price {
                return Err(differs("gas price"));
            }
            if t.to != a.to {
                return Err(differs("recipient"));
            }
            if t.value != a.value {
                return Err(differs("value"));
            }
            if t.input != a.input {
                return Err(differs("data"));
            }
        }
        _ => return Err(differs("type")),
    }
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: raw.to_vec(),
    })
}
