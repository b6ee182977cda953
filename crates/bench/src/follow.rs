//! `ethgate bench follow`: what following the tip costs. First 1, 10 and
//! 100 streams on one anvil with 1-second blocks, behind a counting proxy:
//! RPC calls per new block by method and the process's CPU, with the
//! ratio to one stream measured in the same run. Then many chains × many
//! streams in one process: CPU and RSS.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy_primitives::Address;
use anyhow::Context;
use ethgate_testkit::{Anvil, Proxy};

use crate::tx::cpu_seconds;

/// The benchmark's options.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Stream counts measured on one chain, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub streams: Vec<usize>,
    /// Seconds measured per stream count, after the warm-up.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Chains in the many-chains run (0 skips it).
    #[arg(long, default_value_t = 10)]
    pub chains: usize,
    /// Streams per chain in the many-chains run.
    #[arg(long, default_value_t = 100)]
    pub per_chain: usize,
}

const EVENT: &str = "event Transfer(address indexed from, address indexed to, uint256 value)";

/// A chain with 1-second blocks and a contract that emits a few logs in
/// every block, so the tail is never empty.
struct Chain {
    anvil: Anvil,
    contract: Address,
    load: tokio::task::JoinHandle<()>,
}

impl Chain {
    async fn start(chain_id: u64) -> Chain {
        let anvil = Anvil::start(&["--chain-id", &chain_id.to_string()]).await;
        let contract = anvil.deploy_event_source().await;
        let _: serde_json::Value = anvil
            .rpc("evm_setIntervalMining", serde_json::json!([1]))
            .await;
        let url = anvil.url.clone();
        let load = tokio::spawn(async move {
            let client = reqwest::Client::new();
            for i in 0u64.. {
                let tx = serde_json::json!({"from": ethgate_testkit::anvil::DEV_ACCOUNT, "to": contract,
                    "data": burst(5, i * 5), "gas": "0x1c9c380"});
                let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "eth_sendTransaction", "params": [tx]});
                let _ = client.post(&url).json(&body).send().await;
                tokio::time::sleep(Duration::from_millis(1_000)).await;
            }
        });
        Chain {
            anvil,
            contract,
            load,
        }
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.load.abort();
    }
}

/// Call data of the event source's `burst(count, first)`.
fn burst(count: u64, first: u64) -> String {
    let mut data = alloy_primitives::keccak256("burst(uint256,uint256)")[..4].to_vec();
    for word in [count, first] {
        data.extend_from_slice(&alloy_primitives::U256::from(word).to_be_bytes::<32>());
    }
    format!("0x{}", alloy_primitives::hex::encode(data))
}

/// The config of `chains` (name, chain id, rpc url, stream addresses).
fn config(store: &str, chains: &[(String, u64, String, Vec<Address>)]) -> String {
    let mut out = format!("[store]\nurl = \"{store}\"\n");
    for (name, id, rpc, addresses) in chains {
        out.push_str(&format!(
            "\n[[chains]]\nname = \"{name}\"\nchain_id = {id}\nrpc = [\"{rpc}\"]\npoll_interval = \"1s\"\n"
        ));
        for (i, a) in addresses.iter().enumerate() {
            out.push_str(&format!(
                "\n[[streams]]\nname = \"{name}-{i}\"\nchain = \"{name}\"\naddresses = [\"{a:#x}\"]\nevents = [\"{EVENT}\"]\nconfirmations = 0\n"
            ));
        }
    }
    out
}

/// Stream addresses: the chain's busy contract first, then quiet ones.
fn addresses(contract: Address, n: usize) -> Vec<Address> {
    let mut out = vec![contract];
    out.extend((1..n).map(|i| Address::left_padding_from(&(i as u64 + 0x1000).to_be_bytes())));
    out
}

/// `ethgate serve` on `config`, without the API's port clashing.
fn serve(dir: &std::path::Path, config: &str) -> anyhow::Result<tokio::process::Child> {
    std::fs::write(dir.join("ethgate.toml"), config)?;
    let port = ethgate_testkit::free_port();
    Ok(tokio::process::Command::new(crate::ethgate_bin()?)
        .arg("serve")
        .current_dir(dir)
        .env("ETHGATE_LOG", "warn")
        .env("ETHGATE_API__LISTEN", format!("127.0.0.1:{port}"))
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?)
}

