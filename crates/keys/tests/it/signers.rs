//! Each remote signer against its real peer, and a transaction it signed
//! mined by anvil: the JSON-RPC signer against anvil's own unlocked
//! accounts (`eth_signTransaction`), the KMS signer against a local moto
//! KMS (scripts/kms_emulator.py: moto, plus Sign of a given digest, which
//! moto lacks) with a `ECC_SECG_P256K1` key. A remote answer that is not the
//! transaction asked for (other signer, other value) is refused.

use std::time::Duration;

use alloy_consensus::{TxEip1559, TxLegacy};
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, hex};
use axum::{Json, Router, routing::post};
use ethgate_keys::kms::{self, KmsConfig};
use ethgate_keys::{KmsSigner, LocalKey, RemoteSigner, Signer, UnsignedTx};
use ethgate_testkit::{Anvil, DEV_ACCOUNT, DEV_KEYS, KmsEmulator};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(10);

fn transfer(nonce: u64, to: Address, value: u64) -> UnsignedTx {
    UnsignedTx::Eip1559(TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        access_list: Default::default(),
        input: Bytes::new(),
    })
}

/// A legacy (EIP-155) transfer: the other kind a signer must sign.
fn legacy_transfer(nonce: u64, to: Address, value: u64) -> UnsignedTx {
    UnsignedTx::Legacy(TxLegacy {
        chain_id: Some(31337),
        nonce,
        gas_price: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(value),
        input: Bytes::new(),
    })
}

/// Sends `raw`, waits for its receipt, and checks it was mined from `from`.
async fn mined(anvil: &Anvil, raw: &[u8], hash: B256, from: Address) {
    let sent: B256 = anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        )
        .await;
    assert_eq!(sent, hash, "the hash the signer reported");
    let receipt = anvil.receipt(hash).await;
    assert_eq!(receipt["status"], "0x1", "mined successfully");
    assert_eq!(
        receipt["from"].as_str().map(str::to_lowercase),
        Some(format!("{from:#x}"))
    );
}

#[tokio::test]
async fn a_json_rpc_signer_signs_with_anvils_unlocked_account_and_anvil_mines_it() {
    let anvil = Anvil::start(&[]).await;
    let from: Address = DEV_ACCOUNT.parse().expect("address");
    let signer = RemoteSigner::new(&anvil.url, from, TIMEOUT).expect("signer");
    let to = Address::repeat_byte(0x42);
    let signed = signer.sign(transfer(0, to, 777)).await.expect("signs");
    mined(&anvil, &signed.raw, signed.hash, from).await;
    // A legacy (EIP-155) transaction too.
    let legacy = legacy_transfer(1, to, 1);
    let signed = signer.sign(legacy).await.expect("signs legacy");
    mined(&anvil, &signed.raw, signed.hash, from).await;
    let balance: U256 = anvil.rpc("eth_getBalance", json!([to, "latest"])).await;
    assert_eq!(balance, U256::from(778));
    // An account the node does not hold: the node's refusal, named.
    let stranger = RemoteSigner::new(&anvil.url, Address::repeat_byte(7), TIMEOUT).expect("signer");
    let err = stranger
        .sign(transfer(0, to, 1))
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("eth_signTransaction refused"),
        "{err}"
    );
}

