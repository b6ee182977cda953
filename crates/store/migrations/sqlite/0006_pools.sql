-- Operational account pools: who is in a pool (and since which rotation),
-- rotations in progress, and the top-ups the balance watcher sent.

CREATE TABLE pool_members (
    pool       TEXT    NOT NULL,
    address    TEXT    NOT NULL,            -- lower-case hex
    keystore   TEXT    NOT NULL DEFAULT '', -- file in the pool's keystore_dir; '' = an [[accounts]] entry
    state      TEXT    NOT NULL,            -- new | active | retiring | retired
    rotation   TEXT,                        -- the rotation that created it
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (pool, address)
);

CREATE TABLE rotations (
    id         TEXT    PRIMARY KEY,
    pool       TEXT    NOT NULL,
    step       TEXT    NOT NULL,            -- keys | funding | registering | switching | draining | sweeping | done
    old        TEXT    NOT NULL,            -- JSON array of addresses
    attempt    INTEGER NOT NULL DEFAULT 0,  -- bumped when an operator retries a failed step
    error      TEXT,
    request_key TEXT UNIQUE,                -- the caller's idempotency key, if it gave one
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- At most one unfinished rotation per pool.
CREATE UNIQUE INDEX rotations_open ON rotations (pool) WHERE step <> 'done';

CREATE TABLE top_ups (
    tx_id      TEXT    PRIMARY KEY,
    pool       TEXT    NOT NULL,
    address    TEXT    NOT NULL,
    amount     TEXT    NOT NULL,            -- wei, decimal
    day        INTEGER NOT NULL,            -- UTC day number (unix seconds / 86400)
    created_at INTEGER NOT NULL
);
CREATE INDEX top_ups_by_day ON top_ups (pool, day);
