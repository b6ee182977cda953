//! Operational accounts through `ethgate serve`, on anvil, around the
//! recurring-billing contracts:
//! - the compromised-key drill: every attack a leaked operator key can
//!   try reverts; `ethgate accounts rotate` replaces the operators in one
//!   master transaction; the leaked key is then useless; the loss is its
//!   gas float;
//! - rotation killed (`SIGKILL`) again and again and re-run ends with one
//!   operator set on chain, the pool using it, and no ETH stranded;
//! - top-ups refill a member below its minimum and stop at the daily cap,
//!   with an alert;
//! - with two replicas on PostgreSQL, a rotation asked of one moves the
//!   pool on the other, which then sends from the new member.

use crate::common;
mod world;

use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolCall;
use common::ShowLog;
use ethgate_contracts::{DemoToken, OperatorRegistry, RecurringBilling};
use ethgate_keys::{Signer, keystore};
use serde_json::{Value, json};
use world::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compromised_key_drill() {
    let w = world(FLOAT).await;
    let g = rotating_gateway(&w);
    let _log = ShowLog(g.dir.path().to_owned());
    let _serve = g.serve();
    g.ready().await;
    let customer_start = token_balance(&w, w.customer).await;
    let mut n = 0;

    // The attacker holds the operator key. Charging early reverts.
    let charge = RecurringBilling::chargeCall {
        billingId: U256::from(1),
    }
    .abi_encode();
    attack(&w, &mut n, w.billing, charge.clone(), "early charge").await;
    // Paying someone else: the payout belongs to the merchant's controller.
    let redirect = RecurringBilling::updateMerchantCall {
        merchantId: U256::from(1),
        beneficiary: w.leaked.address(),
        operators: w.registry,
    }
    .abi_encode();
    attack(&w, &mut n, w.billing, redirect, "redirected payout").await;
    // A larger value: the terms are the customer's; re-agreeing them reverts.
    let larger = RecurringBilling::allowRecurringBillingCall {
        billingId: U256::from(1),
        merchantId: U256::from(1),
        value: U256::from(10 * VALUE),
        period: 1,
    }
    .abi_encode();
    attack(&w, &mut n, w.billing, larger, "larger value").await;
    let pull = DemoToken::transferFromCall {
        from: w.customer,
        to: w.leaked.address(),
        value: U256::from(VALUE),
    }
    .abi_encode();
    attack(&w, &mut n, w.token, pull, "direct token pull").await;
    // Adding itself or others as operators is the master's alone.
    let add = OperatorRegistry::setOperatorsCall {
        add: vec![Address::repeat_byte(0xaa)],
        remove: vec![],
    }
    .abi_encode();
    attack(&w, &mut n, w.registry, add, "operator change").await;

    // A period later the back end charges through ethgate, once; the
    // attacker's second charge in the same period reverts.
    advance(&w.anvil, PERIOD).await;
    let t = g.charge(&w, "charge-1").await;
    assert_eq!(t["status"], "confirmed", "{t}");
    assert_eq!(t["from"], format!("{:#x}", w.leaked.address()));
    attack(
        &w,
        &mut n,
        w.billing,
        charge.clone(),
        "second charge in a period",
    )
    .await;
    assert_eq!(token_balance(&w, w.beneficiary).await, 2 * VALUE);

    // Rotation: one command, one master transaction.
    let master_nonce = nonce(&w.anvil, w.master).await;
    let funding_before = balance(&w.anvil, w.funding).await;
    let out = rotate_cli(&g);
    assert!(
        out.status.success(),
        "rotate: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let done: Value = serde_json::from_slice(&out.stdout).expect("rotation JSON");
    assert_eq!(done["step"], "done", "{done}");
    let new: Vec<Address> = done["new"]
        .as_array()
        .expect("new")
        .iter()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    assert_eq!(new.len(), 1);
    assert_eq!(
        nonce(&w.anvil, w.master).await,
        master_nonce + 1,
        "exactly one master transaction"
    );
    assert!(
        !is_operator(&w, w.leaked.address()).await,
        "the leaked key is no operator"
    );
    assert!(is_operator(&w, new[0]).await, "the new key is");
    let accounts = g.get("/v1/accounts").await;
    let pool = g.pool(&accounts);
    let state = |a: Address| {
        pool["members"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["address"] == format!("{a:#x}")))
            .map(|m| m["state"].clone())
    };
    assert_eq!(state(new[0]), Some(json!("active")), "{pool}");
    assert_eq!(state(w.leaked.address()), Some(json!("retired")), "{pool}");
    // The leaked account's float went back to funding; what stays is dust.
    let left = balance(&w.anvil, w.leaked.address()).await;
    assert!(left <= DUST, "{left} wei stranded on the leaked account");
    let funding_after = balance(&w.anvil, w.funding).await;
    // Funding paid the new member's float and got the leaked one's back.
    assert!(
        funding_after + ETHER / 20 + DUST >= funding_before,
        "funding {funding_before} -> {funding_after}"
    );

    // The leaked key is now useless, and the back end charges from the new
    // one. (Its float is gone: the attacker must pay gas from elsewhere.)
    let _: Value = w
        .anvil
        .rpc(
            "anvil_setBalance",
            json!([w.leaked.address(), U256::from(ETHER)]),
        )
        .await;
    advance(&w.anvil, PERIOD).await;
    attack(&w, &mut n, w.billing, charge, "charge with the removed key").await;
    let t = g.charge(&w, "charge-2").await;
    assert_eq!(t["status"], "confirmed", "{t}");
    assert_eq!(t["from"], format!("{:#x}", new[0]));

    // The loss is bounded by the gas float: the customer paid exactly the
    // three due periods, all to the beneficiary; the attacker got nothing.
    assert_eq!(
        customer_start - token_balance(&w, w.customer).await,
        2 * VALUE
    );
    assert_eq!(token_balance(&w, w.beneficiary).await, 3 * VALUE);
    assert_eq!(token_balance(&w, w.leaked.address()).await, 0);
}

