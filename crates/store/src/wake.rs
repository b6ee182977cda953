//! Wake-ups across replicas. A process learns of its own commits through
//! the store's change counter; on PostgreSQL, other replicas' commits
//! arrive as `NOTIFY ethgate` messages: `outbox` when envelopes were
//! committed (long-polls and dispatchers wake), `tx:CHAIN_ID:ADDRESS` when
//! a request was accepted for an account (its sender wakes, wherever it
//! runs). A listener task turns them into the same local signals.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast, watch};

/// The channel every replica listens on.
pub(crate) const CHANNEL: &str = "ethgate";

/// A request was accepted for an account: its sender should look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxWake {
    /// This account, on this chain.
    Account {
        /// Chain id.
        chain_id: u64,
        /// Lower-case hex address.
        sender: String,
    },
    /// The listener reconnected and may have missed some: every sender.
    All,
}

/// The message an accepted request's commit sends.
pub(crate) fn tx_payload(chain_id: u64, sender: &str) -> String {
    format!("tx:{chain_id}:{sender}")
}

fn parse(payload: &str) -> Option<TxWake> {
    let rest = payload.strip_prefix("tx:")?;
    let (chain, sender) = rest.split_once(':')?;
    Some(TxWake::Account {
        chain_id: chain.parse().ok()?,
        sender: sender.to_owned(),
    })
}

/// Listens for other replicas' commits until the pool closes.
pub(crate) async fn listen(
    pool: PgPool,
    changes: watch::Sender<u64>,
    txs: broadcast::Sender<TxWake>,
) {
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' commits; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything may have been missed while not listening.
        changes.send_modify(|n| *n += 1);
        let _ = txs.send(TxWake::All);
        // `None` or an error: the connection dropped; listen again.
        while let Ok(Some(n)) = listener.try_recv().await {
            match n.payload() {
                "outbox" => changes.send_modify(|n| *n += 1),
                p => {
                    if let Some(w) = parse(p) {
                        let _ = txs.send(w);
                    }
                }
            }
        }
    }
}

/// Tells other replicas that envelopes were committed, coalescing a burst
/// of commits into one message.
pub(crate) async fn announce(pool: PgPool, pending: Arc<Notify>) {
    loop {
        pending.notified().await;
        if pool.is_closed() {
            return;
        }
        let sent = sqlx::query("SELECT pg_notify($1, 'outbox')")
            .bind(CHANNEL)
            .execute(&pool)
            .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not announce a commit");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_payloads_read_back_and_others_are_ignored() {
        let p = tx_payload(31337, "0xab");
        assert_eq!(
            parse(&p),
            Some(TxWake::Account {
                chain_id: 31337,
                sender: "0xab".into()
            })
        );
        assert_eq!(parse("outbox"), None);
        assert_eq!(parse("tx:x:0xab"), None);
        assert_eq!(parse("tx:1"), None);
    }
}
