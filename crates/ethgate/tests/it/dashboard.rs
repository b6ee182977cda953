//! The dashboard in a real browser: headless Chromium loads `/` from
//! `ethgate serve` after traffic (events recorded, transactions
//! confirmed, a pool with balances), and every number the page renders
//! equals what the API answers. A screenshot is written to
//! `target/dashboard.png` (and to `docs/dashboard.png` with
//! `ETHGATE_UPDATE_SCREENSHOT=1`).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::{Destination, Webhook, ready, serve, token_with, until};
use ethgate_testkit::{Anvil, DEV_KEYS, free_port};
use serde_json::{Value, json};

fn chromium() -> std::path::PathBuf {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.exists())
        })
    });
    found.expect("chromium is not installed: scripts/install-tools installs Debian's chromium")
}

fn browse(url: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1400,1300",
            "--virtual-time-budget=15000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

/// Every `data-k="key">value<` cell of the rendered page.
fn cells(dom: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in dom.split("data-k=\"").skip(1) {
        let Some((key, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(start) = rest.find('>') else {
            continue;
        };
        let value = rest[start + 1..].split('<').next().unwrap_or("");
        out.insert(key.to_owned(), value.to_owned());
    }
    out
}

async fn api(http: &reqwest::Client, base: &str, token: &str, path: &str) -> Value {
    http.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_what_the_api_answers() {
    let anvil = Anvil::start(&[]).await;
    let contract = anvil.deploy_event_source().await;
    anvil.burst(contract, 7, 0).await;
    let hook = Webhook::start(u64::MAX).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let sender = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8";
    std::fs::write(
        dir.path().join("ethgate.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"{}\"]\npoll_interval = \"200ms\"\n\n\
             [[streams]]\nname = \"source\"\nchain = \"anvil\"\naddresses = [\"{contract:#x}\"]\nconfirmations = 0\n\
             events = [\"event Transfer(address indexed from, address indexed to, uint256 value)\", \"event Keyed(address indexed sender, string key)\"]\nsinks = [\"hook\"]\n\n\
             [[sinks]]\nname = \"hook\"\n{}\n\n\
             [tx]\nallow_dev_keys = true\nconfirmations = 0\n\n\
             [[accounts]]\nchain = \"anvil\"\ndev_key_env = \"SENDER_KEY\"\n\n\
             [[pools]]\nname = \"ops\"\nchain = \"anvil\"\naccounts = [\"{sender}\"]\n",
            anvil.url,
            hook.sink_toml()
        ),
    )
    .expect("config");
    let mut env = vec![("SENDER_KEY", DEV_KEYS[1].to_owned())];
    env.extend(hook.env());
    let token = token_with(
        dir.path(),
        &env,
        &["--scope", "admin", "--label", "dashboard"],
    );
    let _serve = serve(dir.path(), &env);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    ready(&http, &base).await;
    for i in 0..3 {
        let body = json!({"chain": "anvil", "from": "ops", "to": format!("{contract:#x}"),
            "function": "keyed(string)", "args": [format!("k{i}")], "idempotency_key": format!("dash-{i}")});
        let r = http
            .post(format!("{base}/v1/transactions"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status().as_u16(), 202);
    }
    until(60, "traffic settled", || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let txs = api(&http, &base, &token, "/v1/transactions").await;
        let confirmed = txs["transactions"]
            .as_array()
            .is_some_and(|l| l.len() == 3 && l.iter().all(|t| t["status"] == "confirmed"));
        let streams = api(&http, &base, &token, "/v1/streams").await;
        let caught_up =
            streams["streams"][0]["events_recorded"] == 10 && streams["streams"][0]["lag"] == 0;
        let pools = api(&http, &base, &token, "/v1/accounts").await;
        let balance = !pools["pools"][0]["members"][0]["balance"].is_null();
        let sinks = api(&http, &base, &token, "/v1/sinks").await;
        let delivered = sinks["sinks"][0]["delivered"] == 10;
        (confirmed && caught_up && balance && delivered).then_some(())
    })
    .await;

    let out = browse(&format!("{base}/#token={token}"), &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("data-ready=\"1\""),
        "the page never finished loading: {dom}"
    );
    let shown = cells(&dom);

    let streams = api(&http, &base, &token, "/v1/streams").await;
    let chains = api(&http, &base, &token, "/v1/chains").await;
    let txs = api(&http, &base, &token, "/v1/transactions").await;
    let pools = api(&http, &base, &token, "/v1/accounts").await;
    let sinks = api(&http, &base, &token, "/v1/sinks").await;
    let mut want = BTreeMap::new();
    for s in sinks["sinks"].as_array().into_iter().flatten() {
        let k = format!(
            "sink.{}.{}",
            s["sink"].as_str().unwrap_or_default(),
            s["stream"].as_str().unwrap_or_default()
        );
        for (f, field) in [
            ("cursor", "cursor"),
            ("lag", "lag"),
            ("delivered", "delivered"),
            ("failures", "failures"),
            ("dead", "dead_letters"),
        ] {
            want.insert(format!("{k}.{f}"), s[field].to_string());
        }
    }
    for s in streams["streams"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        for (k, f) in [
            ("cursor", "cursor"),
            ("lag", "lag"),
            ("events", "events_recorded"),
            ("reorgs", "reorgs"),
        ] {
            want.insert(format!("stream.{name}.{k}"), s[f].to_string());
        }
    }
    for c in chains["chains"].as_array().into_iter().flatten() {
        want.insert(
            format!("chain.{}.head", c["name"].as_str().unwrap_or_default()),
            c["head"].to_string(),
        );
    }
    for t in txs["transactions"].as_array().into_iter().flatten() {
        let id = t["id"].as_str().unwrap_or_default();
        let full = api(&http, &base, &token, &format!("/v1/transactions/{id}")).await;
        want.insert(
            format!("tx.{id}.status"),
            full["status"].as_str().unwrap_or_default().to_owned(),
        );
        want.insert(format!("tx.{id}.nonce"), full["nonce"].to_string());
        want.insert(
            format!("tx.{id}.attempts"),
            full["attempts"].as_array().map_or(0, Vec::len).to_string(),
        );
    }
    want.insert("txcount.confirmed".into(), "3".into());
    for p in pools["pools"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default();
        for m in p["members"].as_array().into_iter().flatten() {
            let a = m["address"].as_str().unwrap_or_default();
            want.insert(
                format!("pool.{name}.{a}.state"),
                m["state"].as_str().unwrap_or_default().to_owned(),
            );
            want.insert(
                format!("pool.{name}.{a}.balance"),
                m["balance"].as_str().unwrap_or_default().to_owned(),
            );
            let path = format!("/v1/chains/anvil/accounts/{a}");
            let state = api(&http, &base, &token, &path).await;
            want.insert(format!("pool.{name}.{a}.nonce"), state["nonce"].to_string());
            want.insert(format!("pool.{name}.{a}.flight"), "0".into());
        }
    }
    let cluster = api(&http, &base, &token, "/v1/cluster").await;
    for u in cluster["units"].as_array().into_iter().flatten() {
        let unit = u["unit"].as_str().unwrap_or_default();
        want.insert(
            format!("unit.{unit}.holder"),
            u["holder"].as_str().unwrap_or("—").to_owned(),
        );
        want.insert(format!("unit.{unit}.epoch"), u["epoch"].to_string());
    }
    assert!(
        want.keys().any(|k| k.starts_with("unit.")),
        "the cluster's units are shown: {cluster}"
    );
    assert!(want.len() >= 14, "{want:?}");
    for (k, v) in &want {
        assert_eq!(
            shown.get(k),
            Some(v),
            "{k}: the page shows {:?}, the API {v}",
            shown.get(k)
        );
    }

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    let out = browse(
        &format!("{base}/#token={token}"),
        &[&format!("--screenshot={}", shot.display())],
    );
    assert!(
        out.status.success() && shot.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("ETHGATE_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::copy(&shot, docs).expect("copy the screenshot");
    }
}
