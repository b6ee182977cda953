//! Reading chain state through the API on a real anvil: an OpenZeppelin
//! ERC20 (the demo token) read by signature and by ABI name, batches read
//! at one block while blocks keep coming, a historical block, a revert
//! decoded from the ABI's custom errors, an account's balance and nonce,
//! the scope, and errors that name the field.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{add_token, answer};

use alloy_json_abi::JsonAbi;
use alloy_primitives::{Address, U256};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ethgate_api::calls::KnownAbis;
use ethgate_api::{ApiState, ChainHealth, hash_token, new_token};
use ethgate_chain::{EndpointPool, PoolConfig};
use ethgate_store::{NewToken, Store};
use ethgate_testkit::anvil::Anvil;
use serde_json::{Value, json};

const TOKEN: &str = include_str!("../../../../contracts/artifacts/DemoToken.json");
const HOLDER: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";

fn call_data(sig: &str, args: &[Value]) -> Vec<u8> {
    let f = alloy_json_abi::Function::parse(sig).expect("signature");
    ethgate_tx::request::encode_args(&f, Some(&Value::Array(args.to_vec())))
        .expect("encode")
        .to_vec()
}

struct Fixture {
    _dir: tempfile::TempDir,
    anvil: Anvil,
    state: ApiState,
    token: Address,
    reader: String,
    events_only: String,
    elsewhere: String,
}

/// A policy that may send (and so read) on another chain only.
fn elsewhere_policy() -> ethgate_api::Policy {
    use ethgate_api::policy::{Allow, Sender};
    ethgate_api::Policy {
        name: "elsewhere".into(),
        chains: Allow::Only(vec!["mainnet".into()]),
        from: vec![Sender::Pool("ops".into())],
        to: Allow::Any,
        selectors: Allow::Any,
        value_transfers: false,
        max_value: 0,
        max_fee_per_gas: None,
        max_gas: 1_000_000,
        daily_cap: None,
        account_daily_cap: None,
        streams: Allow::Any,
        sinks: Allow::Only(Vec::new()),
        rotate_pools: false,
        manage_tokens: false,
        others_transactions: false,
        audit: false,
    }
}

async fn fixture() -> Fixture {
    let anvil = Anvil::start(&[]).await;
    let artifact: Value = serde_json::from_str(TOKEN).expect("artifact");
    let code = artifact["bytecode"].as_str().expect("bytecode");
    let code = alloy_primitives::hex::decode(code).expect("hex");
    let r = anvil.send(None, code).await;
    let token: Address = r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("address");
    let abi: JsonAbi = serde_json::from_value(artifact["abi"].clone()).expect("abi");
    let mut abis = KnownAbis::default();
    let key = ("anvil".to_owned(), token);
    abis.functions
        .insert(key.clone(), abi.functions().cloned().collect());
    abis.errors.insert(key, abi.errors().cloned().collect());
    let pool = EndpointPool::new(PoolConfig {
        chain: "anvil".into(),
        urls: vec![anvil.url.clone()],
        request_timeout: Duration::from_secs(5),
        max_rounds: 2,
        backoff_base: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        chain_id: None,
    })
    .expect("pool");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::connect(&format!("sqlite://{}/calls.db", dir.path().display()))
        .await
        .expect("store");
    let reader = add_token(&store, "chain:read", "chain:read").await;
    let events_only = add_token(&store, "events:read", "events:read").await;
    let (id, elsewhere) = new_token();
    let row = NewToken {
        id,
        hash: hash_token(&elsewhere),
        policy: Some("elsewhere".into()),
        label: "elsewhere".into(),
        ..Default::default()
    };
    store.insert_token(&row).await.expect("policy token");
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let state = ApiState {
        store,
        streams: Arc::default(),
        routes: Arc::default(),
        sinks: Arc::default(),
        chains: Arc::new(vec![ChainHealth {
            name: "anvil".into(),
            chain_id: 31337,
            pool: Arc::new(pool),
            stale_after: Duration::from_secs(60),
        }]),
        sync: Default::default(),
        metrics: None,
        max_wait: Duration::from_secs(1),
        tx: None,
        pools: None,
        tokens: Default::default(),
        stopping,
        limits: Default::default(),
        policies: Arc::new(
            [("elsewhere".to_owned(), Arc::new(elsewhere_policy()))]
                .into_iter()
                .collect(),
        ),
        guarded: Arc::default(),
        exposure: Default::default(),
        audit: Default::default(),
        abis: Arc::new(abis),
        stats: Default::default(),
        lease_ttl: Duration::from_secs(5),
    };
    Fixture {
        _dir: dir,
        anvil,
        state,
        token,
        reader,
        events_only,
        elsewhere,
    }
}

