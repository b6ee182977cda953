//! `ethgate keys …` (keystore files, no config needed) and `ethgate tx …`
//! (a client of the running gateway's HTTP API; the token comes from
//! `ETHGATE_TOKEN`, never from a flag, so it stays out of shell history).

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use ethgate_keys::keystore;

use crate::config::Config;

/// `ethgate keys`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a new random key in an encrypted keystore file.
    New {
        /// Directory for the file.
        #[arg(long, default_value = "keys")]
        dir: std::path::PathBuf,
        /// Environment variable holding the password.
        #[arg(long)]
        password_env: String,
    },
    /// Encrypt an existing private key into a keystore file.
    Import {
        /// Directory for the file.
        #[arg(long, default_value = "keys")]
        dir: std::path::PathBuf,
        /// Environment variable holding the hex private key.
        #[arg(long)]
        private_key_env: String,
        /// Environment variable holding the password.
        #[arg(long)]
        password_env: String,
    },
    /// List keystore files and the addresses they record.
    List {
        /// Directory to list.
        #[arg(long, default_value = "keys")]
        dir: std::path::PathBuf,
    },
}

fn env_secret(var: &str, what: &str) -> anyhow::Result<String> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .with_context(|| format!("--{what}: environment variable {var} is not set or empty"))
}

/// Runs a keys command.
pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::New { dir, password_env } => {
            let password = env_secret(&password_env, "password-env")?;
            let (address, file) = keystore::create(&dir, &password)?;
            println!("{address:#x} {}", file.display());
        }
        KeysCommand::Import {
            dir,
            private_key_env,
            password_env,
        } => {
            let password = env_secret(&password_env, "password-env")?;
            let key = env_secret(&private_key_env, "private-key-env")?;
            let (address, file) = keystore::import(&dir, &key, &private_key_env, &password)?;
            println!("{address:#x} {}", file.display());
        }
        KeysCommand::List { dir } => {
            for (file, address) in keystore::list(&dir)? {
                let address = address.map_or_else(
                    || "(address not recorded)".to_owned(),
                    |a| format!("{a:#x}"),
                );
                println!("{address} {}", file.display());
            }
        }
    }
    Ok(())
}

/// `ethgate tx`.
#[derive(Subcommand)]
pub enum TxCommand {
    /// Submit a request: a JSON body as `POST /v1/transactions` takes it.
    Send {
        /// The body, inline.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        json: Option<String>,
        /// The body, from a file.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Show a transaction with its attempts.
    Get {
        /// Transaction id.
        id: String,
    },
    /// List transactions, newest first.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this account.
        #[arg(long)]
        from: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Cancel a queued or pending transaction.
    Cancel {
        /// Transaction id.
        id: String,
    },
    /// Replace a pending transaction with higher fees, past its caps.
    Bump {
        /// Transaction id.
        id: String,
    },
}

/// Runs a tx command against the gateway at `api` (default: the config's
/// `api.listen`).
pub async fn tx(cfg: &Config, api: Option<&str>, cmd: TxCommand) -> anyhow::Result<()> {
    let base = api.map_or_else(|| format!("http://{}", cfg.listen), str::to_owned);
    let token = env_secret("ETHGATE_TOKEN", "token (ETHGATE_TOKEN)")?;
    let http = reqwest::Client::new();
    let req = match cmd {
        TxCommand::Send { json, file } => {
            let body = match (json, file) {
                (Some(j), _) => j,
                (None, Some(f)) => read(&f)?,
                (None, None) => anyhow::bail!("--json or --file is required"),
            };
            let value: serde_json::Value =
                serde_json::from_str(&body).context("the request body is not JSON")?;
            http.post(format!("{base}/v1/transactions")).json(&value)
        }
        TxCommand::Get { id } => http.get(format!("{base}/v1/transactions/{id}")),
        TxCommand::List {
            status,
            from,
            limit,
        } => {
            let mut url = reqwest::Url::parse(&format!("{base}/v1/transactions"))
                .with_context(|| format!("--api: {base:?} is not a URL"))?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &limit.to_string());
                if let Some(s) = &status {
                    q.append_pair("status", s);
                }
                if let Some(f) = &from {
                    q.append_pair("from", f);
                }
            }
            http.get(url)
        }
        TxCommand::Cancel { id } => http.post(format!("{base}/v1/transactions/{id}/cancel")),
        TxCommand::Bump { id } => http.post(format!("{base}/v1/transactions/{id}/bump")),
    };
    let resp = req.bearer_auth(token).send().await.with_context(|| {
        format!("cannot reach the gateway at {base} (is `ethgate serve` running?)")
    })?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    println!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    anyhow::ensure!(status.is_success(), "the gateway answered {status}");
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("--file: cannot read {}", path.display()))
}
