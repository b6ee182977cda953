//! The API's view of a request and its attempts. Typed, so the HTTP API's
//! OpenAPI document is generated from the very structure it returns.

use alloy_primitives::{Address, B256, Bytes, U256};
use ethgate_core::{TxState, TxStatus};
use ethgate_store::{AttemptRow, TxRow};
use serde::Serialize;
use serde_json::Value;

use crate::TxRequest;

/// A stored request that no longer reads back: a store written by
/// something else, or a bug. Shown as an error, never as zeros.
#[derive(Debug, thiserror::Error)]
#[error("transaction {id}: stored {what} does not parse: {source}")]
pub struct CorruptRow {
    /// The request's id.
    pub id: String,
    /// Which column.
    pub what: &'static str,
    /// The parse error.
    pub source: serde_json::Error,
}

/// One transaction request as `GET /v1/transactions/{id}` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TxView {
    /// The gateway's id (`tx_…`).
    pub id: String,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// Where the request is in its life.
    pub status: TxStatus,
    /// The `[[chains]]` name (`null` when the stored request no longer
    /// reads back: such a request ends `rejected`, and is still shown).
    pub chain: Option<String>,
    /// The chain id it is signed for.
    pub chain_id: u64,
    /// The sending account, 0x lowercase.
    pub from: String,
    /// The called contract or recipient.
    #[schema(value_type = Option<String>)]
    pub to: Option<Address>,
    /// Wei sent, 0x hex.
    #[schema(value_type = Option<String>)]
    pub value: Option<U256>,
    /// Calldata, 0x hex.
    #[schema(value_type = Option<String>)]
    pub data: Option<Bytes>,
    /// The nonce it holds or used, once it has one.
    pub nonce: Option<u64>,
    /// The hash of the attempt that was included, once mined.
    #[schema(value_type = Option<String>)]
    pub hash: Option<B256>,
    /// The block it is mined in.
    pub block_number: Option<u64>,
    /// That block's hash.
    #[schema(value_type = Option<String>)]
    pub block_hash: Option<B256>,
    /// Depth asked for `confirmed`.
    pub confirmations: Option<u64>,
    /// Unix seconds after which it is cancelled as expired.
    pub valid_until: Option<u64>,
    /// The revert reason of a rejected request, or the last broadcast
    /// refusal.
    pub error: Option<String>,
    /// The caller's metadata, echoed back.
    pub metadata: Value,
    /// Signed attempts, oldest first (empty in lists).
    pub attempts: Vec<AttemptView>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// One signed attempt: the first signing or a replacement.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first signing, then each replacement.
    pub n: u32,
    /// The nonce it was signed at.
    pub nonce: u64,
    /// Its transaction hash.
    pub hash: String,
    /// A 0-value self-send replacing the request (cancel or expiry).
    pub noop: bool,
    /// Gas limit signed.
    pub gas_limit: u64,
    /// Max fee per gas, wei, decimal.
    pub max_fee_per_gas: String,
    /// Priority fee per gas, wei, decimal.
    pub max_priority_fee_per_gas: String,
    /// Unix seconds.
    pub created_at: i64,
}

impl TxView {
    /// The view of a stored request and its attempts.
    pub fn of(row: &TxRow, attempts: &[AttemptRow]) -> Result<TxView, CorruptRow> {
        let corrupt = |what, source| CorruptRow {
            id: row.id.clone(),
            what,
            source,
        };
        let state: TxState = row.state.decode().map_err(|e| corrupt("state", e))?;
        // A request that no longer reads back ends `rejected` (it never
        // took a nonce); it is shown with its request fields null.
        let req: Option<TxRequest> = serde_json::from_str(&row.request).ok();
        let included = match &state {
            TxState::Mined(i) | TxState::Confirmed(i) | TxState::Failed(i) => Some(i),
            _ => None,
        };
        Ok(TxView {
            id: row.id.clone(),
            idempotency_key: row.idempotency_key.clone(),
            status: state.kind(),
            chain: req.as_ref().map(|r| r.chain.clone()),
            chain_id: row.chain_id,
            from: row.sender.clone(),
            to: req.as_ref().map(|r| r.to),
            value: req.as_ref().map(|r| r.value),
            data: req.as_ref().map(|r| r.data.clone()),
            nonce: row.nonce,
            hash: included.map(|i| i.hash),
            block_number: row.block_number,
            block_hash: included.map(|i| i.block_hash),
            confirmations: req.as_ref().map(|r| r.confirmations),
            valid_until: req.as_ref().and_then(|r| r.valid_until),
            error: row.error.clone(),
            metadata: req.map_or(Value::Null, |r| r.metadata),
            attempts: attempts.iter().map(AttemptView::of).collect(),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl AttemptView {
    fn of(a: &AttemptRow) -> AttemptView {
        AttemptView {
            n: a.n,
            nonce: a.nonce,
            hash: a.hash.clone(),
            noop: a.noop,
            gas_limit: a.gas_limit,
            max_fee_per_gas: a.max_fee.to_string(),
            max_priority_fee_per_gas: a.max_priority_fee.to_string(),
            created_at: a.created_at,
        }
    }
}

/// Why a request could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] ethgate_store::StoreError),
    /// A stored row does not read back.
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
}
