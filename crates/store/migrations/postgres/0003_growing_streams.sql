-- Contracts a stream follows because its factory announced them: the
-- child's address and the block of the announcement. Written with the
-- range that announced them; a reorg below that block forgets them.
CREATE TABLE stream_children (
    stream  TEXT NOT NULL,
    address TEXT NOT NULL,
    block   BIGINT NOT NULL,
    PRIMARY KEY (stream, address)
);

-- The contracts a stream records: `next_block` NULL once a contract is
-- part of the stream's filter; a contract added to a stream that has
-- recorded is backfilled from `next_block` up to the stream's cursor
-- first, and joins the filter there.
CREATE TABLE stream_addresses (
    stream     TEXT NOT NULL,
    address    TEXT NOT NULL,
    next_block BIGINT,
    PRIMARY KEY (stream, address)
);
