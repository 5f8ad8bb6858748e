-- What a reject did to its record: 'rejected' (collect: the row was not loaded), 'excluded' (feed:
-- the item was left out of one channel), 'dropped' (feed: one attribute was left out of an item
-- that was published). The feed's per-item diagnostics, and status --reasons, read it.
ALTER TABLE rejects ADD COLUMN outcome text NOT NULL DEFAULT 'rejected'
    CHECK (outcome IN ('rejected', 'excluded', 'dropped'));
CREATE INDEX rejects_run_shop ON rejects (run_id, shop_id, task);
