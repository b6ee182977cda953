//! `ethgate-bench`: ethgate's benchmarks, kept out of the `ethgate` binary
//! so that it links no test support, broker client or scratch files of
//! theirs. Each benchmark runs ethgate beside a raw client doing the same
//! work in the same run and prints both and their ratio; those that run
//! the gateway as a process launch the `ethgate` binary built beside this
//! one (or `ETHGATE_BIN`).

mod delivery;
mod e2e;
mod follow;
mod store;
mod sync;
mod tx;
mod tx_raw;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// The same allocator as the `ethgate` binary, so that what runs in this
/// process (the API, the dispatcher) allocates as it does in production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ethgate's benchmarks: figures and their ratio to a raw client.
#[derive(Parser)]
#[command(name = "ethgate-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Build an anvil chain with many logs, then compare raw eth_getLogs
    /// throughput with ethgate's ingest into the outbox.
    Sync {
        /// Logs to emit.
        #[arg(long, default_value_t = 100_000)]
        logs: u64,
        /// Logs per transaction.
        #[arg(long, default_value_t = 500)]
        per_tx: u64,
    },
    /// Deliver the same envelopes with a raw client and with ethgate, to
    /// the local RabbitMQ and to a local webhook receiver.
    Delivery {
        /// Messages to RabbitMQ.
        #[arg(long, default_value_t = 30_000)]
        amqp: u64,
        /// POSTs to the webhook receiver.
        #[arg(long, default_value_t = 3_000)]
        webhook: u64,
    },
    /// The same ingest and transactions on SQLite and on PostgreSQL in
    /// one run, then transactions through 1, 2 and 3 replicas sharing
    /// PostgreSQL.
    Store(store::Options),
    /// RPC calls per new block and CPU while 1, 10 and 100 streams follow
    /// one chain's tip, then many chains × many streams in one process.
    Follow(follow::Options),
    /// A fresh chain's logs to a consumer's queue through `ethgate serve`
    /// (launch to last message), beside a raw client's broker rate.
    E2e(e2e::Options),
    /// Send the same contract calls with a raw signer and through
    /// ethgate's API, over 1 and 8 accounts, on anvil.
    Tx {
        /// Transactions per run. A run should span many blocks: each
        /// side's time ends at the block its last call makes, so a run
        /// two blocks long (2,000 here) measures which block that was
        /// more than throughput.
        #[arg(long, default_value_t = 10_000)]
        txs: usize,
        /// Runs of each side per account count; medians are reported
        /// (single runs vary with block timing and the shared cores).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Requests each side keeps in flight (API requests for ethgate,
        /// sends for the raw sender). API latency is mostly queueing at
        /// high values: mean latency ≈ in-flight ÷ accepted rate.
        #[arg(long, default_value_t = 64)]
        in_flight: usize,
        /// After the throughput rounds, one more ethgate run per account
        /// count with requests sent at this steady rate (requests/s, open
        /// loop) for the API's latency at that load rather than at
        /// saturation; 0 skips it.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Milliseconds between blocks. anvil copies a whole block to
        /// answer one receipt, so its receipt cost grows with the block
        /// size; shorter blocks show how much of the gap that is.
        #[arg(long, default_value_t = 200)]
        block_ms: u64,
    },
}

/// The `ethgate` binary the benchmarks launch: `ETHGATE_BIN`, else the
/// one built beside this binary (`cargo build -p ethgate -p ethgate-bench`).
pub fn ethgate_bin() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("ETHGATE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let this = std::env::current_exe().context("this binary's path")?;
    let bin = this.with_file_name("ethgate");
    anyhow::ensure!(
        bin.exists(),
        "no ethgate binary beside {} (build it with `cargo build --release -p ethgate`, or set ETHGATE_BIN)",
        this.display()
    );
    Ok(bin)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("ETHGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Sync { logs, per_tx } => sync::sync(logs, per_tx).await,
        BenchCommand::Store(options) => store::store(options).await,
        BenchCommand::Follow(options) => follow::follow(options).await,
        BenchCommand::E2e(options) => e2e::e2e(options).await,
        BenchCommand::Delivery { amqp, webhook } => delivery::delivery(amqp, webhook).await,
        BenchCommand::Tx {
            txs,
            rounds,
            in_flight,
            rate,
            block_ms,
        } => {
            tx::tx(tx::Options {
                txs,
                rounds,
                in_flight,
                rate,
                block_ms,
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, run};

    #[test]
    fn every_benchmark_parses_its_defaults() {
        for name in ["sync", "delivery", "tx", "store", "follow", "e2e"] {
            let cli = Cli::try_parse_from(["ethgate-bench", name]);
            assert!(cli.is_ok(), "{name}: {:?}", cli.err());
        }
    }

    #[tokio::test]
    async fn a_bad_block_interval_is_refused_before_any_node_starts() {
        let cli = Cli::try_parse_from(["ethgate-bench", "tx", "--block-ms", "5"]).expect("parses");
        let err = run(cli.command).await.expect_err("refused");
        assert!(format!("{err:#}").contains("--block-ms"), "{err:#}");
    }
}
