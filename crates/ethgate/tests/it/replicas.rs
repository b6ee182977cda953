//! Three `ethgate serve` replicas on one PostgreSQL share a stream, its
//! RabbitMQ route and four sending accounts under leases, while one is
//! SIGKILLed (and restarted) every ~20 s and another is SIGSTOPped past its
//! lease and resumed, twice each. Afterwards: the consumer's view (deduped
//! by seq, retractions applied) equals `eth_getLogs` over 100,000 events;
//! each of 1,000 requests' calls happened exactly once on chain from
//! contiguous nonces; the paused replica's writes were refused by its
//! fences when it woke; and the others took over what it and the killed
//! one held.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U64, keccak256};
use common::{AMQP_URL, ShowLog, bound_queue, exchange, rabbitmq, serve, token, unique, until};
use ethgate_core::EventEnvelope;
use ethgate_store::Store;
use ethgate_store::scratch::{DEFAULT_PG, Scratch};
use ethgate_testkit::{Anvil, DEV_KEYS, apply, assert_equals_truth, free_port};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use tokio::process::Child;

/// Events in the history before the replicas start, and emitted while
/// they run (1,000 per transaction).
const BACKLOG: u64 = 60_000;
const LIVE: u64 = 40_000;
/// Requests, over [`ACCOUNTS`] accounts (anvil's dev accounts 1–4).
const REQUESTS: usize = 1_000;
const ACCOUNTS: usize = 4;
/// A short lease, so takeovers happen within the test.
const TTL: Duration = Duration::from_secs(2);

/// Everything the consumer received, by seq (first copy kept), and the
/// seqs in the order first seen.
#[derive(Default)]
struct Received {
    by_seq: BTreeMap<u64, EventEnvelope>,
    first_seen: Vec<u64>,
    copies: u64,
}

