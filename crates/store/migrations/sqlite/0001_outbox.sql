-- Streams, their block cursor (the last block whose events are all
-- recorded; NULL before the first) and the next outbox sequence number.
CREATE TABLE streams (
    name            TEXT PRIMARY KEY,
    chain_id        INTEGER NOT NULL,
    cursor_block    INTEGER,
    cursor_hash     TEXT,
    next_seq        INTEGER NOT NULL DEFAULT 1,
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

-- The outbox, append-only, in segments: each row holds up to 1,000
-- consecutive envelopes of one stream as length-prefixed binary records
-- (see src/codec.rs; record i has seq first_seq + i), all additions or all
-- retractions. Envelopes of an addition segment are in block order, and a
-- reorg always retracts every live event above a block, so one watermark per
-- segment says which of its events are still live: those with
-- block_number <= live_through (NULL: all).
CREATE TABLE outbox (
    segment      INTEGER PRIMARY KEY,
    stream       TEXT NOT NULL,
    first_seq    INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    removed      INTEGER NOT NULL,
    min_block    INTEGER NOT NULL,
    max_block    INTEGER NOT NULL,
    live_through INTEGER,
    payload      BLOB NOT NULL
);
CREATE UNIQUE INDEX outbox_stream_seq ON outbox (stream, last_seq);

-- API tokens: only the SHA-256 of a token is stored.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
