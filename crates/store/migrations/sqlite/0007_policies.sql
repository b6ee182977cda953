-- Tokens carry a policy, an expiry and a revocation; the audit trail
-- records who did what; spend counters hold policies' daily caps.
ALTER TABLE api_tokens ADD COLUMN policy TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    token_id TEXT,                 -- NULL for the CLI
    label    TEXT NOT NULL,
    action   TEXT NOT NULL,        -- api::audit::Action's wire name
    target   TEXT NOT NULL,
    outcome  TEXT NOT NULL,        -- accepted | refused | failed
    detail   TEXT NOT NULL
);
CREATE INDEX audit_target ON audit (target, action);

CREATE TABLE policy_spend (
    day   INTEGER NOT NULL,        -- days since the Unix epoch, UTC
    chain TEXT NOT NULL,
    who   TEXT NOT NULL,           -- token:<id> or account:<address>
    wei   TEXT NOT NULL,           -- decimal u128
    PRIMARY KEY (day, chain, who)
);
