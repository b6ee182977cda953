-- Each sink's position in each stream's outbox: the last seq the sink
-- acknowledged. A dispatcher advances it only after the ack, so a dead sink
-- loses nothing and a rewind replays from any point.
CREATE TABLE sink_cursors (
    stream     TEXT NOT NULL,
    sink       TEXT NOT NULL,
    seq        INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    failures   INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (stream, sink)
) WITHOUT ROWID;
