-- Streams and their block cursor: the last block whose events are all
-- recorded. NULL means nothing recorded yet (start at from_block).
CREATE TABLE streams (
    name            TEXT PRIMARY KEY,
    chain_id        INTEGER NOT NULL,
    cursor_block    INTEGER,
    cursor_hash     TEXT,
    events_recorded INTEGER NOT NULL DEFAULT 0,
    reorgs          INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL
);

-- A sparse window of recorded blocks per stream (the cursor block and every
-- block that had events), walked back to find a fork point on reorg.
CREATE TABLE blocks (
    stream      TEXT NOT NULL,
    number      INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    parent_hash TEXT NOT NULL,
    timestamp   INTEGER NOT NULL,
    PRIMARY KEY (stream, number)
) WITHOUT ROWID;

-- The outbox: append-only, ordered by seq. A retraction is a new row with
-- removed = 1; the row it retracts gets retracted = 1 so it is not retracted
-- twice and may be recorded again if its block comes back.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    stream       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    id           TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    log_index    INTEGER NOT NULL,
    removed      INTEGER NOT NULL,
    retracted    INTEGER NOT NULL DEFAULT 0,
    payload      TEXT NOT NULL
);
CREATE INDEX outbox_stream_seq ON outbox (stream, seq);
-- At most one live (recorded, not retracted) copy of an event per stream.
CREATE UNIQUE INDEX outbox_live ON outbox (stream, block_number, id)
    WHERE removed = 0 AND retracted = 0;

-- API tokens: only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
