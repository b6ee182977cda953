-- Work units (a stream's syncer, a route's dispatcher, an account's
-- sender, the pools' watcher) each run on one replica at a time: the
-- holder of its lease row. `epoch` grows with every change of holder; a
-- unit's writes check it in their own transaction (fencing), so a holder
-- that lost the lease while paused cannot write. '' holds nothing.
CREATE TABLE leases (
    unit       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- The replicas sharing the store: each heartbeats its row; rows unseen
-- for a lease's lifetime are gone.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    api        TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    seen_ms    BIGINT NOT NULL
);
