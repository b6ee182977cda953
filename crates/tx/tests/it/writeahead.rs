//! Write-ahead for replacements: a bump is broadcast only once the store
//! has recorded it. Against a real anvil (through a proxy that notes every
//! signed transaction sent) and the real SQLite store, with a trigger in
//! the database that refuses every attempt after a request's first: the
//! due bump cannot be recorded, so nothing but the first attempt may reach
//! the node; once the trigger is gone the bump is recorded, broadcast and
//! mined.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fixture;
use fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_the_store_cannot_record_is_never_broadcast() {
    let f = fixture_proxied(Mining::Off, 1, fast()).await;
    let proxy = f.proxy.as_ref().expect("proxied");
    let db = sqlx::SqlitePool::connect(&f.db_url()).await.expect("db");
    sqlx::query(
        "CREATE TRIGGER refuse_replacements BEFORE INSERT ON tx_attempts \
         WHEN EXISTS (SELECT 1 FROM tx_attempts a WHERE a.tx_id = NEW.tx_id) \
         BEGIN SELECT RAISE(ABORT, 'replacements refused'); END",
    )
    .execute(&db)
    .await
    .expect("trigger");
    let from = format!("{:#x}", f.accounts[0]);
    let id = submit(&f, &keyed(&f, &from, "held")).await;
    let first = &until_status(&f, std::slice::from_ref(&id), "pending", 30).await[0];
    let first_hash = first["attempts"][0]["hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    // The market moves far past the attempt: a bump is due after
    // `bump_after` (3 s here), and again at every tick after that.
    price_out(&f, first).await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let held = &serde_json::to_value(f.manager.get(&id).await.expect("get").expect("exists"))
        .expect("json");
    assert_eq!(
        held["attempts"].as_array().map(Vec::len),
        Some(1),
        "no replacement recorded: {held}"
    );
    let sent = proxy.sent();
    assert_eq!(
        sent,
        std::collections::HashSet::from([first_hash.clone()]),
        "only the first attempt (and its re-broadcasts) reached the node"
    );

    sqlx::query("DROP TRIGGER refuse_replacements")
        .execute(&db)
        .await
        .expect("drop");
    let _: Value = f.anvil.rpc("evm_setIntervalMining", json!([1])).await;
    let done = &until_status(&f, &[id], "confirmed", 60).await[0];
    let attempts = done["attempts"].as_array().expect("attempts");
    assert!(
        attempts.len() >= 2,
        "bumped once it could be recorded: {done}"
    );
    assert_eq!(done["hash"], attempts.last().expect("last")["hash"]);
    let mined = done["hash"].as_str().expect("hash");
    assert!(
        proxy.sent().contains(mined),
        "the bump went out once recorded"
    );
}