async fn send(
    f: &Fixture,
    method: &str,
    uri: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(if body.is_null() {
            Body::empty()
        } else {
            Body::from(body.to_string())
        })
        .expect("request");
    answer(&f.state, req).await
}

async fn mint(f: &Fixture, amount: u64) {
    let data = call_data(
        "mint(address,uint256)",
        &[json!(HOLDER), json!(amount.to_string())],
    );
    f.anvil.send(Some(f.token), data).await;
}

#[tokio::test]
async fn calls_read_outputs_by_name_at_one_block_and_decode_reverts() {
    let f = fixture().await;
    mint(&f, 1_000).await;
    let minted_at = f.anvil.head().await;
    mint(&f, 500).await;
    let to = format!("{:#x}", f.token);

    // By signature with outputs, at latest.
    let one = json!({"chain": "anvil", "to": to, "function": "balanceOf(address)(uint256)", "args": [HOLDER]});
    let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, one).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["ok"].clone(), r["outputs"]["0"].clone()),
        (json!(true), json!(1500))
    );
    assert_eq!(r["block_number"], f.anvil.head().await);
    let hash = f.anvil.block_hash(f.anvil.head().await).await;
    assert_eq!(r["block_hash"], format!("{hash:#x}"));
    let block: Value = f
        .anvil
        .rpc("eth_getBlockByHash", json!([hash, false]))
        .await;
    let time = u64::from_str_radix(
        block["timestamp"]
            .as_str()
            .unwrap_or("0x0")
            .trim_start_matches("0x"),
        16,
    );
    assert_eq!(r["block_timestamp"], time.expect("timestamp"));

    // By ABI name, at a past block: the state of that block.
    let past = json!({"chain": "anvil", "to": to, "function": "totalSupply", "block": minted_at});
    let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, past).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        (r["outputs"]["0"].clone(), r["block_number"].clone()),
        (json!(1000), json!(minted_at))
    );

    // A revert, decoded from the ABI's custom error: the caller (the zero
    // address) has no allowance from the holder.
    let bad = json!({"chain": "anvil", "to": to, "function": "transferFrom(address,address,uint256)(bool)",
        "args": [HOLDER, HOLDER, "5"]});
    let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, bad).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["ok"], false);
    let reason = r["error"].as_str().unwrap_or_default();
    assert!(reason.contains("ERC20InsufficientAllowance"), "{r}");
    assert!(
        r["revert_data"]
            .as_str()
            .is_some_and(|d| d.starts_with("0x")),
        "{r}"
    );
}

