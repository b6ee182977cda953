//! The raw sender of `ethgate bench tx`: what a service does without a
//! gateway. It signs locally with pipelined nonces, sends with
//! `eth_sendRawTransaction`, and waits until the chain's nonce count has
//! passed every call; the variant that also reads each call's receipt
//! (the usual way to learn a call's outcome) learns what ethgate learns,
//! for the second ratio the bench prints.

use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, TxKind, U64, U256};
use anyhow::Context;
use ethgate_keys::{LocalKey, Signer, UnsignedTx};
use ethgate_testkit::{Anvil, DEV_KEYS};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::tx::{DEADLINE, Run, calldata, chain, cpu_seconds};

/// What the raw sender learns before it calls a call mined.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Learns {
    /// Only that the account's nonce count passed it.
    NonceCount,
    /// Its receipt too (mined, and whether it succeeded), read once the
    /// count has passed a nonce, as ethgate reads those no log names.
    Receipts,
}

/// How long the raw sender waits without progress, with the node holding
/// nothing executable at its next nonce, before it replaces that nonce.
pub(crate) const RAW_STALL: Duration = Duration::from_secs(1);

async fn nonce_count(anvil: &Anvil, a: Address, tag: &str) -> u64 {
    let n: U64 = anvil.rpc("eth_getTransactionCount", json!([a, tag])).await;
    n.to::<u64>()
}

/// Sends a signed transaction the raw sender's way; the node's answer.
async fn send_raw(http: &reqwest::Client, url: &str, raw: String) -> anyhow::Result<Value> {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": [raw]});
    Ok(http.post(url).json(&body).send().await?.json().await?)
}

/// Reads the receipts of mined calls the way ethgate reads receipts
/// (batches of 100, four at a time); each call must have one among its
/// hashes.
async fn read_receipts(http: &reqwest::Client, url: &str, calls: &[&[B256]]) -> anyhow::Result<()> {
    let flat: Vec<(usize, B256)> = calls
        .iter()
        .enumerate()
        .flat_map(|(k, hs)| hs.iter().map(move |h| (k, *h)))
        .collect();
    let answers: Vec<anyhow::Result<Vec<(usize, bool)>>> = futures::stream::iter(flat.chunks(100))
        .map(|chunk| async move {
            let body: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(id, (_, h))| {
                    json!({"jsonrpc": "2.0", "id": id, "method": "eth_getTransactionReceipt", "params": [h]})
                })
                .collect();
            let items: Vec<Value> = http.post(url).json(&body).send().await?.json().await?;
            let mut found = Vec::with_capacity(chunk.len());
            for item in items {
                let id = item["id"].as_u64().context("batch answer without an id")? as usize;
                let (k, _) = chunk.get(id).context("batch answer with an unknown id")?;
                found.push((*k, !item["result"].is_null()));
            }
            Ok(found)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut seen = vec![false; calls.len()];
    for list in answers {
        for (k, found) in list? {
            seen[k] |= found;
        }
    }
    anyhow::ensure!(
        seen.iter().all(|s| *s),
        "raw sender: a mined nonce has no receipt for any of its hashes"
    );
    Ok(())
}

/// The raw sender's keys and what it calls.
struct Signing {
    keys: Vec<LocalKey>,
    contract: alloy_primitives::Address,
}

impl Signing {
    /// Call `i`, signed at its account's nonce; `fee_x` multiplies the
    /// fees (a replacement must pay more): the raw bytes and the hash.
    fn sign(&self, i: usize, fee_x: u128) -> anyhow::Result<(String, B256)> {
        let accounts = self.keys.len();
        let key = &self.keys[i % accounts];
        let signed = key.sign_sync(UnsignedTx::Eip1559(TxEip1559 {
            chain_id: 31337,
            nonce: (i / accounts) as u64,
            gas_limit: 100_000,
            max_fee_per_gas: 20_000_000_000 * fee_x,
            max_priority_fee_per_gas: 1_000_000_000 * fee_x,
            to: TxKind::Call(self.contract),
            value: U256::ZERO,
            access_list: Default::default(),
            input: calldata(&format!("raw-{i}"))?,
        }))?;
        Ok((format!("0x{}", hex::encode(signed.raw)), signed.hash))
    }
}

/// The raw sender: sign with pipelined nonces, send, wait until mined.
pub(crate) async fn raw(
    n: usize,
    accounts: usize,
    in_flight: usize,
    block: Duration,
    learns: Learns,
) -> anyhow::Result<Run> {
    let mut c = chain(block).await?;
    let (node0, own0) = (cpu_seconds(c.anvil.pid()), cpu_seconds(None));
    let keys: Vec<LocalKey> = DEV_KEYS[1..=accounts]
        .iter()
        .map(|k| LocalKey::dev(k, "dev key"))
        .collect::<Result<_, _>>()?;
    let signing = Signing {
        keys,
        contract: c.contract,
    };
    let http = reqwest::Client::new();
    c.next_block().await?;
    let started = Instant::now();
    let mut raws = Vec::with_capacity(n);
    // Every hash signed for call `i` (a replaced nonce has two).
    let mut hashes: Vec<Vec<B256>> = Vec::with_capacity(n);
    for i in 0..n {
        let (raw, hash) = signing.sign(i, 1)?;
        raws.push(raw);
        hashes.push(vec![hash]);
    }
    let url = c.anvil.url.clone();
    let sent: Vec<anyhow::Result<()>> = futures::stream::iter(raws)
        .map(|raw| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let v = send_raw(&http, &url, raw).await?;
                anyhow::ensure!(v.get("error").is_none(), "send refused: {v}");
                Ok(())
            }
        })
        .buffered(in_flight)
        .collect()
        .await;
    sent.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    let deadline = Instant::now() + DEADLINE;
    let mut replaced = 0;
    for a in 0..accounts {
        let waiting = Waiting {
            anvil: &c.anvil,
            http: &http,
            signing: &signing,
            per: (n / accounts) as u64,
            learns,
            deadline,
        };
        replaced += waiting.mined(a, &mut hashes).await?;
    }
    if replaced > 0 {
        println!("      raw: {replaced} parked nonce(s) replaced");
    }
    Ok(Run {
        took: started.elapsed(),
        node_cpu: cpu_seconds(c.anvil.pid()) - node0,
        own_cpu: cpu_seconds(None) - own0,
    })
}

