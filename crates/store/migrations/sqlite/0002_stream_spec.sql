-- A fingerprint of what a stream records (chain, addresses, event
-- selectors, from_block). Changing it after recording began would leave
-- the new contracts' or events' history unread, so the syncer refuses.
ALTER TABLE streams ADD COLUMN spec_hash TEXT;
