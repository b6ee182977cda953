//! `ethgate`: the Ethereum gateway's one binary. It reads `ethgate.toml`
//! (or runs on embedded defaults), then serves, checks its config, manages
//! API tokens and keystores, shows stream status, sends transactions
//! through the API or runs a bounded backfill.

mod cli_accounts;
mod cli_call;
mod cli_chaos;
mod cli_keys_tx;
mod cli_store;
mod cli_tokens;
mod cluster;
mod commands;
mod config;
#[cfg(test)]
mod doc_pages;
#[cfg(test)]
mod docs;
mod serve;
mod telemetry;
mod work;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the ingest path allocates and frees many small buffers per
/// log, where glibc's allocator spent about a sixth of the CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Ethereum gateway: contract events, reorg-exact, into a durable outbox.
#[derive(Parser)]
#[command(name = "ethgate", version, about, long_about = None)]
struct Cli {
    /// Config file; default ./ethgate.toml if present, else embedded defaults.
    #[arg(long, short, global = true, env = "ETHGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: every stream's syncer and the HTTP API.
    Serve,
    /// Work with the config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage API tokens: create (with a policy or scopes), list, revoke.
    Token {
        #[command(subcommand)]
        command: cli_tokens::TokenCommand,
    },
    /// Print the audit trail: who did what, when, and how it ended.
    Audit {
        /// Show entries after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Most entries to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Show every stream's cursor, head, lag and counts.
    Streams,
    /// Show every sink's cursor, lag and counts; or rewind one.
    Sinks {
        #[command(subcommand)]
        command: Option<SinksCommand>,
    },
    /// Backfill one stream up to a block with a progress bar, then exit.
    Sync {
        /// Stream name.
        #[arg(long)]
        stream: String,
        /// Last block to record.
        #[arg(long)]
        to: u64,
    },
    /// Move a stopped deployment's store: `store copy --from URL --to URL`
    /// (no config needed).
    Store {
        #[command(subcommand)]
        command: cli_store::StoreCommand,
    },
    /// Keystore files: create, import, list (no config needed).
    Keys {
        #[command(subcommand)]
        command: cli_keys_tx::KeysCommand,
    },
    /// Operational accounts and pools through the running gateway's API
    /// (token from ETHGATE_TOKEN): list, rotate.
    Accounts {
        /// API base URL; default http://<api.listen>.
        #[arg(long)]
        api: Option<String>,
        #[command(subcommand)]
        command: cli_accounts::AccountsCommand,
    },
    /// Transactions through the running gateway's API (token from
    /// ETHGATE_TOKEN).
    Tx {
        /// API base URL; default http://<api.listen>.
        #[arg(long)]
        api: Option<String>,
        #[command(subcommand)]
        command: cli_keys_tx::TxCommand,
    },
    /// Read contract state through the running gateway (token from
    /// ETHGATE_TOKEN, scope chain:read).
    Call(cli_call::CallArgs),
    /// A JSON-RPC proxy in front of a node that answers like the
    /// endpoints users really have: lagging load-balanced nodes, errors
    /// and timeouts, dropped sends, a stale head, a forgotten pool.
    ChaosProxy(cli_chaos::ChaosArgs),
}

#[derive(Subcommand)]
enum SinksCommand {
    /// Move a sink's cursor back so it receives envelopes again.
    Rewind {
        /// Stream name.
        #[arg(long)]
        stream: String,
        /// Sink name.
        #[arg(long)]
        sink: String,
        /// Redeliver everything after this seq.
        #[arg(long, conflicts_with = "block", required_unless_present = "block")]
        seq: Option<u64>,
        /// Redeliver from this block on.
        #[arg(long)]
        block: Option<u64>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config; print every problem with its key and line.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log_format);
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
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Keys { command } => return report(cli_keys_tx::keys(command)),
        Command::Store { command } => return report(cli_store::store(command).await),
        Command::ChaosProxy(args) => return report(cli_chaos::chaos_proxy(args).await),
        _ => {}
    }
    let cfg = match config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "error: the configuration has {} problem(s); nothing was started",
                e.issues.len()
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => serve::serve(cfg).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => commands::config_check(&cfg),
        Command::Token { command } => cli_tokens::token(&cfg, command).await,
        Command::Audit { after, limit } => cli_tokens::audit(&cfg, after, limit).await,
        Command::Streams => commands::streams(&cfg).await,
        Command::Sinks { command: None } => commands::sinks(&cfg).await,
        Command::Sinks {
            command:
                Some(SinksCommand::Rewind {
                    stream,
                    sink,
                    seq,
                    block,
                }),
        } => commands::sinks_rewind(&cfg, &stream, &sink, seq, block).await,
        Command::Sync { stream, to } => commands::sync(&cfg, &stream, to).await,
        Command::Tx { api, command } => cli_keys_tx::tx(&cfg, api.as_deref(), command).await,
        Command::Call(args) => cli_call::call(&cfg, args).await,
        Command::Accounts { api, command } => {
            cli_accounts::accounts(&cfg, api.as_deref(), command).await
        }
        Command::Keys { .. } | Command::Store { .. } | Command::ChaosProxy(_) => Ok(()),
    };
    report(result)
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
