//! A fresh anvil per test, driven over JSON-RPC.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use alloy_dyn_abi::{DynSolValue, JsonAbiExt};
use alloy_json_abi::Function;
use alloy_primitives::{Address, B256, U256};
use ethgate_core::RawLog;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The EventSource contract as compiled by `scripts/build-contracts`.
pub const EVENT_SOURCE: &str = include_str!("../../../contracts/artifacts/EventSource.json");

/// anvil's first dev account (unlocked).
pub const DEV_ACCOUNT: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

/// anvil's well-known dev keys, account 0 first (account 0 is
/// [`DEV_ACCOUNT`], which deploys and funds in tests).
pub const DEV_KEYS: [&str; 10] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

/// Path of an external tool: `$ETHGATE_TOOLS/NAME`, the project's
/// `.tools/bin/NAME` (installed by `scripts/install-tools`), or `NAME`.
pub fn tool(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("ETHGATE_TOOLS") {
        return PathBuf::from(dir).join(name);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/bin")
        .join(name);
    if local.exists() {
        local
    } else {
        PathBuf::from(name)
    }
}

/// A running anvil; killed when dropped.
pub struct Anvil {
    _child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    client: reqwest::Client,
}

impl Anvil {
    /// Starts anvil with extra arguments and waits until it answers.
    pub async fn start(args: &[&str]) -> Anvil {
        let port = crate::free_port();
        let child = Command::new(tool("anvil"))
            .args(["--port", &port.to_string(), "--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("anvil could not start ({e}); run scripts/install-tools"));
        let anvil = Anvil {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while anvil
            .try_rpc::<Value>("eth_chainId", json!([]))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "anvil did not answer within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anvil
    }

    /// The node's process id: benchmarks read its CPU time, to show how
    /// much of a run's work was the node's.
    pub fn pid(&self) -> Option<u32> {
        self._child.id()
    }

    async fn try_rpc<T: DeserializeOwned>(&self, method: &str, params: Value) -> Result<T, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp: Value = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Some(err) = resp.get("error") {
            return Err(err.to_string());
        }
        serde_json::from_value(resp["result"].clone()).map_err(|e| e.to_string())
    }

    /// Calls a method; panics with the node's error.
    pub async fn rpc<T: DeserializeOwned>(&self, method: &str, params: Value) -> T {
        self.try_rpc(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Current head.
    pub async fn head(&self) -> u64 {
        let n: alloy_primitives::U64 = self.rpc("eth_blockNumber", json!([])).await;
        n.to()
    }

    /// Hash of a block by height.
    pub async fn block_hash(&self, n: u64) -> B256 {
        let b: Value = self
            .rpc("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))
            .await;
        b["hash"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .expect("block hash")
    }

    /// Sends a transaction from the dev account and waits for its receipt.
    pub async fn send(&self, to: Option<Address>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": DEV_ACCOUNT, "data": format!("0x{}", alloy_primitives::hex::encode(data)), "gas": "0x1c9c380"});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let hash: B256 = self.rpc("eth_sendTransaction", json!([tx])).await;
        let r = self.receipt(hash).await;
        assert_eq!(r["status"], "0x1", "transaction reverted: {r}");
        r
    }

    /// Waits up to 10 s for a transaction's receipt.
    pub async fn receipt(&self, hash: B256) -> Value {
        for _ in 0..400 {
            let r: Value = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !r.is_null() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("transaction {hash} was not mined");
    }

    /// Deploys EventSource; returns its address.
    pub async fn deploy_event_source(&self) -> Address {
        let artifact: Value = serde_json::from_str(EVENT_SOURCE).expect("artifact JSON");
        let code = artifact["bytecode"].as_str().expect("bytecode");
        let code = alloy_primitives::hex::decode(code).expect("hex bytecode");
        let r = self.send(None, code).await;
        r["contractAddress"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("contract address")
    }

    /// Calls `burst(count, first)`: `count` Transfer logs in one transaction.
    pub async fn burst(&self, contract: Address, count: u64, first: u64) -> Value {
        let f = Function::parse("burst(uint256,uint256)").expect("signature");
        let data = f
            .abi_encode_input(&[
                DynSolValue::Uint(U256::from(count), 256),
                DynSolValue::Uint(U256::from(first), 256),
            ])
            .expect("encode");
        self.send(Some(contract), data).await
    }

    /// Calls `note(text, delta, tag, flag)`.
    pub async fn note(&self, contract: Address, text: &str, delta: i64) -> Value {
        let f = Function::parse("note(string,int256,bytes32,bool)").expect("signature");
        let data = f
            .abi_encode_input(&[
                DynSolValue::String(text.into()),
                DynSolValue::Int(alloy_primitives::I256::try_from(delta).expect("fits"), 256),
                DynSolValue::FixedBytes(B256::repeat_byte(7), 32),
                DynSolValue::Bool(delta % 2 == 0),
            ])
            .expect("encode");
        self.send(Some(contract), data).await
    }

    /// Mines `n` empty blocks.
    pub async fn mine(&self, n: u64) {
        let _: Value = self.rpc("anvil_mine", json!([format!("{n:#x}")])).await;
    }

    /// Replaces the last `depth` blocks with new empty ones at the same height.
    pub async fn reorg(&self, depth: u64) {
        let _: Value = self.rpc("anvil_reorg", json!([depth, []])).await;
    }

    /// Removes the last `depth` blocks.
    pub async fn rollback(&self, depth: u64) {
        let _: Value = self.rpc("anvil_rollback", json!([depth])).await;
    }

    /// The canonical logs of `address` in `[from, to]`: the truth a stream
    /// must equal, fetched in chunks anvil accepts.
    pub async fn logs(&self, address: Address, from: u64, to: u64) -> Vec<RawLog> {
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start + 2_000);
            let filter = json!({"address": address, "fromBlock": format!("{start:#x}"), "toBlock": format!("{end:#x}")});
            let mut chunk: Vec<RawLog> = self.rpc("eth_getLogs", json!([filter])).await;
            out.append(&mut chunk);
            start = end + 1;
        }
        out
    }
}