/// Every address that was ever a member, and every keystore file.
async fn everyone(g: &Gateway, pool: &Value) -> Vec<(Address, String)> {
    let mut all: Vec<(Address, String)> = pool["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| {
            Some((
                m["address"].as_str()?.parse().ok()?,
                m["state"].as_str()?.to_owned(),
            ))
        })
        .collect();
    if let Ok(files) = keystore::list(&g.dir.path().join("pool-keys")) {
        for (_, a) in files {
            if let Some(a) = a
                && !all.iter().any(|(b, _)| *b == a)
            {
                all.push((a, "unrecorded".into()));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_killed_at_every_step_ends_consistent() {
    let w = world(FLOAT).await;
    let g = rotating_gateway(&w);
    let _log = ShowLog(g.dir.path().to_owned());
    let master_nonce = nonce(&w.anvil, w.master).await;
    let mut steps_killed = Vec::new();
    // Kill -9 the gateway soon after each (re-)request, at growing delays,
    // so kills land in every step; each restart re-runs the rotation.
    for round in 0..40u64 {
        let mut serve = g.serve();
        g.ready().await;
        let (code, v) = g
            .post(
                "/v1/pools/billing/rotate",
                &json!({"idempotency_key": ROTATION_KEY}),
            )
            .await;
        assert_eq!(code, 202, "{v}");
        tokio::time::sleep(Duration::from_millis(50 + 120 * (round % 6))).await;
        let v = g.get("/v1/pools/billing/rotation").await;
        steps_killed.push(v["step"].as_str().unwrap_or("?").to_owned());
        serve.start_kill().expect("kill -9");
        let _ = serve.wait().await;
        if v["step"] == "done" {
            break;
        }
    }
    // Re-run until done.
    let _serve = g.serve();
    g.ready().await;
    let out = rotate_cli(&g);
    assert!(
        out.status.success(),
        "rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("killed during steps: {steps_killed:?}");
    assert!(
        steps_killed.len() >= 5,
        "at least five kills: {steps_killed:?}"
    );

    // One operator set on chain, the pool using it, no ETH stranded.
    let accounts = g.get("/v1/accounts").await;
    let pool = g.pool(&accounts);
    let all = everyone(&g, &pool).await;
    let active: Vec<Address> = all
        .iter()
        .filter(|(_, s)| s == "active")
        .map(|(a, _)| *a)
        .collect();
    assert_eq!(active.len(), 1, "{pool}");
    for (a, state) in &all {
        assert_eq!(
            is_operator(&w, *a).await,
            state == "active",
            "{a:#x} ({state}) on chain"
        );
        if state != "active" {
            let left = balance(&w.anvil, *a).await;
            assert!(left <= DUST, "{left} wei stranded on {a:#x} ({state})");
        }
    }
    let count = call(
        &w.anvil,
        w.registry,
        OperatorRegistry::operatorCountCall {}.abi_encode().into(),
    )
    .await;
    assert_eq!(
        U256::from_be_slice(&count),
        U256::from(1),
        "one operator on chain"
    );
    assert!(
        balance(&w.anvil, active[0]).await >= ETHER / 20 - DUST,
        "the new member is funded"
    );
    assert_eq!(
        nonce(&w.anvil, w.master).await,
        master_nonce + 1,
        "one master transaction across all restarts"
    );
    let t = g.charge(&w, "after-rotation").await;
    // Not due yet: the new operator is authorised (the revert is TooEarly).
    assert_eq!(t["status"], "rejected", "{t}");
    assert!(
        t["error"].as_str().unwrap_or("").contains("TooEarly")
            || t["error"].as_str().unwrap_or("").contains("revert"),
        "{t}"
    );
    assert_eq!(t["from"], format!("{:#x}", active[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_ups_refill_below_the_minimum_and_stop_at_the_daily_cap() {
    let w = world(ETHER / 1000).await;
    let member = w.leaked.address();
    let g = gateway(
        &w,
        "min_balance = \"0.01 ether\"\ntop_up = \"0.02 ether\"\ndaily_top_up_cap = \"0.05 ether\"\n",
        &[member],
    );
    let _log = ShowLog(g.dir.path().to_owned());
    let _serve = g.serve();
    g.ready().await;
    let funding_start = balance(&w.anvil, w.funding).await;
    let wait_balance = |min: u128| {
        let anvil = &w.anvil;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while balance(anvil, member).await < min {
                assert!(Instant::now() < deadline, "no top-up arrived");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Below the minimum: one top-up of 0.02.
    wait_balance(ETHER / 1000 + 2 * ETHER / 100).await;
    // Spent down again: a second one (0.04 of the 0.05 cap).
    let _: Value = w
        .anvil
        .rpc(
            "anvil_setBalance",
            json!([member, U256::from(ETHER / 1000)]),
        )
        .await;
    wait_balance(ETHER / 1000 + 2 * ETHER / 100).await;
    // And again: a third would pass the cap, so none comes, and the pool alerts.
    let _: Value = w
        .anvil
        .rpc(
            "anvil_setBalance",
            json!([member, U256::from(ETHER / 1000)]),
        )
        .await;
    let pool = g.alerting_pool().await;
    let alert = &pool["alerts"][0];
    assert_eq!(alert["kind"], "daily_cap_reached", "{alert}");
    assert_eq!(
        alert["account"],
        member.to_string().to_lowercase(),
        "{alert}"
    );
    assert!(
        alert["message"]
            .as_str()
            .is_some_and(|m| m.contains("daily cap")),
        "{alert}"
    );
    assert_eq!(
        pool["topped_up_today"],
        (4 * ETHER / 100).to_string(),
        "{pool}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        balance(&w.anvil, member).await,
        ETHER / 1000,
        "no top-up past the cap"
    );
    let paid = funding_start - balance(&w.anvil, w.funding).await;
    assert!(
        (4 * ETHER / 100..4 * ETHER / 100 + 2 * DUST).contains(&paid),
        "funding paid {paid}"
    );
    let metrics = common::metrics(&g.http, &g.base).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ethgate_pool_alerts{pool=\"billing\"} 1")),
        "alert metric"
    );
    assert!(
        metrics.contains("ethgate_account_balance_ether"),
        "balance metric"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_master_signs_the_shown_transaction_and_the_rotation_follows_the_chain() {
    let w = world(FLOAT).await;
    let g = gateway(
        &w,
        &format!(
            "registry = \"{:#x}\"\nmaster = \"external\"\ntop_up = \"0.05 ether\"\n",
            w.registry
        ),
        &[w.leaked.address()],
    );
    let _log = ShowLog(g.dir.path().to_owned());
    let _serve = g.serve();
    g.ready().await;
    let master_nonce = nonce(&w.anvil, w.master).await;
    let (code, v) = g.post("/v1/pools/billing/rotate", &json!({})).await;
    assert_eq!(code, 202, "{v}");
    // The gateway prepares everything, then shows what the multisig must sign.
    let deadline = Instant::now() + Duration::from_secs(60);
    let shown = loop {
        let v = g.get("/v1/pools/billing/rotation").await;
        if let Some(m) = v.get("multisig_transaction") {
            break m.clone();
        }
        assert!(Instant::now() < deadline, "no transaction shown: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(shown["to"], format!("{:#x}", w.registry));
    assert_eq!(shown["chain_id"], 31337);
    assert_eq!(
        nonce(&w.anvil, w.master).await,
        master_nonce,
        "ethgate sent nothing as the master"
    );
    // The multisig (here: the owner account, outside ethgate) signs and sends it.
    let data: alloy_primitives::Bytes = shown["data"].as_str().expect("data").parse().expect("hex");
    world::send_as(&w.anvil, w.master, Some(w.registry), data).await;
    // The rotation sees the change on chain and finishes.
    let out = rotate_cli(&g);
    assert!(
        out.status.success(),
        "rotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: Value = serde_json::from_slice(&out.stdout).expect("rotation JSON");
    assert_eq!(done["step"], "done", "{done}");
    let new: Address = done["new"][0]
        .as_str()
        .expect("new")
        .parse()
        .expect("address");
    assert!(is_operator(&w, new).await && !is_operator(&w, w.leaked.address()).await);
    assert!(balance(&w.anvil, w.leaked.address()).await <= DUST, "swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_top_up_the_funding_account_cannot_pay_alerts_until_funds_arrive() {
    let w = world(ETHER / 1000).await;
    let _: Value = w
        .anvil
        .rpc("anvil_setBalance", json!([w.funding, "0x0"]))
        .await;
    let g = gateway(
        &w,
        "min_balance = \"0.01 ether\"\ntop_up = \"0.02 ether\"\ndaily_top_up_cap = \"0.05 ether\"\n",
        &[w.leaked.address()],
    );
    let _log = ShowLog(g.dir.path().to_owned());
    let _serve = g.serve();
    g.ready().await;
    let pool = g.alerting_pool().await;
    let alert = &pool["alerts"][0];
    // The node refuses the transfer (its nonce is taken, so it waits for
    // funds rather than being dropped); the pool names the cause.
    assert_eq!(alert["kind"], "top_up_waiting", "{alert}");
    let message = alert["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("top-up of") && message.to_lowercase().contains("insufficient funds"),
        "{alert}"
    );
    assert_eq!(balance(&w.anvil, w.leaked.address()).await, ETHER / 1000);
    // Funds arrive: the waiting top-up goes through and the alert clears.
    let _: Value = w
        .anvil
        .rpc("anvil_setBalance", json!([w.funding, U256::from(ETHER)]))
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while balance(&w.anvil, w.leaked.address()).await < ETHER / 1000 + 2 * ETHER / 100 {
        assert!(
            Instant::now() < deadline,
            "the waiting top-up never went through"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while g.pool(&g.get("/v1/accounts").await)["alerts"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        assert!(Instant::now() < deadline, "the alert never cleared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_one_replica_moves_the_pool_on_every_replica() {
    let w = world(FLOAT).await;
    let pg = ethgate_store::scratch::Scratch::postgres(ethgate_store::scratch::DEFAULT_PG)
        .await
        .expect("PostgreSQL (scripts/services starts it)");
    let mut g = rotating_gateway_on(&w, Some(pg.url()));
    g.env.push(("ETHGATE_CLUSTER__LEASE_TTL", "1s".to_owned()));
    let _log = ShowLog(g.dir.path().to_owned());
    let _a = g.serve();
    let port_b = ethgate_testkit::free_port();
    let mut env_b = g.env.clone();
    env_b.push(("ETHGATE_API__LISTEN", format!("127.0.0.1:{port_b}")));
    let _b = common::serve(g.dir.path(), &env_b);
    let base_b = format!("http://127.0.0.1:{port_b}");
    g.ready().await;
    common::ready(&g.http, &base_b).await;

    let (code, v) = g
        .post(
            "/v1/pools/billing/rotate",
            &json!({"idempotency_key": ROTATION_KEY}),
        )
        .await;
    assert_eq!(code, 202, "{v}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while g.get("/v1/pools/billing/rotation").await["step"] != "done" {
        assert!(Instant::now() < deadline, "the rotation never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = g.pool(&g.get("/v1/accounts").await);
    let active: Vec<Address> = everyone(&g, &pool)
        .await
        .into_iter()
        .filter(|(_, s)| s == "active")
        .map(|(a, _)| a)
        .collect();
    assert_eq!(active.len(), 1, "{pool}");
    assert_ne!(active[0], w.leaked.address(), "the leaked member is gone");

    // The replica that did not rotate sends the pool's requests from the
    // new member (it learned of it within a lease's lifetime).
    let cluster = g.get("/v1/cluster").await;
    let rotated_on = cluster["units"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["unit"] == "pools"))
        .and_then(|u| u["holder"].as_str())
        .expect("the pools unit's holder")
        .to_owned();
    let base_b = if rotated_on.ends_with(&format!(":{port_b}")) {
        g.base.clone()
    } else {
        base_b
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = g
        .http
        .post(format!("{base_b}/v1/transactions"))
        .bearer_auth(&g.token)
        .json(
            &json!({"chain": "anvil", "from": "billing", "to": format!("{:#x}", w.billing),
            "function": "charge(uint256)", "args": ["1"], "idempotency_key": "on-replica-b"}),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 202);
    let v: Value = r.json().await.expect("JSON");
    let id = v["id"].as_str().expect("id");
    let t: Value = g
        .http
        .get(format!("{base_b}/v1/transactions/{id}"))
        .bearer_auth(&g.token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(t["from"], format!("{:#x}", active[0]), "{t}");
}
