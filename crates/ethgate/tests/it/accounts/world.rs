//! The billing world of the accounts tests: anvil with the token, the
//! operator registry and the billing contract deployed and a customer
//! subscribed; a gateway directory with its config and admin token; the
//! attacker holding the leaked operator key.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::serve;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex};
use alloy_sol_types::{SolCall, SolConstructor};
use ethgate_contracts::{DemoToken, OperatorRegistry, RecurringBilling, deployment};
use ethgate_keys::{LocalKey, Signer, UnsignedTx};
use ethgate_testkit::{Anvil, DEV_ACCOUNT, DEV_KEYS, free_port};
use serde_json::{Value, json};

pub const ETHER: u128 = 1_000_000_000_000_000_000;
pub const PERIOD: u64 = 3_600;
pub const VALUE: u128 = 100 * ETHER;
pub const FLOAT: u128 = ETHER / 20;
pub const POOL_PASSWORD: &str = "pool-keystore-password";
/// Most a sweep can leave behind: 21,000 gas at twice a 10 gwei gas price.
pub const DUST: u128 = 21_000 * 2 * 10_000_000_000;

pub fn addr_of(key: &str) -> Address {
    LocalKey::dev(key, "test").expect("key").address()
}

/// The chain, the contracts and the people of the billing story.
pub struct World {
    pub anvil: Anvil,
    pub token: Address,
    pub registry: Address,
    pub billing: Address,
    pub master: Address,
    pub funding: Address,
    pub customer: Address,
    pub beneficiary: Address,
    pub leaked: LocalKey,
    pub leaked_hex: String,
}

pub async fn send_as(anvil: &Anvil, from: Address, to: Option<Address>, data: Bytes) -> Value {
    let mut tx = json!({"from": from, "data": data, "gas": "0x989680"});
    if let Some(to) = to {
        tx["to"] = json!(to);
    }
    let hash: B256 = anvil.rpc("eth_sendTransaction", json!([tx])).await;
    let r = anvil.receipt(hash).await;
    assert_eq!(r["status"], "0x1", "setup transaction reverted: {r}");
    r
}

pub async fn call(anvil: &Anvil, to: Address, data: Bytes) -> Bytes {
    anvil
        .rpc("eth_call", json!([{"to": to, "data": data}, "latest"]))
        .await
}

pub async fn balance(anvil: &Anvil, a: Address) -> u128 {
    let b: U256 = anvil.rpc("eth_getBalance", json!([a, "latest"])).await;
    b.to::<u128>()
}

pub async fn token_balance(w: &World, a: Address) -> u128 {
    let out = call(
        &w.anvil,
        w.token,
        DemoToken::balanceOfCall { account: a }.abi_encode().into(),
    )
    .await;
    U256::from_be_slice(&out).to::<u128>()
}

pub async fn is_operator(w: &World, a: Address) -> bool {
    let out = call(
        &w.anvil,
        w.registry,
        OperatorRegistry::isOperatorCall { account: a }
            .abi_encode()
            .into(),
    )
    .await;
    out.iter().any(|b| *b != 0)
}

pub async fn nonce(anvil: &Anvil, a: Address) -> u64 {
    let n: alloy_primitives::U64 = anvil
        .rpc("eth_getTransactionCount", json!([a, "latest"]))
        .await;
    n.to::<u64>()
}

pub async fn advance(anvil: &Anvil, secs: u64) {
    let _: Value = anvil.rpc("evm_increaseTime", json!([secs])).await;
    let _: Value = anvil.rpc("evm_mine", json!([])).await;
}

