//! Who may send what, through `ethgate serve` on anvil: the stolen-token
//! drill. A `tx:write` token held to one pool, one contract and one
//! function (policy `ops-billing`) is used by an attacker: sending from
//! the funding account or another pool, calling another function or
//! contract, moving value and passing the daily cap are each refused
//! with 403 and the rule, take no nonce, and are in the audit trail,
//! while the back end's own token of the same policy keeps sending.
//! Then revocation and expiry: a revoked token's next request is refused,
//! and so is an expired token's.

use crate::common;

use std::time::Duration;

use alloy_primitives::{Address, U64};
use common::{Destination, ShowLog, Webhook, ready, serve, token, token_with, until};
use ethgate_testkit::{Anvil, DEV_KEYS, free_port};
use serde_json::{Value, json};

/// anvil's accounts 1, 2 and 3: pool `ops`, pool `other`, and the
/// funding account of `ops`.
const OPS: &str = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
const OTHER: &str = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc";
const FUNDING: &str = "0x90f79bf6eb2c4f870365e785982e1f101e93b906";

/// The gateway's config; with `audit_sink` (a sink's TOML body), the
/// audit trail is delivered to it.
fn config(port: u16, rpc: &str, contract: Address, audit_sink: Option<String>) -> String {
    let (audit, sink) = match audit_sink {
        Some(body) => (
            "audit_sinks = [\"audit-hook\"]\n",
            format!("[[sinks]]\nname = \"audit-hook\"\n{body}\n\n"),
        ),
        None => ("", String::new()),
    };
    format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n{audit}\n{sink}\
         [[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{rpc}\"]\npoll_interval = \"200ms\"\n\n\
         [tx]\nallow_dev_keys = true\n\n\
         [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY_OPS\"\n\n\
         [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY_OTHER\"\n\n\
         [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"KEY_FUNDING\"\n\n\
         [[pools]]\nname = \"ops\"\naccounts = [\"{OPS}\"]\nfunding = \"{FUNDING}\"\n\n\
         [[pools]]\nname = \"other\"\naccounts = [\"{OTHER}\"]\n\n\
         [[policies]]\nname = \"ops-billing\"\nfrom = [\"ops\"]\nto = [\"{contract:#x}\"]\n\
         selectors = [\"keyed(string)\"]\nmax_fee_per_gas = \"100 gwei\"\nmax_gas = 200000\n\
         daily_cap = \"0.2 ether\"\n"
    )
}

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("KEY_OPS", DEV_KEYS[1].to_owned()),
        ("KEY_OTHER", DEV_KEYS[2].to_owned()),
        ("KEY_FUNDING", DEV_KEYS[3].to_owned()),
    ]
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(&self, token: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/transactions", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn call(from: &str, to: Address, function: &str, args: Value, key: &str) -> Value {
    json!({"chain": "anvil", "from": from, "to": format!("{to:#x}"), "function": function,
           "args": args, "idempotency_key": key})
}

