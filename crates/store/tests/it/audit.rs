//! The audit trail and the daily-cap counters in a real store (SQLite, or PostgreSQL with
//! `ETHGATE_TEST_STORE=postgres`):
//! entries read back in order with who submitted what; once the `audit`
//! stream is registered each entry is also an outbox envelope; a spend
//! that would pass any cap changes nothing, and a refund gives back.

use ethgate_core::Envelope;
use ethgate_store::audit::AUDIT_STREAM;
use ethgate_store::scratch::Scratch;
use ethgate_store::{Action, AuditEntry, Outcome, Store};

/// A fresh store on the backend `ETHGATE_TEST_STORE` names.
async fn store() -> (Scratch, Store) {
    let scratch = Scratch::from_env().await;
    let store = Store::connect(scratch.url()).await.expect("store");
    (scratch, store)
}

fn entry(token: &str, action: Action, target: &str, outcome: Outcome) -> AuditEntry {
    AuditEntry {
        id: 0,
        at_ms: 0,
        token_id: Some(token.into()),
        label: format!("label-{token}"),
        action,
        target: target.into(),
        outcome,
        detail: "why".into(),
    }
}

#[tokio::test]
async fn entries_read_back_in_order_and_reach_the_outbox_once_routed() {
    let (_dir, s) = store().await;
    s.audit(&entry("a", Action::TxSubmit, "tx_1", Outcome::Refused))
        .await
        .expect("audit");
    s.audit(&entry("b", Action::TxSubmit, "tx_1", Outcome::Accepted))
        .await
        .expect("audit");
    s.ensure_stream(AUDIT_STREAM, 0).await.expect("stream");
    s.audit(&entry("c", Action::TokenRevoke, "tok_9", Outcome::Accepted))
        .await
        .expect("audit");
    let all = s.audit_since(0, 10).await.expect("read");
    assert_eq!(all.len(), 3);
    assert!(
        all.windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at_ms <= w[1].at_ms)
    );
    assert_eq!(all[2].action, Action::TokenRevoke);
    assert_eq!(s.audit_since(all[1].id, 10).await.expect("read").len(), 1);
    // The submitter of tx_1 is the token whose request was accepted.
    assert_eq!(
        s.audit_actor(Action::TxSubmit, "tx_1")
            .await
            .expect("actor"),
        Some("b".into())
    );
    // Only the entry written after the stream existed is in the outbox.
    let out = s.events_after(AUDIT_STREAM, 0, 10).await.expect("outbox");
    assert_eq!(out.len(), 1);
    let Envelope::Audit(a) = &out[0].envelope else {
        panic!("not an audit envelope: {:?}", out[0].envelope);
    };
    assert_eq!(
        (a.id.as_str(), a.label.as_str(), a.action, a.seq),
        (
            format!("audit:{}", all[2].id).as_str(),
            "label-c",
            Action::TokenRevoke,
            Some(1)
        )
    );
}

#[tokio::test]
async fn a_spend_past_any_cap_changes_nothing_and_a_refund_gives_back() {
    let (_dir, s) = store().await;
    let caps = [
        ("token:t".to_owned(), 100u128),
        ("account:a".to_owned(), 50u128),
    ];
    assert_eq!(s.spend(1, "anvil", &caps, 30).await.expect("spend"), Ok(()));
    // 60 > the account's 50: refused, and neither counter moved.
    assert_eq!(s.spend(1, "anvil", &caps, 30).await.expect("spend"), Err(1));
    assert_eq!(s.spend(1, "anvil", &caps, 20).await.expect("spend"), Ok(()));
    assert_eq!(s.spend(1, "anvil", &caps, 1).await.expect("spend"), Err(1));
    // Another day, another chain: fresh counters.
    assert_eq!(s.spend(2, "anvil", &caps, 50).await.expect("spend"), Ok(()));
    assert_eq!(s.spend(1, "other", &caps, 50).await.expect("spend"), Ok(()));
    let whos: Vec<String> = caps.iter().map(|(w, _)| w.clone()).collect();
    s.refund(1, "anvil", &whos, 20).await.expect("refund");
    assert_eq!(s.spend(1, "anvil", &caps, 20).await.expect("spend"), Ok(()));
    // The token's own cap binds first when it is the smaller.
    let tight = [("token:t".to_owned(), 60u128)];
    assert_eq!(
        s.spend(1, "anvil", &tight, 11).await.expect("spend"),
        Err(0)
    );
    // A cap too large to add to is refused, not wrapped.
    let huge = [("token:h".to_owned(), u128::MAX)];
    assert_eq!(
        s.spend(1, "anvil", &huge, u128::MAX).await.expect("spend"),
        Ok(())
    );
    assert_eq!(s.spend(1, "anvil", &huge, 1).await.expect("spend"), Err(0));
}