/// A JSON-RPC "signer" that signs something else than it was asked.
async fn lying_signer(key: &'static str, value_delta: u64) -> String {
    let app = Router::new().route(
        "/",
        post(move |Json(req): Json<Value>| async move {
            let p = &req["params"][0];
            let n = |f: &str| u64::from_str_radix(p[f].as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).unwrap_or(0);
            let to: Address = p["to"].as_str().unwrap_or_default().parse().unwrap_or_default();
            let key = LocalKey::dev(key, "test").expect("key");
            let signed = key
                .sign_sync(transfer(n("nonce"), to, n("value") + value_delta))
                .expect("signs");
            Json(json!({"jsonrpc": "2.0", "id": 1, "result": format!("0x{}", hex::encode(signed.raw))}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn a_remote_answer_that_differs_from_the_request_is_refused() {
    let me = LocalKey::dev(DEV_KEYS[0], "test").expect("key").address();
    let to = Address::repeat_byte(0x42);
    let other_key = lying_signer(DEV_KEYS[1], 0).await;
    let err = RemoteSigner::new(&other_key, me, TIMEOUT)
        .expect("signer")
        .sign(transfer(0, to, 5))
        .await
        .expect_err("signed by another key");
    assert!(err.to_string().contains("signed by"), "{err}");
    let more = lying_signer(DEV_KEYS[0], 1).await;
    let err = RemoteSigner::new(&more, me, TIMEOUT)
        .expect("signer")
        .sign(transfer(0, to, 5))
        .await
        .expect_err("another value");
    assert!(err.to_string().contains("value differs"), "{err}");
    let honest = lying_signer(DEV_KEYS[0], 0).await;
    RemoteSigner::new(&honest, me, TIMEOUT)
        .expect("signer")
        .sign(transfer(0, to, 5))
        .await
        .expect("the honest answer passes");
}

#[tokio::test]
async fn a_kms_key_signs_a_transaction_anvil_mines() {
    let kms = KmsEmulator::start().await;
    let mut config = KmsConfig {
        endpoint: kms.url.clone(),
        region: "eu-west-1".into(),
        key_id: String::new(),
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "kms-test-secret".into(),
        session_token: None,
    };
    config.key_id = kms::create_key(&config, TIMEOUT).await.expect("CreateKey");
    let signer = KmsSigner::connect(config.clone(), TIMEOUT)
        .await
        .expect("GetPublicKey");
    assert!(!format!("{signer:?}").contains("kms-test-secret"));
    let from = signer.address();
    assert_ne!(from, Address::ZERO);
    let anvil = Anvil::start(&[]).await;
    let _: Value = anvil
        .rpc("anvil_setBalance", json!([from, "0xde0b6b3a7640000"]))
        .await;
    let to = Address::repeat_byte(0x43);
    // Several signatures: about half of ECDSA signatures come back high-s
    // or with the other recovery id, and each must still be mined.
    for nonce in 0..6 {
        let signed = signer
            .sign(transfer(nonce, to, 1_000))
            .await
            .expect("signs");
        mined(&anvil, &signed.raw, signed.hash, from).await;
    }
    let balance: U256 = anvil.rpc("eth_getBalance", json!([to, "latest"])).await;
    assert_eq!(balance, U256::from(6_000));
    // A key that is not secp256k1 is refused by name.
    config.key_id = kms::create_key_of_spec(&config, "ECC_NIST_P256", TIMEOUT)
        .await
        .expect("CreateKey P-256");
    let err = KmsSigner::connect(config, TIMEOUT)
        .await
        .expect_err("not secp256k1");
    assert!(err.to_string().contains("ECC_SECG_P256K1"), "{err}");
}

#[tokio::test]
async fn a_local_key_signs_byte_for_byte_as_the_node_does_and_anvil_mines_it() {
    // Signatures are deterministic (RFC 6979, low s): the local key and
    // the node's own signer for the same account must give the same bytes.
    let anvil = Anvil::start(&[]).await;
    let from: Address = DEV_ACCOUNT.parse().expect("address");
    let local = LocalKey::dev(DEV_KEYS[0], "dev key").expect("key");
    assert_eq!(local.address(), from);
    let node = RemoteSigner::new(&anvil.url, from, TIMEOUT).expect("signer");
    let to = Address::repeat_byte(0x42);
    let legacy = legacy_transfer(1, to, 5);
    for tx in [transfer(0, to, 777), legacy] {
        let mine = local.sign(tx.clone()).await.expect("signs");
        let theirs = node.sign(tx).await.expect("node signs");
        assert_eq!(mine, theirs);
        mined(&anvil, &mine.raw, mine.hash, from).await;
    }
}
