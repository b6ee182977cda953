//! The keystore against Foundry's own tool: a key made by `cast wallet new`
//! opens here and signs a transaction anvil mines; a key made here is read
//! by `cast wallet address`; a wrong password names the file, never the
//! password.

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use ethgate_keys::{Signer, UnsignedTx, keystore};
use ethgate_testkit::{Anvil, tool};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test]
async fn a_cast_keystore_opens_and_signs_a_transaction_anvil_mines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(tool("cast"))
        .args(["wallet", "new"])
        .arg(dir.path())
        .args(["--unsafe-password", PASSWORD])
        .output()
        .expect("cast wallet new");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let address: Address = text
        .lines()
        .find_map(|l| l.strip_prefix("Address:"))
        .and_then(|a| a.trim().parse().ok())
        .expect("cast printed the address");
    let listed = keystore::list(dir.path()).expect("list");
    assert_eq!(listed.len(), 1, "the one file cast wrote");
    let key = keystore::open(&listed[0].0, PASSWORD).expect("opens");
    assert_eq!(key.address(), address);

    let anvil = Anvil::start(&[]).await;
    let _: Value = anvil
        .rpc("anvil_setBalance", json!([address, "0xde0b6b3a7640000"]))
        .await;
    let to = Address::repeat_byte(0x42);
    let signed = key
        .sign(UnsignedTx::Eip1559(TxEip1559 {
            chain_id: 31337,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(to),
            value: U256::from(12_345),
            access_list: Default::default(),
            input: Bytes::new(),
        }))
        .await
        .expect("signs");
    let hash: String = anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", alloy_primitives::hex::encode(&signed.raw))]),
        )
        .await;
    assert_eq!(hash, format!("{}", signed.hash), "the hash we computed");
    let receipt = anvil.receipt(signed.hash).await;
    assert_eq!(receipt["status"], "0x1", "mined");
    assert_eq!(
        receipt["from"].as_str().map(str::to_lowercase),
        Some(format!("{address:#x}"))
    );
    let balance: U256 = anvil.rpc("eth_getBalance", json!([to, "latest"])).await;
    assert_eq!(balance, U256::from(12_345));
}

#[test]
fn cast_reads_a_keystore_made_here() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (address, file) = keystore::create(dir.path(), PASSWORD).expect("create");
    let out = std::process::Command::new(tool("cast"))
        .args(["wallet", "address", "--keystore"])
        .arg(&file)
        .args(["--password", PASSWORD])
        .output()
        .expect("cast wallet address");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cast_says: Address = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an address");
    assert_eq!(cast_says, address);
    assert_eq!(
        keystore::list(dir.path()).expect("list"),
        vec![(file, Some(address))],
        "listed with its address, no password needed"
    );
}

#[test]
fn a_wrong_password_names_the_file_and_never_the_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, file) = keystore::create(dir.path(), PASSWORD).expect("create");
    let err = keystore::open(&file, "not the password").expect_err("refused");
    let text = format!("{err} {err:?}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(
        !text.contains("not the password") && !text.contains(PASSWORD),
        "{text}"
    );
    let key = keystore::open(&file, PASSWORD).expect("opens");
    assert!(
        !format!("{key:?}").contains("key:"),
        "Debug shows the address only"
    );
    let bad = ethgate_keys::LocalKey::dev("0x1234", "ETHGATE_DEV_KEY").expect_err("short");
    assert_eq!(
        bad.to_string(),
        "ETHGATE_DEV_KEY: not a 32-byte hex private key"
    );
}