async fn nonce(anvil: &Anvil, who: &str) -> u64 {
    let n: U64 = anvil
        .rpc("eth_getTransactionCount", json!([who, "latest"]))
        .await;
    n.to::<u64>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stolen_token_drill() {
    let anvil = Anvil::start(&["--block-time", "1"]).await;
    let contract = anvil.deploy_event_source().await;
    let elsewhere = anvil.deploy_event_source().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let port = free_port();
    // The audit trail goes to a webhook too, as a SIEM would take it.
    let hook = Webhook::start(u64::MAX).await;
    let config = config(port, &anvil.url, contract, Some(hook.sink_toml()));
    std::fs::write(dir.path().join("ethgate.toml"), config).expect("config");
    let env: Vec<(&str, String)> = env().into_iter().chain(hook.env()).collect();
    let attacker = token_with(
        dir.path(),
        &env,
        &["--policy", "ops-billing", "--label", "stolen"],
    );
    let backend = token_with(
        dir.path(),
        &env,
        &["--policy", "ops-billing", "--label", "backend"],
    );
    let broad = token(dir.path(), &env, "tx:write");
    let admin = token(dir.path(), &env, "admin");
    let _serve = serve(dir.path(), &env);
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    ready(&api.http, &api.base).await;
    let before = [
        nonce(&anvil, OPS).await,
        nonce(&anvil, OTHER).await,
        nonce(&anvil, FUNDING).await,
    ];

    let keyed = |from: &str, key: &str| call(from, contract, "keyed(string)", json!([key]), key);
    let mut attacks = vec![
        ("from", keyed(FUNDING, "a-funding")),
        ("from", keyed("other", "a-pool")),
        ("from", keyed(OTHER, "a-account")),
        (
            "function",
            call("ops", contract, "once(string)", json!(["x"]), "a-function"),
        ),
        (
            "to",
            call(
                "ops",
                elsewhere,
                "keyed(string)",
                json!(["x"]),
                "a-contract",
            ),
        ),
        ("value", {
            let mut b = keyed("ops", "a-value");
            b["value"] = json!("1000");
            b
        }),
        (
            "data",
            json!({"chain": "anvil", "from": "ops", "to": format!("{contract:#x}"),
                        "value": "0", "idempotency_key": "a-transfer"}),
        ),
    ];
    // The back end sends through the same policy while the attack runs.
    let mut legit = Vec::new();
    for (i, (field, body)) in attacks.drain(..).enumerate() {
        let (status, err) = api.send(&attacker, body).await;
        assert_eq!(status, 403, "attack on {field}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("policy ops-billing: "), "{message}");
        let (status, ok) = api
            .send(&backend, keyed("ops", &format!("legit-{i}")))
            .await;
        assert_eq!(status, 202, "the back end's request {i}: {ok}");
        legit.push(ok["id"].as_str().unwrap_or_default().to_owned());
    }
    // A scope-only tx:write token may not use the funding account either.
    let (status, err) = api.send(&broad, keyed(FUNDING, "broad-funding")).await;
    assert_eq!(
        (status, &err["error"]["field"]),
        (403, &json!("from")),
        "{err}"
    );

    // The attacker's own allowed calls stop at the daily cap: each is
    // reckoned at 200,000 gas × 100 gwei = 0.02 ether against 0.2 ether.
    let mut allowed = 0;
    let mut capped = Value::Null;
    for i in 0..12 {
        let (status, body) = api
            .send(&attacker, keyed("ops", &format!("a-cap-{i}")))
            .await;
        match status {
            202 => allowed += 1,
            403 => {
                capped = body;
                break;
            }
            s => panic!("unexpected {s}: {body}"),
        }
    }
    assert_eq!(allowed, 10, "requests inside the cap");
    let message = capped["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("daily cap"), "{capped}");
    let (status, ok) = api.send(&backend, keyed("ops", "legit-after-cap")).await;
    assert_eq!(status, 202, "the cap is the attacker's token's: {ok}");
    legit.push(ok["id"].as_str().unwrap_or_default().to_owned());

    // Everything allowed is mined; refusals took no nonce anywhere.
    for id in &legit {
        until(60, "the back end's requests confirmed", || async {
            let (_, t) = api.get(&backend, &format!("/v1/transactions/{id}")).await;
            (t["status"] == "confirmed").then_some(())
        })
        .await;
    }
    until(60, "the attacker's allowed calls mined", || async {
        let n = nonce(&anvil, OPS).await;
        (n == before[0] + legit.len() as u64 + allowed).then_some(())
    })
    .await;
    assert_eq!(
        nonce(&anvil, OTHER).await,
        before[1],
        "other pool untouched"
    );
    assert_eq!(
        nonce(&anvil, FUNDING).await,
        before[2],
        "funding account untouched"
    );

    // The audit trail holds each refusal with the token's label and rule.
    let (status, trail) = api.get(&admin, "/v1/audit?limit=1000").await;
    assert_eq!(status, 200, "{trail}");
    let entries = trail["entries"].as_array().cloned().unwrap_or_default();
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["label"] == "stolen" && e["outcome"] == "refused")
        .collect();
    assert_eq!(refused.len(), 8, "7 attacks and the cap: {trail}");
    assert!(refused.iter().all(|e| {
        e["action"] == "tx_submit"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("policy ops-billing"))
    }));
    let accepted = entries
        .iter()
        .filter(|e| e["label"] == "backend" && e["outcome"] == "accepted")
        .count();
    assert_eq!(accepted, legit.len());
    assert!(
        !trail.to_string().contains(&attacker[4..]),
        "no secret in the trail"
    );
    let delivered = until(30, "the trail delivered to the webhook", || async {
        let got = hook.received().await;
        let refusals = got
            .iter()
            .filter(|d| d.envelope["kind"] == "audit" && d.envelope["label"] == "stolen")
            .filter(|d| d.envelope["outcome"] == "refused")
            .count();
        (refusals == 8).then_some(got)
    })
    .await;
    assert!(
        delivered
            .iter()
            .all(|d| !d.envelope.to_string().contains(&attacker[4..]))
    );
    // The policy token reads its own transactions, not the trail or
    // other tokens' transactions.
    let (status, _) = api.get(&attacker, "/v1/audit").await;
    assert_eq!(status, 403);
    let (status, _) = api
        .get(&attacker, &format!("/v1/transactions/{}", legit[0]))
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_refused() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _log = ShowLog(dir.path().to_owned());
    let port = free_port();
    std::fs::write(
        dir.path().join("ethgate.toml"),
        config(port, &anvil.url, contract, None),
    )
    .expect("config");
    let by_api = token_with(
        dir.path(),
        &env(),
        &["--policy", "ops-billing", "--label", "by-api"],
    );
    let by_cli = token_with(
        dir.path(),
        &env(),
        &["--policy", "ops-billing", "--label", "by-cli"],
    );
    let brief = token_with(
        dir.path(),
        &env(),
        &[
            "--policy",
            "ops-billing",
            "--label",
            "brief",
            "--expires",
            "2s",
        ],
    );
    let admin = token(dir.path(), &env(), "admin");
    let _serve = serve(dir.path(), &env());
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    ready(&api.http, &api.base).await;
    for t in [&by_api, &by_cli, &brief] {
        assert_eq!(api.get(t, "/v1/transactions").await.0, 200);
    }
    let (_, list) = api.get(&admin, "/v1/tokens").await;
    assert!(
        !list.to_string().contains("egt_"),
        "a list shows no secret: {list}"
    );
    let id_of = |label: &str| {
        list["tokens"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["label"] == label))
            .and_then(|t| t["id"].as_str())
            .map(str::to_owned)
            .expect("listed")
    };
    let r = api
        .http
        .post(format!("{}/v1/tokens/{}/revoke", api.base, id_of("by-api")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status().as_u16(), 200);
    let (status, err) = api.get(&by_api, "/v1/transactions").await;
    assert_eq!(status, 401, "the very next request: {err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(["token", "revoke", &id_of("by-cli")])
        .current_dir(dir.path())
        .envs(env())
        .output()
        .expect("token revoke");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, err) = api.get(&by_cli, "/v1/transactions").await;
    assert_eq!(status, 401, "revoked from the command line: {err}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, err) = api.get(&brief, "/v1/transactions").await;
    assert_eq!(status, 401, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired"))
    );
    let (_, trail) = api.get(&admin, "/v1/audit").await;
    let revokes = trail["entries"].as_array().map_or(0, |e| {
        e.iter().filter(|e| e["action"] == "token_revoke").count()
    });
    assert_eq!(revokes, 2, "{trail}");
}
