//! The world of the billing end-to-end test: the chain with its
//! contracts and customers, the two processes it kills and restarts, and
//! reads of the chain and of the back end's schedule to judge them by.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, Bytes, U256};
use alloy_sol_types::{SolCall, SolConstructor};
use ethgate_contracts::{DemoToken, OperatorRegistry, RecurringBilling, deployment};
use ethgate_testkit::Anvil;
use rand::Rng;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Customers subscribed (billing id = index + 1).
pub const CUSTOMERS: usize = 50;
/// The first ones cancel before anything is due.
pub const CANCELED: usize = 5;
/// Periods of time travel.
pub const PERIODS: u64 = 5;
/// Seconds between charges.
pub const PERIOD: u64 = 3_600;
/// Token units charged each period.
pub const VALUE: u64 = 1_000;
/// Charging accounts in the pool (anvil accounts 1..=POOL).
pub const POOL: usize = 4;

/// A binary built beside this test's own (`billing`, `ethgate`).
pub fn bin(name: &str) -> PathBuf {
    let here = PathBuf::from(env!("CARGO_BIN_EXE_billing"));
    let path = here.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p ethgate`",
        path.display()
    );
    path
}

/// Sends a transaction from an unlocked anvil account; fails the test
/// if it reverts.
pub async fn send(anvil: &Anvil, from: Address, to: Option<Address>, data: Vec<u8>) -> Value {
    let mut tx = json!({"from": from, "data": Bytes::from(data), "gas": "0x989680"});
    if let Some(to) = to {
        tx["to"] = json!(to);
    }
    let hash: alloy_primitives::B256 = anvil.rpc("eth_sendTransaction", json!([tx])).await;
    let r = anvil.receipt(hash).await;
    assert_eq!(r["status"], "0x1", "setup transaction reverted: {r}");
    r
}

/// The address a deployment receipt names.
pub fn created(r: &Value) -> Address {
    r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("contract address")
}

/// The chain: contracts deployed, the merchant registered with the pool
/// as its operators, every customer subscribed (billing id = i + 1).
pub async fn chain() -> (Anvil, Address, Vec<Address>) {
    let anvil = Anvil::start(&["--accounts", "70"]).await;
    let accounts: Vec<Address> = anvil.rpc("eth_accounts", json!([])).await;
    let deployer = accounts[0];
    let pool: Vec<Address> = accounts[1..=POOL].to_vec();
    let controller = accounts[9];
    let customers = accounts[10..10 + CUSTOMERS].to_vec();
    let token = created(
        &send(
            &anvil,
            deployer,
            None,
            deployment(&DemoToken::BYTECODE, &[]).to_vec(),
        )
        .await,
    );
    let args = OperatorRegistry::constructorCall {
        master: deployer,
        initial: pool,
    }
    .abi_encode();
    let registry = created(
        &send(
            &anvil,
            deployer,
            None,
            deployment(&OperatorRegistry::BYTECODE, &args).to_vec(),
        )
        .await,
    );
    let args = RecurringBilling::constructorCall { token_: token }.abi_encode();
    let billing = created(
        &send(
            &anvil,
            deployer,
            None,
            deployment(&RecurringBilling::BYTECODE, &args).to_vec(),
        )
        .await,
    );
    let register = RecurringBilling::registerMerchantCall {
        beneficiary: Address::repeat_byte(0xbe),
        controller,
        operators: registry,
    };
    send(&anvil, controller, Some(billing), register.abi_encode()).await;
    for (i, c) in customers.iter().enumerate() {
        let mint = DemoToken::mintCall {
            to: *c,
            amount: U256::from(VALUE * 100),
        };
        send(&anvil, deployer, Some(token), mint.abi_encode()).await;
        let approve = DemoToken::approveCall {
            spender: billing,
            value: U256::MAX,
        };
        send(&anvil, *c, Some(token), approve.abi_encode()).await;
        let allow = RecurringBilling::allowRecurringBillingCall {
            billingId: U256::from(i + 1),
            merchantId: U256::from(1),
            value: U256::from(VALUE),
            period: PERIOD,
        };
        send(&anvil, *c, Some(billing), allow.abi_encode()).await;
    }
    (anvil, billing, customers)
}

/// ethgate and the back end, started, killed and restarted by the test.
pub struct Processes {
    /// Where both run.
    pub dir: PathBuf,
    /// Their environment.
    pub env: Vec<(String, String)>,
    /// `ethgate serve`, when running.
    pub ethgate: Option<Child>,
    /// The back end, when running.
    pub billing: Option<Child>,
}

impl Processes {
    /// Starts `program` in the directory, its stderr appended to `log`.
    pub fn spawn(&self, program: &Path, args: &[&str], log: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .expect("log");
        Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawns")
    }

    /// Starts `ethgate serve`.
    pub fn start_ethgate(&mut self) {
        self.ethgate = Some(self.spawn(&bin("ethgate"), &["serve"], "ethgate.log"));
    }

    /// Starts the back end.
    pub fn start_billing(&mut self) {
        self.billing = Some(self.spawn(&bin("billing"), &[], "billing.log"));
    }

    /// Whether the back end has exited (not been killed by the test).
    pub fn billing_died(&mut self) -> bool {
        self.billing
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGKILLs one of the two at random and starts it again.
    pub async fn kill_one(&mut self, rng: &mut impl Rng, billing_too: bool) -> &'static str {
        let which = if !billing_too || rng.random_bool(0.5) {
            "ethgate"
        } else {
            "billing"
        };
        let child = if which == "ethgate" {
            self.ethgate.as_mut()
        } else {
            self.billing.as_mut()
        };
        if let Some(c) = child {
            c.start_kill().expect("SIGKILL");
            c.wait().await.expect("reaped");
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..800))).await;
        if which == "ethgate" {
            self.start_ethgate()
        } else {
            self.start_billing()
        }
        which
    }
}

/// The token the billing contract is paid in.
pub async fn token_of(anvil: &Anvil, billing: Address) -> Address {
    let out: Bytes = anvil
        .rpc(
            "eth_call",
            json!([{"to": billing, "data": Bytes::from(RecurringBilling::tokenCall {}.abi_encode())}, "latest"]),
        )
        .await;
    RecurringBilling::tokenCall::abi_decode_returns(&out).expect("token")
}

/// `billings(id)`: (customer set, lastChargeAt).
pub async fn on_chain(anvil: &Anvil, billing: Address, id: usize) -> (bool, u64) {
    let data = RecurringBilling::billingsCall(U256::from(id)).abi_encode();
    let out: Bytes = anvil
        .rpc(
            "eth_call",
            json!([{"to": billing, "data": Bytes::from(data)}, "latest"]),
        )
        .await;
    let r = RecurringBilling::billingsCall::abi_decode_returns(&out).expect("decode");
    (r.customer != Address::ZERO, r.lastChargeAt)
}

/// Every `BillingCharged` on chain: billing id → nextChargeAt of each.
pub async fn charges(anvil: &Anvil, billing: Address) -> std::collections::BTreeMap<u64, Vec<u64>> {
    let topic = alloy_primitives::keccak256("BillingCharged(uint256,uint256,uint256,uint64)");
    let logs: Vec<Value> = anvil
        .rpc("eth_getLogs", json!([{"address": billing, "topics": [topic], "fromBlock": "0x0", "toBlock": "latest"}]))
        .await;
    let mut out = std::collections::BTreeMap::<u64, Vec<u64>>::new();
    for l in logs {
        let id = U256::from_str_radix(
            l["topics"][1]
                .as_str()
                .unwrap_or("0x0")
                .trim_start_matches("0x"),
            16,
        );
        let data = alloy_primitives::hex::decode(l["data"].as_str().unwrap_or("0x")).expect("hex");
        let next = U256::from_be_slice(&data[32..64]);
        out.entry(id.expect("id").to::<u64>())
            .or_default()
            .push(next.to::<u64>());
    }
    out
}

/// How many billings with ids in `[first, last]` have a charge in flight
/// in the back end's schedule.
pub async fn in_flight(db: &Path, first: usize, last: usize) -> usize {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return 0;
    };
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM billings WHERE pending_tx IS NOT NULL AND CAST(id AS INTEGER) BETWEEN ? AND ?",
    )
    .bind(first as i64)
    .bind(last as i64)
    .fetch_one(&pool)
    .await
    .unwrap_or(0);
    pool.close().await;
    n as usize
}

/// The back end's active billings and their next charge times, read
/// from its SQLite file.
pub async fn next_dates(db: &Path) -> Vec<(String, Option<i64>)> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let Ok(pool) = sqlx::SqlitePool::connect(&url).await else {
        return Vec::new();
    };
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT id, next_charge_at FROM billings WHERE canceled = 0")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    rows
}

/// Polls `done` every 300 ms until it holds; fails after `secs`.
pub async fn until(secs: u64, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
