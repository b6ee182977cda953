//! A chain's several endpoints through `ethgate serve`: each one's chain id
//! is checked (an endpoint of another chain is refused by name and nothing
//! starts), and `/v1/chains` and `/metrics` show every endpoint's head, up
//! or down, and lag behind the best — here one of them a chaos proxy that
//! answers two blocks behind.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{ShowLog, ready, serve, token, until};
use ethgate_chaos::{ChaosProxy, Lag, Modes};
use ethgate_testkit::{Anvil, free_port};
use serde_json::{Value, json};

fn config(port: u16, rpc: &[&str]) -> String {
    let urls: Vec<String> = rpc.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [{}]\npoll_interval = \"100ms\"\n",
        urls.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_of_another_chain_is_refused_by_name() {
    let ours = Anvil::start(&[]).await;
    let theirs = Anvil::start(&["--chain-id", "999"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(free_port(), &[&ours.url, &theirs.url]);
    std::fs::write(dir.path().join("ethgate.toml"), cfg).expect("config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .arg("serve")
        .current_dir(dir.path())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("serve exits")
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let port = theirs.url.rsplit(':').next().expect("port");
    assert!(
        err.contains("chains.anvil.rpc[1]") && err.contains(port) && err.contains("999"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_shows_its_head_and_lag() {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let behind = Modes {
        lag: Some(Lag {
            rate: 1.0,
            min: 2,
            max: 2,
        }),
        ..Modes::default()
    };
    let lagging = ChaosProxy::start(&anvil.url, any, behind)
        .await
        .expect("proxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let port = free_port();
    let cfg = config(port, &[&anvil.url, &lagging.url]);
    std::fs::write(dir.path().join("ethgate.toml"), cfg).expect("config");
    let token = token(dir.path(), &[], "events:read");
    let mut ethgate = serve(dir.path(), &[]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    ready(&http, &base).await;
    let chain = until(30, "the second endpoint two blocks behind", || async {
        let got: Value = http
            .get(format!("{base}/v1/chains"))
            .bearer_auth(&token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let chain = got["chains"][0].clone();
        (chain["endpoints"][1]["lag"] == json!(2)).then_some(chain)
    })
    .await;
    assert_eq!(chain["name"], "anvil");
    let endpoints = chain["endpoints"].as_array().expect("endpoints");
    assert_eq!(endpoints.len(), 2);
    for e in endpoints {
        assert_eq!(
            (e["up"].clone(), e["serves_chain"].clone()),
            (json!(true), json!(true)),
            "{e}"
        );
        let label = e["endpoint"].as_str().unwrap_or_default();
        assert!(
            !label.trim_start_matches("http://").contains('/'),
            "no path: {label}"
        );
    }
    assert_eq!(endpoints[0]["lag"], 0, "{chain}");
    let metrics = common::metrics(&http, &base).await;
    let label = lagging.url.trim_start_matches("http://");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ethgate_rpc_endpoint_lag_blocks") && l.contains(label)),
        "per-endpoint lag in /metrics"
    );
    ethgate.kill().await.expect("stop");
}
