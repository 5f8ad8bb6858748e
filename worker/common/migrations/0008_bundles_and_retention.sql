-- Bundles: an array child may run several small shops one after another. run_shops keeps each
-- shop's position in the night (idx, in shop id order) and gains the array position that runs it
-- (child): RUN_ID + AWS_BATCH_JOB_ARRAY_INDEX (+ SHOP_INDEX_OFFSET) now name a child, and the child
-- runs every shop whose child it is, in idx order. Until now every shop was its own child.
ALTER TABLE run_shops ADD COLUMN child integer CHECK (child >= 0);
UPDATE run_shops SET child = idx;
ALTER TABLE run_shops ALTER COLUMN child SET NOT NULL;
CREATE INDEX run_shops_child ON run_shops (run_id, child);
-- How many array children the night's shops were packed into (NULL: one per shop, as before 0008).
ALTER TABLE runs ADD COLUMN child_count integer CHECK (child_count >= 0);

-- The next attempt and `catalog-submit status` look for rows still 'running' to mark them 'lost'.
CREATE INDEX task_runs_running ON task_runs (shop_id, task) WHERE status = 'running';
-- Retention (`catalog-submit prune`) deletes by age, in small batches.
CREATE INDEX task_runs_started ON task_runs (started_at);
CREATE INDEX rejects_created ON rejects (created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX feed_publications_task_run ON feed_publications (task_run_id);
