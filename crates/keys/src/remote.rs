//! A signer that asks a remote service over JSON-RPC
//! (`eth_signTransaction`, as Web3Signer, Clef and a node's unlocked
//! accounts speak it), so the key can live in an HSM-backed service or on
//! another machine. What comes back is checked (see `verify`) before it is
//! used: the remote side signs, it does not decide.

use std::time::Duration;

use alloy_primitives::{Address, U64, U256, hex};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use crate::{KeyError, SignedTx, Signer, UnsignedTx, verify};

/// An account whose key a JSON-RPC signer holds.
pub struct RemoteSigner {
    url: String,
    address: Address,
    http: reqwest::Client,
}

impl std::fmt::Debug for RemoteSigner {
    // The URL may carry credentials: only the address is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl RemoteSigner {
    /// A signer for `address` at `url`, giving up on one signature after
    /// `timeout`.
    pub fn new(url: &str, address: Address, timeout: Duration) -> Result<Self, KeyError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| KeyError::Remote(format!("signer url is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(KeyError::Remote("signer url must be http or https".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| KeyError::Remote(format!("cannot build an HTTP client: {e}")))?;
        Ok(RemoteSigner {
            url: url.to_owned(),
            address,
            http,
        })
    }

    fn request(&self, tx: &UnsignedTx) -> Value {
        match tx {
            UnsignedTx::Eip1559(t) => json!({
                "from": self.address,
                "to": t.to.to(),
                "gas": U64::from(t.gas_limit),
                "maxFeePerGas": U256::from(t.max_fee_per_gas),
                "maxPriorityFeePerGas": U256::from(t.max_priority_fee_per_gas),
                "value": t.value,
                "data": t.input,
                "input": t.input,
                "nonce": U64::from(t.nonce),
                "chainId": U64::from(t.chain_id),
                "type": "0x2",
            }),
            UnsignedTx::Legacy(t) => json!({
                "from": self.address,
                "to": t.to.to(),
                "gas": U64::from(t.gas_limit),
                "gasPrice": U256::from(t.gas_price),
                "value": t.value,
                "data": t.input,
                "input": t.input,
                "nonce": U64::from(t.nonce),
                "chainId": t.chain_id.map(U64::from),
                "type": "0x0",
            }),
        }
    }

    async fn sign_remote(&self, tx: UnsignedTx) -> Result<SignedTx, KeyError> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_signTransaction", "params": [self.request(&tx)]});
        // Errors name the method and status, never the URL (it may hold a token).
        let answer: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| KeyError::Remote(format!("eth_signTransaction: {}", e.without_url())))?
            .json()
            .await
            .map_err(|e| {
                KeyError::Remote(format!(
                    "eth_signTransaction: unreadable answer: {}",
                    e.without_url()
                ))
            })?;
        if let Some(err) = answer.get("error") {
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(KeyError::Remote(format!(
                "eth_signTransaction refused: {message}"
            )));
        }
        // A node and Web3Signer answer the raw hex; Clef answers {raw, tx}.
        let result = answer.get("result").unwrap_or(&Value::Null);
        let raw_hex = result
            .as_str()
            .or_else(|| result.get("raw").and_then(Value::as_str))
            .ok_or_else(|| {
                KeyError::Remote("eth_signTransaction answered no signed transaction".into())
            })?;
        let raw = hex::decode(raw_hex).map_err(|_| {
            KeyError::Remote("eth_signTransaction answered something that is not hex".into())
        })?;
        verify::signed_as_asked(&raw, &tx, self.address)
    }
}

impl Signer for RemoteSigner {
    fn address(&self) -> Address {
        self.address
    }

    fn sign(&self, tx: UnsignedTx) -> BoxFuture<'_, Result<SignedTx, KeyError>> {
        Box::pin(self.sign_remote(tx))
    }
}