/// Resident and peak resident memory of a process, in MB.
fn rss_mb(pid: Option<u32>) -> (f64, f64) {
    let mb = |field| {
        pid.and_then(|p| crate::sync::status_kb(p, field))
            .unwrap_or(0) as f64
            / 1024.0
    };
    (mb("VmRSS:"), mb("VmHWM:"))
}

/// One stream count's figures: calls per new block by method, and CPU
/// seconds per second.
struct Tail {
    per_block: BTreeMap<String, f64>,
    cpu: f64,
    blocks: u64,
}

async fn tail(streams: usize, seconds: u64) -> anyhow::Result<Tail> {
    let chain = Chain::start(31337).await;
    let proxy = Proxy::start(&chain.anvil.url).await;
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let cfg = config(
        &store,
        &[(
            "anvil".into(),
            31337,
            proxy.url.clone(),
            addresses(chain.contract, streams),
        )],
    );
    let child = serve(dir.path(), &cfg)?;
    // Every stream has caught up with the tip before the clock starts.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pid = child.id();
    let (calls0, cpu0, head0) = (
        proxy.method_counts(),
        cpu_seconds(pid),
        chain.anvil.head().await,
    );
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (calls1, cpu1, head1) = (
        proxy.method_counts(),
        cpu_seconds(pid),
        chain.anvil.head().await,
    );
    let blocks = head1.saturating_sub(head0).max(1);
    let per_block = calls1
        .iter()
        .map(|(m, n)| {
            let d = n - calls0.get(m).copied().unwrap_or(0);
            (m.clone(), d as f64 / blocks as f64)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    Ok(Tail {
        per_block,
        cpu: (cpu1 - cpu0) / started.elapsed().as_secs_f64(),
        blocks,
    })
}

/// Runs the benchmark and prints its figures.
pub async fn follow(o: Options) -> anyhow::Result<()> {
    println!(
        "following the tip on one anvil (1-second blocks, 5 logs per block), {} s per count:",
        o.seconds
    );
    let mut base: Option<f64> = None;
    for &n in &o.streams {
        let t = tail(n, o.seconds)
            .await
            .with_context(|| format!("{n} streams"))?;
        let total: f64 = t.per_block.values().sum();
        let one = *base.get_or_insert(total);
        let methods: Vec<String> = t
            .per_block
            .iter()
            .map(|(m, v)| format!("{m} {v:.1}"))
            .collect();
        println!(
            "  {n:>4} stream(s): {total:>6.1} calls per block ({:.2}× of {} stream(s)), CPU {:.1}% over {} blocks; {}",
            total / one,
            o.streams[0],
            t.cpu * 100.0,
            t.blocks,
            methods.join(", ")
        );
    }
    if o.chains > 0 {
        many(&o).await?;
    }
    Ok(())
}

/// Many chains × many streams in one process: CPU and memory.
async fn many(o: &Options) -> anyhow::Result<()> {
    println!(
        "{} chains × {} streams in one process (1-second blocks):",
        o.chains, o.per_chain
    );
    let mut chains = Vec::new();
    for i in 0..o.chains {
        chains.push(Chain::start(31337 + i as u64).await);
    }
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("store.db").display());
    let specs: Vec<_> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("c{i}"),
                31337 + i as u64,
                c.anvil.url.clone(),
                addresses(c.contract, o.per_chain),
            )
        })
        .collect();
    let child = serve(dir.path(), &config(&store, &specs))?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let pid = child.id();
    let cpu0 = cpu_seconds(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds.max(10) * 2)).await;
    let cpu = (cpu_seconds(pid) - cpu0) / started.elapsed().as_secs_f64();
    let (rss, peak) = rss_mb(pid);
    let stores = ethgate_store::Store::connect(&store).await?;
    let mut behind = 0;
    for ((name, _, _, addresses), chain) in specs.iter().zip(&chains) {
        let head = chain.anvil.head().await;
        for i in 0..addresses.len() {
            let cursor = stores
                .stream(&format!("{name}-{i}"))
                .await?
                .and_then(|r| r.cursor);
            if cursor.is_none_or(|c| c + 5 < head) {
                behind += 1;
            }
        }
    }
    println!(
        "  CPU {:.1}% of one core (target < 100%), RSS {rss:.0} MB (peak {peak:.0} MB; target < 300 MB); streams more than 5 blocks behind: {behind} of {}",
        cpu * 100.0,
        o.chains * o.per_chain
    );
    Ok(())
}
