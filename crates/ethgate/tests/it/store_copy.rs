//! `ethgate store copy` moves a stopped single-node deployment from its
//! SQLite file to PostgreSQL: the gateway then runs on the copy with what
//! it had (here, an API token made on SQLite answers on PostgreSQL); a
//! second copy into the now non-empty target is refused, naming why, and
//! a password in a URL never reaches the output.

use std::path::Path;
use std::process::{Command, Output};

use ethgate_store::scratch::{DEFAULT_PG, Scratch};

fn ethgate(dir: &Path, args: &[&str], store: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ethgate"))
        .args(args)
        .current_dir(dir)
        .env_remove("ETHGATE_CONFIG")
        .env("ETHGATE_STORE__URL", store)
        .output()
        .expect("ethgate runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn a_sqlite_deployment_moves_to_postgres_and_runs_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = format!("sqlite://{}/data/ethgate.db", dir.path().display());
    let made = ethgate(
        dir.path(),
        &["token", "create", "--scope", "admin", "--label", "moved"],
        &sqlite,
    );
    assert!(made.status.success(), "{}", text(&made));
    let pg = Scratch::postgres(DEFAULT_PG)
        .await
        .expect("PostgreSQL (scripts/services starts it)");

    let copied = ethgate(
        dir.path(),
        &["store", "copy", "--from", &sqlite, "--to", pg.url()],
        &sqlite,
    );
    assert!(copied.status.success(), "{}", text(&copied));
    let out = text(&copied);
    assert!(
        out.contains("api_tokens") && out.contains("copied"),
        "{out}"
    );

    let listed = ethgate(dir.path(), &["token", "list"], pg.url());
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(text(&listed).contains("moved"), "{}", text(&listed));

    // With a password in the target URL: refused (not empty), and the
    // password is nowhere in what was printed.
    let with_password = pg.url().replacen("postgres@", "postgres:hunter2secret@", 1);
    let again = ethgate(
        dir.path(),
        &["store", "copy", "--from", &sqlite, "--to", &with_password],
        &sqlite,
    );
    assert!(!again.status.success(), "a second copy is refused");
    let out = text(&again);
    assert!(out.contains("not empty"), "{out}");
    assert!(!out.contains("hunter2secret"), "{out}");
}
