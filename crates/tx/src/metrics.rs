//! Metric names of the transaction manager, defined once.

/// Counter: nonces taken, per chain.
pub const NONCES: &str = "ethgate_tx_nonces_taken_total";
/// Counter: broadcasts (first sends and re-broadcasts), per chain.
pub const BROADCASTS: &str = "ethgate_tx_broadcasts_total";
/// Counter: replacements signed, per chain and kind (`bump`, `noop`).
pub const REPLACEMENTS: &str = "ethgate_tx_replacements_total";
/// Counter: status changes, per chain and status.
pub const STATUS: &str = "ethgate_tx_status_total";
/// Counter: ticks that found a transaction held at its fee cap — the alert.
pub const CAPPED: &str = "ethgate_tx_fee_capped_total";
/// Counter: an account's next nonce found stalled at the node (sent, not
/// held as executable) and re-sent or replaced, per chain. A node that
/// keeps doing this parks or loses transactions.
pub const STALLS: &str = "ethgate_tx_stalls_total";
/// Counter: requests accepted, per chain.
pub const ACCEPTED: &str = "ethgate_tx_requests_total";
