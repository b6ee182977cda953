//! The reference application end to end: anvil with the token, the
//! operator registry and the billing contract; `ethgate serve` with the
//! billing stream and transaction statuses on RabbitMQ and a pool of
//! charging accounts; this back end consuming its own queue. Customers
//! subscribe, some cancel, and chain time jumps a period at a time while
//! ethgate and the back end are each SIGKILLed at random moments. Every
//! due charge happens exactly once on chain, none early, none for a
//! cancelled billing, and the back end's next dates equal the contract's.

mod common;

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use common::*;
use ethgate_contracts::{DemoToken, RecurringBilling};
use ethgate_testkit::{DEV_KEYS, free_port};
use rand::Rng;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_due_charge_happens_once_through_kills_and_time_travel() {
    let (anvil, billing, customers) = chain().await;
    // Some customers cancel before anything is due.
    for (i, c) in customers.iter().enumerate().take(CANCELED) {
        let cancel = RecurringBilling::cancelRecurringBillingCall {
            billingId: U256::from(i + 1),
        };
        send(&anvil, *c, Some(billing), cancel.abi_encode()).await;
    }
    // The last customer takes back its allowance: each charge is refused
    // in simulation and retried within the window, until the contract
    // itself ends the lapsed billing when charged late.
    let broke = CUSTOMERS;
    let revoke = DemoToken::approveCall {
        spender: billing,
        value: U256::ZERO,
    };
    send(
        &anvil,
        customers[broke - 1],
        Some(token_of(&anvil, billing).await),
        revoke.abi_encode(),
    )
    .await;
    let _: Value = anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (api_port, metrics_port) = (free_port(), free_port());
    let tag: u32 = rand::random();
    let (exchange, queue) = (format!("billing-e2e-{tag}"), format!("billing-e2e-{tag}"));
    let abi = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/artifacts/RecurringBilling.json"
    );
    let mut config = format!(
        "[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"200ms\"\n\n\
         [[streams]]\nname = \"billing\"\nchain = \"anvil\"\naddresses = [\"{billing:#x}\"]\nabi = \"{abi}\"\nconfirmations = 1\nsinks = [\"bus\"]\n\n\
         [[sinks]]\nname = \"bus\"\nkind = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nexchange = \"{exchange}\"\n\n\
         [tx]\nallow_dev_keys = true\nconfirmations = 1\nsinks = [\"bus\"]\n\n",
        anvil.url
    );
    let accounts: Vec<Address> = anvil.rpc("eth_accounts", json!([])).await;
    for i in 1..=POOL {
        config.push_str(&format!(
            "[[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY{i}\"\n\n"
        ));
    }
    let members: Vec<String> = accounts[1..=POOL]
        .iter()
        .map(|a| format!("\"{a:#x}\""))
        .collect();
    config.push_str(&format!(
        "[[pools]]\nname = \"ops\"\nchain = \"anvil\"\naccounts = [{}]\n",
        members.join(", ")
    ));
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let mut env: Vec<(String, String)> = (1..=POOL)
        .map(|i| (format!("KEY{i}"), DEV_KEYS[i].to_owned()))
        .collect();
    let out = std::process::Command::new(bin("ethgate"))
        .args([
            "token",
            "create",
            "--scope",
            "tx:write",
            "--scope",
            "chain:read",
            "--label",
            "billing",
        ])
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let db = dir.path().join("billing.db");
    env.extend([
        ("ETHGATE_URL".into(), format!("http://127.0.0.1:{api_port}")),
        ("ETHGATE_TOKEN".into(), token),
        ("ETHGATE_LOG".into(), "warn".into()),
        ("RUST_LOG".into(), "warn".into()),
        ("BILLING_EXCHANGE".into(), exchange.clone()),
        ("BILLING_QUEUE".into(), queue.clone()),
        ("BILLING_CHAIN".into(), "anvil".into()),
        ("BILLING_CHAIN_ID".into(), "31337".into()),
        ("BILLING_CONTRACT".into(), format!("{billing:#x}")),
        ("BILLING_MERCHANT".into(), "1".into()),
        ("BILLING_POOL".into(), "ops".into()),
        ("BILLING_DB".into(), db.display().to_string()),
        ("BILLING_LISTEN".into(), format!("127.0.0.1:{metrics_port}")),
        ("BILLING_TICK_MS".into(), "200".into()),
    ]);
    let mut p = Processes {
        dir: dir.path().to_path_buf(),
        env,
        ethgate: None,
        billing: None,
    };
    // The back end declares its queue and bindings at start; it must be
    // bound before ethgate first publishes, or the subscriptions would be
    // routed nowhere.
    // The first back end dies right after its 7th submission is accepted
    // and before it records it: its successor submits the same charge
    // again, and only the idempotency key keeps it one transaction.
    p.env
        .push(("BILLING_CRASH_AFTER_SUBMITS".into(), "7".into()));
    p.start_billing();
    p.env.pop();
    let conn =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
            .await
            .expect("rabbitmq");
    let ch = conn.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        durable: true,
        ..Default::default()
    };
    until(30, "the back end declared its queue", async || {
        let probe = conn.create_channel().await.expect("channel");
        probe
            .queue_declare(queue.as_str().into(), passive, Default::default())
            .await
            .is_ok()
    })
    .await;
    p.start_ethgate();
    let active = CUSTOMERS - CANCELED;
    until(120, "the back end heard every subscription", async || {
        next_dates(&db)
            .await
            .iter()
            .filter(|(_, n)| n.is_some())
            .count()
            == active
    })
    .await;
    let mut rng = rand::rng();
    let mut kills = Vec::new();
    let mut mining = true;
    let mut successor: Option<Instant> = None;
    for period in 1..=PERIODS {
        // In the first period nothing is mined until every charge is in
        // flight and the back end that crashed mid-submission has been
        // replaced: its successor finds the charge still due on chain
        // and submits it again — only the key keeps it one transaction.
        if period == 1 {
            let _: Value = anvil.rpc("evm_setIntervalMining", json!([0])).await;
        }
        let _: Value = anvil.rpc("evm_increaseTime", json!([PERIOD])).await;
        let _: Value = anvil.rpc("evm_mine", json!([])).await;
        let jumped: u64 = {
            let b: Value = anvil
                .rpc("eth_getBlockByNumber", json!(["latest", false]))
                .await;
            u64::from_str_radix(
                b["timestamp"]
                    .as_str()
                    .unwrap_or("0x0")
                    .trim_start_matches("0x"),
                16,
            )
            .expect("ts")
        };
        // Two SIGKILLs at random moments of each period, the first
        // within the burst of charges.
        let mut kill_at = vec![
            Instant::now() + Duration::from_millis(rng.random_range(100..1_500)),
            Instant::now() + Duration::from_millis(rng.random_range(1_500..5_000)),
        ];
        if period == 1 {
            mining = false;
        }
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if p.billing_died() {
                kills.push((period, "billing crashed after a submission"));
                p.start_billing();
                successor = Some(Instant::now());
            }
            // Mining resumes once every charge is in flight, or after the
            // successor has had 5 s to submit (a charge it duplicated may
            // have been refused instead).
            if period == 1
                && !mining
                && successor.is_some_and(|t| t.elapsed() > Duration::from_secs(5))
                || (period == 1
                    && !mining
                    && successor.is_some()
                    && in_flight(&db, CANCELED + 1, broke - 1).await == active - 1)
            {
                let _: Value = anvil.rpc("evm_setIntervalMining", json!([1])).await;
                mining = true;
            }
            if kill_at.first().is_some_and(|t| Instant::now() >= *t) {
                kill_at.remove(0);
                // In the first period the back end is left to its own
                // crash; after, either may be killed.
                kills.push((period, p.kill_one(&mut rng, period > 1).await));
            }
            let mut charged = 0;
            for id in CANCELED + 1..broke {
                let (_, last) = on_chain(&anvil, billing, id).await;
                charged += usize::from(last + PERIOD >= jumped);
            }
            let lapsed = period < 2 || !on_chain(&anvil, billing, broke).await.0;
            if charged == active - 1 && lapsed && kill_at.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "period {period}: {charged} of {} charged ({} in flight, mining {mining}); kills {kills:?}",
                active - 1,
                in_flight(&db, CANCELED + 1, broke - 1).await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let truth = charges(&anvil, billing).await;
    for id in 1..=CUSTOMERS as u64 {
        let nexts = truth.get(&id).cloned().unwrap_or_default();
        let want = if id as usize <= CANCELED || id as usize == broke {
            1
        } else {
            1 + PERIODS as usize
        };
        assert_eq!(
            nexts.len(),
            want,
            "billing {id}: charges {nexts:?}; kills {kills:?}"
        );
        for w in nexts.windows(2) {
            // Charged at nextChargeAt - PERIOD: never before the due time.
            assert!(
                w[1] - PERIOD >= w[0],
                "billing {id} charged early: {nexts:?}"
            );
        }
        let active_now = (id as usize) > CANCELED && id as usize != broke;
        assert_eq!(
            on_chain(&anvil, billing, id as usize).await.0,
            active_now,
            "billing {id} active on chain"
        );
    }
    until(
        60,
        "the back end's next dates equal the contract's",
        async || {
            let dates = next_dates(&db).await;
            dates.len() == active - 1
                && dates.iter().all(|(id, next)| {
                    let id: u64 = id.parse().unwrap_or(0);
                    truth.get(&id).and_then(|n| n.last()).map(|&n| n as i64) == *next
                })
        },
    )
    .await;
    // The idempotency key made every retry after a kill the same
    // transaction: exactly one transaction per due charge, confirmed —
    // none refused by its simulation, none reverted on chain.
    until(30, "ethgate is up again after the last kill", async || {
        reqwest::get(format!("http://127.0.0.1:{api_port}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let listed: Value = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{api_port}/v1/transactions?limit=1000"
        ))
        .bearer_auth(
            &p.env
                .iter()
                .find(|(k, _)| k == "ETHGATE_TOKEN")
                .expect("token")
                .1,
        )
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let mut per_due = std::collections::BTreeMap::<(String, i64), Vec<String>>::new();
    for t in listed["transactions"].as_array().into_iter().flatten() {
        let key = (
            t["metadata"]["billing_id"].to_string(),
            t["metadata"]["due"].as_i64().unwrap_or(0),
        );
        per_due
            .entry(key)
            .or_default()
            .push(t["status"].as_str().unwrap_or("?").to_owned());
    }
    assert_eq!(
        per_due.len(),
        (active - 1) * PERIODS as usize + 1,
        "{per_due:?}"
    );
    assert!(
        kills.iter().any(|(_, k)| k.starts_with("billing crashed")),
        "the back end crashed between a submission and its record: {kills:?}\n{}",
        std::fs::read_to_string(dir.path().join("billing.log"))
            .unwrap_or_default()
            .lines()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for ((id, due), statuses) in &per_due {
        if *id == format!("\"{broke}\"") {
            // Refused while the allowance is gone, then the late charge
            // that lapsed the billing.
            let confirmed = statuses.iter().filter(|s| *s == "confirmed").count();
            assert!(
                statuses.contains(&"rejected".to_owned()) && confirmed == 1,
                "{statuses:?}"
            );
            continue;
        }
        assert_eq!(
            statuses,
            &["confirmed"],
            "charge {id}/{due}; kills {kills:?}"
        );
    }
    // Counters restart with the process; its log keeps the retries.
    let log = std::fs::read_to_string(dir.path().join("billing.log")).unwrap_or_default();
    assert!(
        log.contains("charge failed; retrying")
            && log.contains(&format!("billing=\"{broke}\""))
            && log.contains("ERC20InsufficientAllowance"),
        "the refused charges were retried: {log}"
    );
    eprintln!("kills: {kills:?}");
    let _ = ch
        .queue_delete(queue.as_str().into(), Default::default())
        .await;
    let _ = ch
        .exchange_delete(exchange.as_str().into(), Default::default())
        .await;
}
