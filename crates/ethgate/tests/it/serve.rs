//! `ethgate serve` over a real socket: a token made by the CLI reads a
//! stream through the pull API, a long-poll is answered by a new event,
//! metrics are exposed, and SIGTERM with a long-poll held still exits
//! promptly and cleanly.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common;

use ethgate_testkit::{Anvil, free_port};
use serde_json::Value;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_the_pull_api_and_stops_promptly_on_sigterm() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    anvil.burst(contract, 3, 0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"100ms\"\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n",
            anvil.url
        ),
    )
    .expect("config");
    let bin = env!("CARGO_BIN_EXE_ethgate");
    let token = common::token(dir.path(), &[], "events:read");
    let mut serve = Command::new(bin)
        .arg("serve")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if ready == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve never became ready (last {ready})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = |after: u64, wait: u64| {
        http.get(format!(
            "{base}/v1/streams/source/events?after={after}&wait={wait}"
        ))
        .bearer_auth(&token)
        .send()
    };
    let first: Value = page(0, 5).await.expect("pull").json().await.expect("json");
    assert_eq!(first["events"].as_array().map(Vec::len), Some(3));
    let next = first["next"].as_u64().expect("next");

    let held = tokio::spawn(page(next, 10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    anvil.burst(contract, 2, 100).await;
    let second: Value = held
        .await
        .expect("task")
        .expect("pull")
        .json()
        .await
        .expect("json");
    let events = second["events"].as_array().expect("events");
    assert_eq!(events.len(), 2, "the long-poll returned the new events");
    assert_eq!(events[0]["args"]["value"], 100);

    let metrics = common::metrics(&http, &base).await;
    assert!(
        metrics.contains("ethgate_stream_events_total{stream=\"source\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("ethgate_rpc_requests_total"));

    let held = tokio::spawn(page(second["next"].as_u64().expect("next"), 30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = serve.id().expect("pid").to_string();
    let stopping = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(5), serve.wait())
        .await
        .expect("exited within 5 s")
        .expect("wait");
    assert!(exit.success(), "clean exit: {exit}");
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let answered = held
        .await
        .expect("task")
        .expect("the held long-poll was answered");
    assert_eq!(answered.status().as_u16(), 200);
}

/// `ethgate call` reads through the running gateway: a function named from
/// the stream's ABI, a revert decoded and exited on, and the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethgate_call_reads_contract_state_through_serve() {
    use alloy_sol_types::SolCall;
    use ethgate_contracts::DemoToken;
    let anvil = Anvil::start(&[]).await;
    let r = anvil
        .send(
            None,
            ethgate_contracts::deployment(&DemoToken::BYTECODE, &[]).to_vec(),
        )
        .await;
    let token: alloy_primitives::Address = r["contractAddress"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("token address");
    let holder = alloy_primitives::Address::repeat_byte(0x42);
    let mint = DemoToken::mintCall {
        to: holder,
        amount: alloy_primitives::U256::from(42),
    };
    anvil.send(Some(token), mint.abi_encode()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let abi = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/artifacts/DemoToken.json"
    );
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\n\n\
             [[streams]]\nname = \"token\"\nchain = \"anvil\"\naddresses = [\"{token:#x}\"]\nabi = \"{abi}\"\n",
            anvil.url
        ),
    )
    .expect("config");
    let (reader, events_only) = (
        common::token(dir.path(), &[], "chain:read"),
        common::token(dir.path(), &[], "events:read"),
    );
    let _serve = common::serve(dir.path(), &[]);
    common::ready(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    let bin = env!("CARGO_BIN_EXE_ethgate");
    let call = |token: &str, args: &[&str]| {
        std::process::Command::new(bin)
            .arg("call")
            .args(args)
            .current_dir(dir.path())
            .env("ETHGATE_TOKEN", token)
            .output()
            .expect("call runs")
    };
    let to = format!("{token:#x}");
    let who = format!("{holder:#x}");
    let out = call(
        &reader,
        &[
            "--chain",
            "anvil",
            "--to",
            &to,
            "--function",
            "balanceOf",
            "--arg",
            &who,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(answer["outputs"]["0"], 42);
    let revert = [
        "--chain",
        "anvil",
        "--to",
        &to,
        "--function",
        "transferFrom(address,address,uint256)(bool)",
        "--arg",
        &who,
        "--arg",
        &who,
        "--arg",
        "5",
    ];
    let out = call(&reader, &revert);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ERC20InsufficientAllowance"), "{err}");
    let out = call(
        &events_only,
        &["--chain", "anvil", "--to", &to, "--function", "totalSupply"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("403"), "{err}");
}
