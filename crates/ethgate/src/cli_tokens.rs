//! `ethgate token …` and `ethgate audit`: API tokens and the audit trail,
//! straight from the store (the gateway need not run). Tokens are printed
//! once when created; lists never show a secret.

use anyhow::Context;
use clap::Subcommand;
use ethgate_store::{Action, AuditEntry, Outcome, Store};

use crate::config::Config;

/// `ethgate token`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once and only its hash is stored.
    Create {
        /// Scope to grant (events:read, tx:write, chain:read, admin); repeatable.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A `[[policies]]` name the token is held to (instead of scopes).
        #[arg(long)]
        policy: Option<String>,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime, e.g. `90d` or `12h`; none: until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens: id, label, policy or scopes, dates; never the secret.
    List,
    /// Revoke a token by id; every request path refuses it within a second.
    Revoke {
        /// The token's id (`tok_…`).
        id: String,
    },
}

fn cli_entry(action: Action, target: &str, detail: String) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: 0,
        token_id: None,
        label: "cli".into(),
        action,
        target: target.into(),
        outcome: Outcome::Accepted,
        detail,
    }
}

fn date(secs: Option<i64>) -> String {
    secs.and_then(|s| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(s).ok()?);
        Some(humantime::format_rfc3339_seconds(t).to_string())
    })
    .unwrap_or_else(|| "-".into())
}

/// Runs a token subcommand.
pub async fn token(cfg: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let open = || async {
        Store::connect(&cfg.store_url)
            .await
            .context("opening the store")
    };
    match command {
        TokenCommand::Create {
            scopes,
            policy,
            label,
            expires,
        } => {
            create(cfg, &scopes, policy.as_deref(), &label, expires.as_deref()).await?;
        }
        TokenCommand::List => {
            list(&open().await?).await?;
        }
        TokenCommand::Revoke { id } => {
            let store = open().await?;
            if !store.revoke_token(&id).await? {
                anyhow::bail!("no unrevoked token {id:?}");
            }
            store
                .audit(&cli_entry(Action::TokenRevoke, &id, String::new()))
                .await?;
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

/// `ethgate token create`: a token with scopes or a policy, stored by its
/// hash and audited; the secret is printed once, on stdout.
async fn create(
    cfg: &Config,
    scopes: &[String],
    policy: Option<&str>,
    label: &str,
    expires: Option<&str>,
) -> anyhow::Result<()> {
    let known = |p: &str| cfg.policies.iter().any(|x| x.name == p);
    let (row, secret) =
        ethgate_api::new_token_row(scopes, policy, known, label, expires).map_err(|e| {
            // The API's field names, as this command's flags.
            let flag = match e.field() {
                Some("scopes") => "--scope",
                Some("policy") => "--policy",
                Some("expires") => "--expires",
                _ => "--label",
            };
            anyhow::anyhow!("{flag}: {}", e.message())
        })?;
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    store.insert_token(&row).await?;
    let grant = match &row.policy {
        Some(p) => format!("policy {p}"),
        None => format!("scopes {}", row.scopes.join(" ")),
    };
    store
        .audit(&cli_entry(
            Action::TokenCreate,
            &row.id,
            format!("label {label:?}, {grant}"),
        ))
        .await?;
    eprintln!("created token {} with {grant}; it is shown once:", row.id);
    println!("{secret}");
    Ok(())
}

/// `ethgate token list`: every token, revoked ones included, as a table.
async fn list(store: &Store) -> anyhow::Result<()> {
    println!(
        "{:<18} {:<20} {:<24} {:<20} {:<20} {:<20} REVOKED",
        "ID", "LABEL", "GRANT", "CREATED", "LAST USED", "EXPIRES"
    );
    for t in store.list_tokens().await? {
        let grant = match &t.policy {
            Some(p) => format!("policy:{p}"),
            None => t.scopes.join(","),
        };
        println!(
            "{:<18} {:<20} {:<24} {:<20} {:<20} {:<20} {}",
            t.id,
            t.label,
            grant,
            date(Some(t.created_at)),
            date(t.last_used_at),
            date(t.expires_at),
            date(t.revoked_at)
        );
    }
    Ok(())
}

/// `ethgate audit`: the trail, oldest first, after an entry id.
pub async fn audit(cfg: &Config, after: i64, limit: u32) -> anyhow::Result<()> {
    let store = Store::connect(&cfg.store_url)
        .await
        .context("opening the store")?;
    for e in store.audit_since(after, limit).await? {
        let when = humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(e.at_ms.max(0) as u64),
        );
        println!(
            "{:>6} {when} {:<12} {:<13} {:<9} {} {}",
            e.id,
            e.label,
            e.action.as_str(),
            e.outcome.as_str(),
            e.target,
            e.detail
        );
    }
    Ok(())
}
