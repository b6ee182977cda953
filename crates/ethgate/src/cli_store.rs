//! `ethgate store copy`: moves a stopped deployment's store to another —
//! SQLite to PostgreSQL, typically — with every table's rows, and prints
//! what it moved.

use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use ethgate_store::{Store, redacted_url};
use indicatif::{ProgressBar, ProgressStyle};

/// `ethgate store …`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy every table of a stopped deployment's store into an empty one
    /// (e.g. --from sqlite://./data/ethgate.db --to postgres://…).
    Copy {
        /// The source store's URL; every ethgate using it must be stopped.
        #[arg(long)]
        from: String,
        /// The target store's URL; created and migrated, and must be empty.
        #[arg(long)]
        to: String,
    },
}

/// Runs a store subcommand.
pub async fn store(command: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy { from, to } = command;
    let source = Store::connect(&from)
        .await
        .with_context(|| format!("--from: opening {}", redacted_url(&from)))?;
    let target = Store::connect(&to)
        .await
        .with_context(|| format!("--to: opening {}", redacted_url(&to)))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let started = Instant::now();
    let counts = ethgate_store::copy::copy(&source, &target, |table, rows| {
        bar.set_message(format!("{table}: {rows} rows"));
        bar.tick();
    })
    .await;
    bar.finish_and_clear();
    let counts = counts.context("copying the store")?;
    for (table, rows) in &counts {
        println!("  {table:<14} {rows:>10} rows");
    }
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    println!(
        "copied {total} rows from {} to {} in {:.1} s; point [store] url at the target",
        redacted_url(&from),
        redacted_url(&to),
        started.elapsed().as_secs_f64()
    );
    target.checkpoint().await?;
    Ok(())
}
