-- Transaction requests, their signed attempts, and each account's next
-- nonce. A nonce is taken (tx_accounts.next_nonce moves) in the same
-- transaction that records the request's first signed attempt, and a
-- request holds at most one nonce: no gap, no reuse, through any crash.
CREATE TABLE tx_requests (
    id              TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    body_hash       TEXT NOT NULL,
    chain_id        INTEGER NOT NULL,
    sender          TEXT NOT NULL,
    request         TEXT NOT NULL,      -- the validated request as JSON
    state           TEXT NOT NULL,      -- core::tx::TxState as JSON
    status          TEXT NOT NULL,      -- its status word, for queries
    nonce           INTEGER,
    block_number    INTEGER,
    error           TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX tx_requests_open ON tx_requests (chain_id, sender, status);
CREATE INDEX tx_requests_created ON tx_requests (created_at, id);
CREATE UNIQUE INDEX tx_requests_nonce ON tx_requests (chain_id, sender, nonce)
    WHERE nonce IS NOT NULL;

CREATE TABLE tx_attempts (
    tx_id            TEXT NOT NULL,
    n                INTEGER NOT NULL,
    nonce            INTEGER NOT NULL,
    hash             TEXT NOT NULL,
    raw              BLOB NOT NULL,
    noop             INTEGER NOT NULL,
    gas_limit        INTEGER NOT NULL,
    max_fee          TEXT NOT NULL,
    max_priority_fee TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tx_id, n)
);

CREATE TABLE tx_accounts (
    chain_id   INTEGER NOT NULL,
    address    TEXT NOT NULL,
    next_nonce INTEGER NOT NULL,
    PRIMARY KEY (chain_id, address)
);