pub async fn world(leaked_float: u128) -> World {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let deployer: Address = DEV_ACCOUNT.parse().expect("address");
    let master = addr_of(DEV_KEYS[1]);
    let funding = addr_of(DEV_KEYS[2]);
    let controller = addr_of(DEV_KEYS[3]);
    let customer = addr_of(DEV_KEYS[4]);
    let beneficiary = Address::repeat_byte(0xbe);
    let secret: [u8; 32] = rand::random();
    let leaked_hex = hex::encode(secret);
    let leaked = LocalKey::dev(&leaked_hex, "leaked").expect("key");
    let _: Value = anvil
        .rpc(
            "anvil_setBalance",
            json!([leaked.address(), U256::from(leaked_float)]),
        )
        .await;
    let deploy = |code: &[u8], args: Vec<u8>| deployment(code, &args);
    let r = send_as(&anvil, deployer, None, deploy(&DemoToken::BYTECODE, vec![])).await;
    let token: Address = r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("token");
    let args = OperatorRegistry::constructorCall {
        master,
        initial: vec![leaked.address()],
    }
    .abi_encode();
    let r = send_as(
        &anvil,
        deployer,
        None,
        deploy(&OperatorRegistry::BYTECODE, args),
    )
    .await;
    let registry: Address = r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("registry");
    let args = RecurringBilling::constructorCall { token_: token }.abi_encode();
    let r = send_as(
        &anvil,
        deployer,
        None,
        deploy(&RecurringBilling::BYTECODE, args),
    )
    .await;
    let billing: Address = r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("billing");
    let data = RecurringBilling::registerMerchantCall {
        beneficiary,
        controller,
        operators: registry,
    }
    .abi_encode();
    send_as(&anvil, controller, Some(billing), data.into()).await;
    let data = DemoToken::mintCall {
        to: customer,
        amount: U256::from(10 * VALUE),
    }
    .abi_encode();
    send_as(&anvil, deployer, Some(token), data.into()).await;
    let data = DemoToken::approveCall {
        spender: billing,
        value: U256::MAX,
    }
    .abi_encode();
    send_as(&anvil, customer, Some(token), data.into()).await;
    let data = RecurringBilling::allowRecurringBillingCall {
        billingId: U256::from(1),
        merchantId: U256::from(1),
        value: U256::from(VALUE),
        period: PERIOD,
    }
    .abi_encode();
    send_as(&anvil, customer, Some(billing), data.into()).await;
    World {
        anvil,
        token,
        registry,
        billing,
        master,
        funding,
        customer,
        beneficiary,
        leaked,
        leaked_hex,
    }
}

/// The gateway's directory, config, token and environment.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

pub fn gateway(w: &World, pool_extra: &str, members: &[Address]) -> Gateway {
    gateway_on(w, pool_extra, members, None)
}

/// [`gateway`] on the store at `store` (its SQLite file if `None`).
pub fn gateway_on(
    w: &World,
    pool_extra: &str,
    members: &[Address],
    store: Option<&str>,
) -> Gateway {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let members: Vec<String> = members.iter().map(|a| format!("\"{a:#x}\"")).collect();
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\n\n\
             [tx]\nallow_dev_keys = true\nresubmit_after = \"3s\"\npoll_interval = \"200ms\"\nconfirmations = 1\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"MASTER_KEY\"\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"FUNDING_KEY\"\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"LEAKED_KEY\"\n\n\
             [[pools]]\nname = \"billing\"\nchain = \"anvil\"\naccounts = [{}]\nfunding = \"{:#x}\"\n\
             keystore_dir = \"pool-keys\"\npassword_env = \"POOL_PASSWORD\"\nbalance_interval = \"300ms\"\n{pool_extra}\n",
            w.anvil.url,
            members.join(", "),
            w.funding,
        ),
    )
    .expect("config");
    let env = vec![
        ("MASTER_KEY", DEV_KEYS[1].to_owned()),
        ("FUNDING_KEY", DEV_KEYS[2].to_owned()),
        ("LEAKED_KEY", w.leaked_hex.clone()),
        ("POOL_PASSWORD", POOL_PASSWORD.to_owned()),
        ("ETHGATE_LOG", "info".to_owned()),
    ];
    let mut env = env;
    if let Some(url) = store {
        env.push(("ETHGATE_STORE__URL", url.to_owned()));
    }
    Gateway {
        token: crate::common::token(dir.path(), &env, "admin"),
        base: format!("http://127.0.0.1:{port}"),
        dir,
        env,
        http: reqwest::Client::new(),
    }
}

