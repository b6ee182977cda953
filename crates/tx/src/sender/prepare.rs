//! Preparing a transaction: the call it makes, why a call failed, and
//! signing an attempt (EIP-1559, or legacy on chains without
//! it) through the account's signer — which may be local, remote or a KMS.

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use ethgate_chain::ChainError;
use ethgate_keys::{KeyError, UnsignedTx};
use ethgate_store::{AttemptRow, NewAttempt};
use serde_json::json;

use super::{Sender, TickError, now};

/// Signatures per blocking task in [`Sender::sign_many`].
const SIGN_CHUNK: usize = 256;

/// The attempt record of a signed transaction, with the fees it was
/// priced at (a legacy transaction keeps only the gas price; the tip is
/// kept for its bumps).
fn attempt(tx: &UnsignedTx, fees: Fees, signed: ethgate_keys::SignedTx, noop: bool) -> NewAttempt {
    let (nonce, gas_limit) = match tx {
        UnsignedTx::Eip1559(t) => (t.nonce, t.gas_limit),
        UnsignedTx::Legacy(t) => (t.nonce, t.gas_limit),
    };
    NewAttempt {
        nonce,
        hash: format!("{}", signed.hash),
        raw: signed.raw,
        noop,
        gas_limit,
        max_fee: fees.max_fee,
        max_priority_fee: fees.max_priority_fee,
    }
}
use crate::fees::Fees;
use crate::request::TxRequest;

impl Sender {
    /// Why a mined transaction reverted, which its receipt does not say:
    /// its call replayed at its block (as libraries do; the state there is
    /// after the block, which may differ from what the transaction saw, so
    /// the reason says it comes from a replay).
    pub(super) async fn why_failed(
        &mut self,
        row_id: &str,
        req: &TxRequest,
        i: &ethgate_core::tx::Inclusion,
    ) -> String {
        let hash = format!("{}", i.hash);
        let gas = self.attempts_of(row_id).await.ok().and_then(|list| {
            list.iter()
                .find(|a| a.hash.eq_ignore_ascii_case(&hash))
                .map(|a| a.gas_limit)
        });
        let sim = self.simulator();
        let mut call = sim.call_of(req);
        if let Some(gas) = gas {
            call["gas"] = json!(alloy_primitives::U64::from(gas));
        }
        let block = format!("{:#x}", i.block_number);
        let n = i.block_number;
        match self
            .account
            .pool
            .call::<serde_json::Value>("eth_call", json!([call, block]))
            .await
        {
            Ok(_) => format!(
                "reverted on chain in block {n}; the call replayed at that block succeeds (the state it ran on has changed)"
            ),
            Err(ChainError::Rpc { message, data, .. }) => format!(
                "reverted on chain in block {n}; replayed there: {}",
                sim.revert_reason(req, message, data)
            ),
            Err(e) => format!("reverted on chain in block {n}; the replay failed: {e}"),
        }
    }

    /// The transaction to sign: EIP-1559, or legacy on chains without it.
    pub(super) fn unsigned(
        &self,
        nonce: u64,
        to: Address,
        value: U256,
        data: Bytes,
        gas_limit: u64,
        fees: Fees,
    ) -> UnsignedTx {
        if self.account.legacy {
            UnsignedTx::Legacy(alloy_consensus::TxLegacy {
                chain_id: Some(self.account.chain_id),
                nonce,
                gas_price: fees.max_fee,
                gas_limit,
                to: TxKind::Call(to),
                value,
                input: data,
            })
        } else {
            UnsignedTx::Eip1559(TxEip1559 {
                chain_id: self.account.chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: fees.max_fee,
                max_priority_fee_per_gas: fees.max_priority_fee,
                to: TxKind::Call(to),
                value,
                access_list: Default::default(),
                input: data,
            })
        }
    }

    /// Signs one attempt (`tx`, priced at `fees`).
    pub(super) async fn sign(
        &self,
        tx: UnsignedTx,
        fees: Fees,
        noop: bool,
    ) -> Result<NewAttempt, TickError> {
        let signed = self.account.signer.sign(tx.clone()).await?;
        Ok(attempt(&tx, fees, signed, noop))
    }

    /// Signs many first attempts off the async workers (a thousand local
    /// signatures hold a core for tens of milliseconds, which the API's
    /// requests would otherwise wait behind), in chunks that run on
    /// whatever cores are free.
    pub(super) fn sign_many(
        &self,
        txs: Vec<(UnsignedTx, Fees)>,
    ) -> tokio::task::JoinHandle<Result<Vec<NewAttempt>, KeyError>> {
        let signer = self.account.signer.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            let chunks: Vec<Vec<(UnsignedTx, Fees)>> =
                txs.chunks(SIGN_CHUNK).map(<[_]>::to_vec).collect();
            let tasks = chunks.into_iter().map(|chunk| {
                let signer = signer.clone();
                let handle = handle.clone();
                tokio::task::spawn_blocking(move || {
                    chunk
                        .into_iter()
                        .map(|(tx, fees)| {
                            let signed = handle.block_on(signer.sign(tx.clone()))?;
                            Ok(attempt(&tx, fees, signed, false))
                        })
                        .collect::<Result<Vec<_>, KeyError>>()
                })
            });
            let mut out = Vec::new();
            for done in futures::future::join_all(tasks).await {
                out.extend(done.map_err(|e| KeyError::Sign(format!("signing task: {e}")))??);
            }
            Ok(out)
        })
    }

    pub(super) fn remember(&mut self, id: &str, a: &NewAttempt) {
        let list = self.attempts.entry(id.to_owned()).or_default();
        list.push(AttemptRow {
            n: list.len() as u32 + 1,
            nonce: a.nonce,
            hash: a.hash.clone(),
            raw: a.raw.clone(),
            noop: a.noop,
            gas_limit: a.gas_limit,
            max_fee: a.max_fee,
            max_priority_fee: a.max_priority_fee,
            created_at: now() as i64,
        });
    }
}
