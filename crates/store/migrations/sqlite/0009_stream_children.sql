-- Contracts a stream follows because its factory announced them: the
-- child's address and the block of the announcement. Written with the
-- range that announced them; a reorg below that block forgets them.
CREATE TABLE stream_children (
    stream  TEXT NOT NULL,
    address TEXT NOT NULL,
    block   INTEGER NOT NULL,
    PRIMARY KEY (stream, address)
);