/// A gateway whose pool (the leaked key) can rotate: the registry, its
/// master as an ethgate account, and a 0.05 ETH float for new members.
pub fn rotating_gateway(w: &World) -> Gateway {
    rotating_gateway_on(w, None)
}

/// [`rotating_gateway`] on the store at `store`.
pub fn rotating_gateway_on(w: &World, store: Option<&str>) -> Gateway {
    gateway_on(
        w,
        &format!(
            "registry = \"{:#x}\"\nmaster = \"{:#x}\"\ntop_up = \"0.05 ether\"\n",
            w.registry, w.master
        ),
        &[w.leaked.address()],
        store,
    )
}

impl Gateway {
    pub fn serve(&self) -> tokio::process::Child {
        serve(self.dir.path(), &self.env)
    }

    pub async fn ready(&self) {
        crate::common::ready(&self.http, &self.base).await;
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("JSON")
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("POST");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The pool as `GET /v1/accounts` shows it once it has an alert
    /// (waits up to 30 s).
    pub async fn alerting_pool(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pool = self.pool(&self.get("/v1/accounts").await);
            if pool["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                return pool;
            }
            assert!(Instant::now() < deadline, "no alert: {pool}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A charge through the gateway, from the pool; waits for its end.
    pub async fn charge(&self, w: &World, key: &str) -> Value {
        let (code, v) = self
            .post(
                "/v1/transactions",
                &json!({"chain": "anvil", "from": "billing", "to": format!("{:#x}", w.billing),
                "function": "charge(uint256)", "args": ["1"], "idempotency_key": key}),
            )
            .await;
        assert_eq!(code, 202, "{v}");
        let id = v["id"].as_str().expect("id").to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = self.get(&format!("/v1/transactions/{id}")).await;
            if ["confirmed", "failed", "rejected"].contains(&t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(Instant::now() < deadline, "charge never ended: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pool(&self, accounts: &Value) -> Value {
        accounts["pools"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "billing"))
            .cloned()
            .expect("pool")
    }
}

/// The attacker signs with the leaked key and sends; the transaction is
/// mined and must revert.
pub async fn attack(w: &World, n: &mut u64, to: Address, data: Vec<u8>, what: &str) {
    // The gateway sends from the same key: take the chain's next nonce.
    let pending: alloy_primitives::U64 = w
        .anvil
        .rpc(
            "eth_getTransactionCount",
            json!([w.leaked.address(), "pending"]),
        )
        .await;
    *n = pending.to::<u64>();
    let signed = w
        .leaked
        .sign(UnsignedTx::Eip1559(alloy_consensus::TxEip1559 {
            chain_id: 31337,
            nonce: *n,
            gas_limit: 200_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::ZERO,
            access_list: Default::default(),
            input: data.into(),
        }))
        .await
        .expect("signs");
    let _: B256 = w
        .anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(&signed.raw))]),
        )
        .await;
    *n += 1;
    let r = w.anvil.receipt(signed.hash).await;
    assert_eq!(r["status"], "0x0", "the attacker's {what} must revert: {r}");
}

pub const ROTATION_KEY: &str = "rotate-billing-after-leak";

pub fn rotate_cli(g: &Gateway) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args([
            "accounts",
            "rotate",
            "--pool",
            "billing",
            "--timeout",
            "120s",
            "--idempotency-key",
            ROTATION_KEY,
        ])
        .current_dir(g.dir.path())
        .env("ETHGATE_TOKEN", &g.token)
        .envs(g.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("accounts rotate")
}
