-- Batches a sink gave up on (a webhook past its max age): kept as the JSON
-- array that was sent, listed by the API and redeliverable from it.
CREATE TABLE dead_letters (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    stream     TEXT NOT NULL,
    sink       TEXT NOT NULL,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    error      TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX dead_letters_sink ON dead_letters (sink, id);
