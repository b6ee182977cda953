//! Accounts whose keys live outside ethgate, through `ethgate serve`: one
//! signed by a JSON-RPC signer (anvil's own unlocked account, over
//! `eth_signTransaction`), one by an AWS KMS key (the local KMS emulator).
//! A request from each is mined, and the AWS secret never reaches the log.

use crate::common;

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use common::{ShowLog, ready, serve, token};
use ethgate_keys::kms::{self, KmsConfig};
use ethgate_keys::{KmsSigner, LocalKey, Signer};
use ethgate_testkit::{Anvil, DEV_KEYS, KmsEmulator, free_port};
use serde_json::{Value, json};

const AWS_SECRET: &str = "aws-secret-under-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_and_kms_accounts_send_through_the_gateway() {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let contract = anvil.deploy_event_source().await;
    // The JSON-RPC signer: anvil holds this key unlocked; ethgate never sees it.
    let remote = LocalKey::dev(DEV_KEYS[6], "test").expect("key").address();
    // The KMS key.
    let kms = KmsEmulator::start().await;
    let endpoint = kms.url.clone();
    let mut config = KmsConfig {
        endpoint: endpoint.clone(),
        region: "eu-west-1".into(),
        key_id: String::new(),
        access_key_id: "AKIDTEST".into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: None,
    };
    config.key_id = kms::create_key(&config, Duration::from_secs(5))
        .await
        .expect("CreateKey");
    let kms_address = KmsSigner::connect(config.clone(), Duration::from_secs(5))
        .await
        .expect("GetPublicKey")
        .address();
    let _: Value = anvil
        .rpc(
            "anvil_setBalance",
            json!([kms_address, U256::from(10u128.pow(18))]),
        )
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let api = free_port();
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{api}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{url}\"]\n\n\
             [tx]\npoll_interval = \"200ms\"\n\n\
             [[accounts]]\nchain = \"anvil\"\nsigner_url = \"{url}\"\naddress = \"{remote:#x}\"\n\n\
             [[accounts]]\nchain = \"anvil\"\nkms_key_id = \"{}\"\nkms_region = \"eu-west-1\"\nkms_endpoint = \"{endpoint}\"\naddress = \"{kms_address:#x}\"\n",
            config.key_id,
            url = anvil.url,
        ),
    )
    .expect("config");
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDTEST".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
        ("ETHGATE_LOG", "debug".to_owned()),
    ];
    let token = token(dir.path(), &env, "tx:write");
    let _serve = serve(dir.path(), &env);
    let base = format!("http://127.0.0.1:{api}");
    let http = reqwest::Client::new();
    ready(&http, &base).await;
    for (from, key) in [(remote, "via-remote-signer"), (kms_address, "via-kms")] {
        let r = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(&token)
            .json(&json!({"chain": "anvil", "from": format!("{from:#x}"), "to": format!("{contract:#x}"),
                "function": "keyed(string)", "args": [key], "idempotency_key": key}))
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status().as_u16(), 202);
        let id = r.json::<Value>().await.expect("JSON")["id"]
            .as_str()
            .expect("id")
            .to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        let t = loop {
            let t: Value = http
                .get(format!("{base}/v1/transactions/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("JSON");
            if t["status"] == "confirmed" || t["status"] == "rejected" {
                break t;
            }
            assert!(Instant::now() < deadline, "{key} never confirmed: {t}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(t["status"], "confirmed", "{t}");
        let receipt = anvil
            .receipt(t["hash"].as_str().expect("hash").parse().expect("hash"))
            .await;
        assert_eq!(receipt["status"], "0x1");
        let signer: Address = receipt["from"]
            .as_str()
            .expect("from")
            .parse()
            .expect("address");
        assert_eq!(signer, from, "{key} signed by its account");
    }
    let log = std::fs::read_to_string(dir.path().join("ethgate.log")).unwrap_or_default();
    assert!(!log.is_empty());
    assert!(!log.contains(AWS_SECRET), "the AWS secret reached the log");
}