/// Consumes the queue into `got` until the test ends.
async fn consume(ch: lapin::Channel, queue: String, got: Arc<Mutex<Received>>) {
    ch.basic_qos(2_000, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = ch
        .basic_consume(
            queue.as_str().into(),
            "replicas-test".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    while let Some(Ok(d)) = consumer.next().await {
        let env: EventEnvelope = serde_json::from_slice(&d.data).expect("an envelope");
        let seq = env.seq.expect("a delivered envelope has its seq");
        let mut g = got.lock().expect("lock");
        g.copies += 1;
        if let std::collections::btree_map::Entry::Vacant(v) = g.by_seq.entry(seq) {
            v.insert(env);
            g.first_seen.push(seq);
        }
    }
}

/// A replica's API port, its process and how to start it again.
struct Replica {
    port: u16,
    child: Child,
}

fn start(dir: &std::path::Path, env: &[(&str, String)], port: u16) -> Replica {
    let mut env = env.to_vec();
    env.push(("ETHGATE_API__LISTEN", format!("127.0.0.1:{port}")));
    Replica {
        port,
        child: serve(dir, &env),
    }
}

fn signal(child: &Child, sig: &str) {
    let pid = child.id().expect("running").to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

/// The sum of a counter's samples in a replica's `/metrics`.
async fn counter(http: &reqwest::Client, port: u16, name: &str) -> f64 {
    let text = common::metrics(http, &format!("http://127.0.0.1:{port}")).await;
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The index of the replica holding `unit`, asked of the first that
/// answers `GET /v1/cluster`.
async fn holder(http: &reqwest::Client, ports: &[u16], token: &str, unit: &str) -> usize {
    for p in ports {
        let Ok(r) = http
            .get(format!("http://127.0.0.1:{p}/v1/cluster"))
            .bearer_auth(token)
            .send()
            .await
        else {
            continue;
        };
        let page: Value = r.json().await.expect("cluster page");
        let units = page["units"].as_array().expect("units");
        let Some(u) = units.iter().find(|u| u["unit"] == unit) else {
            continue;
        };
        let id = u["holder"].as_str().unwrap_or("");
        if let Some(i) = ports.iter().position(|p| id.ends_with(&format!(":{p}"))) {
            return i;
        }
    }
    panic!("no replica holds {unit}");
}

/// Submits every request, each to the next replica that answers; a
/// refused connection (a killed replica) moves on to the next one.
async fn submit_all(http: reqwest::Client, ports: Vec<u16>, token: String, contract: Address) {
    let accounts: Vec<String> = (1..=ACCOUNTS).map(dev_address).collect();
    for i in 0..REQUESTS {
        let key = format!("order-{i}");
        let body = json!({"chain": "anvil", "from": accounts[i % ACCOUNTS], "to": format!("{contract:#x}"),
                          "function": "keyed(string)", "args": [key], "idempotency_key": key});
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut k = i;
        loop {
            let port = ports[k % ports.len()];
            let sent = http
                .post(format!("http://127.0.0.1:{port}/v1/transactions"))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(5))
                .json(&body)
                .send()
                .await;
            if matches!(&sent, Ok(r) if r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "request {key} never accepted: {sent:?}"
            );
            k += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// anvil's dev account `i` (1–4), whose key is `DEV_KEYS[i]`.
fn dev_address(i: usize) -> String {
    use ethgate_keys::Signer;
    let key = ethgate_keys::LocalKey::dev(DEV_KEYS[i], "test").expect("a dev key");
    format!("{:#x}", key.address())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_through_kills_and_pauses_lose_nothing_and_send_each_once() {
    let anvil = Arc::new(Anvil::start(&["--gas-limit", "100000000"]).await);
    let contract = anvil.deploy_event_source().await;
    for k in 0..BACKLOG / 1_000 {
        anvil.burst(contract, 1_000, k * 1_000).await;
    }
    let _: Value = anvil.rpc("evm_setAutomine", json!([false])).await;
    let _: Value = anvil.rpc("evm_setIntervalMining", json!([1])).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let scratch = Scratch::postgres(DEFAULT_PG)
        .await
        .expect("PostgreSQL (scripts/services starts it)");
    let _broker = common::broker_in_use().await;
    let (_conn, ch) = rabbitmq().await;
    let exchange_name = unique("ethgate-replicas-");
    exchange(&ch, &exchange_name).await;
    let queue = format!("{exchange_name}-all");
    bound_queue(
        &ch,
        &queue,
        &exchange_name,
        "event.#",
        FieldTable::default(),
    )
    .await;
    let received = Arc::new(Mutex::new(Received::default()));
    tokio::spawn(consume(ch.clone(), queue.clone(), received.clone()));

    let mut config = format!(
        "[store]\nurl = \"{}\"\n\n[cluster]\nlease_ttl = \"{}ms\"\n\n\
         [[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"200ms\"\n\n\
         [[sinks]]\nname = \"bus\"\nkind = \"amqp\"\nurl_env = \"AMQP_URL\"\nexchange = \"{exchange_name}\"\nbatch_size = 500\n\n\
         [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\nsinks = [\"bus\"]\n\
         events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\"]\n\n\
         [tx]\nallow_dev_keys = true\nresubmit_after = \"3s\"\nbump_after = \"30s\"\npoll_interval = \"200ms\"\n",
        scratch.url(),
        TTL.as_millis(),
        anvil.url,
    );
    let mut env = vec![
        ("AMQP_URL", AMQP_URL.to_owned()),
        ("ETHGATE_LOG", "warn".to_owned()),
    ];
    for i in 1..=ACCOUNTS {
        config.push_str(&format!(
            "\n[[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY_{i}\"\n"
        ));
        env.push((
            ["KEY_1", "KEY_2", "KEY_3", "KEY_4"][i - 1],
            DEV_KEYS[i].to_owned(),
        ));
    }
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let token = token(dir.path(), &env, "tx:write");
    let status_token = common::token(dir.path(), &env, "admin");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas: Vec<Replica> = ports.iter().map(|p| start(dir.path(), &env, *p)).collect();
    let http = reqwest::Client::new();
    for p in &ports {
        common::ready(&http, &format!("http://127.0.0.1:{p}")).await;
    }

    // The workload: live events, and requests through every replica.
    let bursts = tokio::spawn({
        let anvil = anvil.clone();
        async move {
            for k in 0..LIVE / 1_000 {
                anvil.burst(contract, 1_000, BACKLOG + k * 1_000).await;
            }
        }
    });
    let submits = tokio::spawn(submit_all(http.clone(), ports.clone(), token, contract));

    // The chaos, twice, ~20 s apart: the replica delivering to the bus
    // (busy awaiting the broker's confirms, so it has a write to make the
    // moment it wakes) paused past its lease and resumed; another killed,
    // and restarted once its leases have expired.
    let started = Instant::now();
    let at = |s: u64| async move {
        let t = Duration::from_secs(s);
        if let Some(wait) = t.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    };
    let mut refusals = 0.0;
    for round in 0..2u64 {
        at(5 + 20 * round).await;
        let paused = holder(&http, &ports, &status_token, "route:source→bus").await;
        let before = counter(&http, ports[paused], ethgate_store::lease::FENCING_REFUSALS).await;
        signal(&replicas[paused].child, "-STOP");
        tokio::time::sleep(TTL * 3).await;
        signal(&replicas[paused].child, "-CONT");
        // It wakes, finds its writes refused, and stops those units.
        tokio::time::sleep(TTL).await;
        refusals +=
            counter(&http, ports[paused], ethgate_store::lease::FENCING_REFUSALS).await - before;
        at(15 + 20 * round).await;
        let killed = (paused + 1 + round as usize) % ports.len();
        replicas[killed].child.kill().await.expect("SIGKILL");
        tokio::time::sleep(TTL * 2).await;
        replicas[killed] = start(dir.path(), &env, replicas[killed].port);
    }
    bursts.await.expect("bursts");
    submits.await.expect("submissions");

    // Everything arrives and every request is confirmed.
    let store = Store::connect(scratch.url()).await.expect("store");
    let total = BACKLOG + LIVE;
    until(240, "every event at the consumer", || {
        let received = received.clone();
        async move { (received.lock().expect("lock").by_seq.len() as u64 >= total).then_some(()) }
    })
    .await;
    until(240, "every request confirmed", || {
        let store = store.clone();
        async move {
            (store
                .count_txs(ethgate_core::TxStatus::Confirmed)
                .await
                .expect("count") as usize
                == REQUESTS)
                .then_some(())
        }
    })
    .await;

    let takeovers: f64 = {
        let mut sum = 0.0;
        for p in &ports {
            sum += counter(&http, *p, "ethgate_lease_takeovers_total").await;
        }
        sum
    };
    eprintln!(
        "replicas: {total} events ({} copies), {REQUESTS} requests, {refusals} fencing refusals, {takeovers} takeovers, {:.0} s",
        received.lock().expect("lock").copies,
        started.elapsed().as_secs_f64()
    );

    // The consumer's view equals the chain.
    let (first_seen, in_order) = {
        let g = received.lock().expect("lock");
        (
            g.first_seen.clone(),
            g.by_seq.values().cloned().collect::<Vec<_>>(),
        )
    };
    let wrong = first_seen
        .iter()
        .zip(1..)
        .find(|(got, want)| **got != *want);
    assert!(
        wrong.is_none(),
        "first seen out of order: {wrong:?} (got, want)"
    );
    let head = anvil.head().await;
    let transfer = keccak256("Transfer(address,address,uint256)");
    let mut truth = anvil.logs(contract, 0, head).await;
    truth.retain(|l| l.topics.first() == Some(&transfer));
    assert_equals_truth(&apply(&in_order), &truth);

    // Each key's call once on chain, from contiguous nonces.
    let keyed = keccak256("Keyed(address,string)");
    let logs: Vec<Value> = anvil
        .rpc("eth_getLogs", json!([{"address": format!("{contract:#x}"), "fromBlock": "0x0", "toBlock": "latest", "topics": [keyed]}]))
        .await;
    let mut per_key: HashMap<String, u64> = HashMap::new();
    for l in &logs {
        *per_key
            .entry(l["data"].as_str().expect("data").to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_key.len(), REQUESTS, "every request's call happened");
    assert!(per_key.values().all(|n| *n == 1), "no call happened twice");
    for i in 1..=ACCOUNTS {
        let n: U64 = anvil
            .rpc("eth_getTransactionCount", json!([dev_address(i), "latest"]))
            .await;
        assert_eq!(
            n.to::<usize>(),
            REQUESTS / ACCOUNTS,
            "account {i}: nonces 0..n, each once"
        );
    }
    assert!(
        refusals > 0.0,
        "the paused replica tried to write and was refused"
    );
    assert!(takeovers > 0.0, "the others took over its units");
    for r in &mut replicas {
        let _ = r.child.kill().await;
    }
}
