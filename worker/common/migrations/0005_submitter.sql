-- The submitter: what made each run, and one nightly run per night, so that a repeated EventBridge
-- delivery or a second `catalog-submit submit` finds the night's run instead of planning another.
-- Reruns, retries and local runs are deliberate and may be many.
ALTER TABLE runs ADD COLUMN kind text NOT NULL DEFAULT 'nightly'
    CHECK (kind IN ('nightly', 'rerun', 'retry', 'local'));
CREATE UNIQUE INDEX runs_one_nightly_per_date ON runs (run_date) WHERE kind = 'nightly';