#[tokio::test]
async fn a_batch_reads_every_call_at_one_block_while_blocks_keep_coming() {
    let f = Arc::new(fixture().await);
    mint(&f, 1).await;
    let to = format!("{:#x}", f.token);
    // Blocks keep coming, each minting more: a batch read across two
    // blocks would see a balance and a supply that disagree.
    let minter = {
        let f = f.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                mint(&f, 7).await;
            }
        })
    };
    let batch = json!({"calls": [
        {"chain": "anvil", "to": to, "function": "balanceOf", "args": [HOLDER]},
        {"chain": "anvil", "to": to, "function": "totalSupply()(uint256)"},
        {"chain": "anvil", "to": to, "function": "decimals()(uint8)"},
    ]});
    let mut seen = std::collections::BTreeSet::new();
    while !minter.is_finished() {
        // A block just behind the head: anvil answers calls at its very
        // head from live state, which the block being mined already
        // changes (nodes that read at the block's state root do not).
        let mut batch = batch.clone();
        let at = f.anvil.head().await.saturating_sub(1);
        for c in batch["calls"].as_array_mut().into_iter().flatten() {
            c["block"] = json!(at);
        }
        let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, batch).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        let results = r["results"].as_array().cloned().unwrap_or_default();
        assert_eq!(results.len(), 3, "{r}");
        assert_eq!(
            results[0]["outputs"]["0"], results[1]["outputs"]["0"],
            "{r}"
        );
        assert_eq!(results[2]["outputs"]["0"], 18);
        let blocks: std::collections::BTreeSet<String> = results
            .iter()
            .map(|x| x["block_hash"].to_string())
            .collect();
        assert_eq!(blocks.len(), 1, "one block per batch: {r}");
        seen.insert(results[0]["block_number"].as_u64().unwrap_or(0));
    }
    minter.await.expect("minter");
    assert!(
        seen.len() > 1,
        "batches were read while blocks came: {seen:?}"
    );
}

#[tokio::test]
async fn accounts_scopes_and_bad_calls() {
    let f = fixture().await;
    mint(&f, 3).await;
    let dev = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";
    let (s, r) = send(
        &f,
        "GET",
        &format!("/v1/chains/anvil/accounts/{dev}"),
        &f.reader,
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let nonce: U256 = f
        .anvil
        .rpc("eth_getTransactionCount", json!([dev, "latest"]))
        .await;
    let balance: U256 = f.anvil.rpc("eth_getBalance", json!([dev, "latest"])).await;
    assert_eq!(r["nonce"], nonce.to::<u64>());
    assert_eq!(r["balance"], balance.to_string());
    let (s, r) = send(
        &f,
        "GET",
        &format!("/v1/chains/anvil/accounts/{dev}?block=1"),
        &f.reader,
        Value::Null,
    )
    .await;
    assert_eq!(
        (s, r["nonce"].clone(), r["block_number"].clone()),
        (StatusCode::OK, json!(1), json!(1))
    );

    let to = format!("{:#x}", f.token);
    let call = json!({"chain": "anvil", "to": to, "function": "totalSupply()(uint256)"});
    let (s, _) = send(&f, "POST", "/v1/calls", &f.events_only, call.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "chain:read is its own scope");
    let (s, r) = send(&f, "POST", "/v1/calls", &f.elsewhere, call.clone()).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a policy reads on its own chains only: {r}"
    );
    let path = format!("/v1/chains/anvil/accounts/{dev}");
    let (s, _) = send(&f, "GET", &path, &f.elsewhere, Value::Null).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let cases = [
        (
            json!({"chain": "mainnet", "to": to, "function": "totalSupply()(uint256)"}),
            "chain",
        ),
        (
            json!({"chain": "anvil", "to": "0x12", "function": "totalSupply()(uint256)"}),
            "to",
        ),
        (
            json!({"chain": "anvil", "to": to, "function": "nosuch"}),
            "function",
        ),
        (
            json!({"chain": "anvil", "to": to, "function": "totalSupply()(uint256)", "block": "soon"}),
            "block",
        ),
        (
            json!({"calls": [{"chain": "anvil", "to": to, "function": "totalSupply()(uint256)"},
            {"chain": "anvil", "to": to, "function": "balanceOf(address)(uint256)", "args": ["nope"]}]}),
            "calls[1].args[0]",
        ),
        (json!({"calls": []}), "calls"),
    ];
    for (body, field) in cases {
        let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, body.clone()).await;
        assert_eq!(
            (s, r["error"]["field"].clone()),
            (StatusCode::BAD_REQUEST, json!(field)),
            "{body}: {r}"
        );
    }
    let far = json!({"chain": "anvil", "to": to, "function": "totalSupply()(uint256)", "block": 1_000_000});
    let (s, r) = send(&f, "POST", "/v1/calls", &f.reader, far).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{r}");
}
