//! Checks a transaction signed elsewhere (a remote signer, a KMS) before
//! ethgate stores or sends it: it must decode, be signed by the account,
//! and carry exactly the fields that were asked for. A signer that is
//! compromised or confused then cannot slip a different transaction
//! (another recipient, value, nonce or fee) past the transaction manager.

use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{Transaction, TxEnvelope};
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
    let field = match (asked, &envelope) {
        (UnsignedTx::Eip1559(a), TxEnvelope::Eip1559(_)) => differing(a, &envelope, "fee"),
        (UnsignedTx::Legacy(a), TxEnvelope::Legacy(_)) => differing(a, &envelope, "gas price"),
        _ => Some("type"),
    };
    if let Some(field) = field {
        return Err(bad(&format!(
            "a transaction whose {field} differs from the request"
        )));
    }
    Ok(SignedTx {
        hash: *envelope.tx_hash(),
        raw: raw.to_vec(),
    })
}

/// The first signed field (by name) in which `got` is not `asked`; `fee`
/// names the fee fields (a legacy transaction's gas price).
fn differing(
    asked: &impl Transaction,
    got: &impl Transaction,
    fee: &'static str,
) -> Option<&'static str> {
    [
        ("chain id", asked.chain_id() == got.chain_id()),
        ("nonce", asked.nonce() == got.nonce()),
        ("gas limit", asked.gas_limit() == got.gas_limit()),
        (
            fee,
            asked.max_fee_per_gas() == got.max_fee_per_gas()
                && asked.max_priority_fee_per_gas() == got.max_priority_fee_per_gas()
                && asked.gas_price() == got.gas_price(),
        ),
        ("recipient", asked.kind() == got.kind()),
        ("value", asked.value() == got.value()),
        ("data", asked.input() == got.input()),
        ("access list", asked.access_list() == got.access_list()),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}