/// What waiting for one account's calls to be mined needs.
struct Waiting<'a> {
    anvil: &'a Anvil,
    http: &'a reqwest::Client,
    signing: &'a Signing,
    per: u64,
    learns: Learns,
    deadline: Instant,
}

impl Waiting<'_> {
    /// Waits until account `a` has `per` nonces mined (reading receipts
    /// as they pass, if the sender learns that way), replacing a next
    /// nonce anvil parked; how many were replaced.
    async fn mined(&self, a: usize, hashes: &mut [Vec<B256>]) -> anyhow::Result<usize> {
        let accounts = self.signing.keys.len();
        let address = self.signing.keys[a].address();
        let url = &self.anvil.url;
        let (mut progress, mut read, mut replaced) = ((u64::MAX, Instant::now()), 0, 0);
        loop {
            let mined = nonce_count(self.anvil, address, "latest").await;
            if self.learns == Learns::Receipts && mined > read {
                // The receipts of the nonces the chain has passed, so
                // both sides end knowing each call's outcome.
                let calls: Vec<&[B256]> = (read..mined)
                    .map(|nonce| hashes[nonce as usize * accounts + a].as_slice())
                    .collect();
                read_receipts(self.http, url, &calls).await?;
                read = mined;
            }
            if mined >= self.per {
                return Ok(replaced);
            }
            anyhow::ensure!(
                Instant::now() < self.deadline,
                "raw sender: only {mined} of {} nonces of {address} mined within {DEADLINE:?} (the node dropped a transaction?)",
                self.per
            );
            if mined != progress.0 {
                progress = (mined, Instant::now());
            } else if progress.1.elapsed() >= RAW_STALL
                && nonce_count(self.anvil, address, "pending").await <= mined
            {
                // anvil parked the next nonce (docs/transactions.md): no
                // sender gets past that without replacing it.
                let i = mined as usize * accounts + a;
                let (raw, hash) = self.signing.sign(i, 2)?;
                send_raw(self.http, url, raw).await?;
                hashes[i].push(hash);
                replaced += 1;
                progress.1 = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
