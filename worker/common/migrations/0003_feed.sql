-- The feed: one row per published channel file. The publish gate reads the last published
-- manifest itself; this table keeps the history and the summary EP's watermark (data_as_of: the
-- oldest moment whose changes the published file may not contain).

CREATE TABLE feed_publications (
    id           bigserial PRIMARY KEY,
    shop_id      text NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    channel      text NOT NULL,
    run_id       text REFERENCES runs (id) ON DELETE SET NULL,
    task_run_id  bigint REFERENCES task_runs (id) ON DELETE SET NULL,
    key          text NOT NULL,
    rows         bigint NOT NULL CHECK (rows >= 0),
    rejected     bigint NOT NULL DEFAULT 0 CHECK (rejected >= 0),
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    sha256       text NOT NULL,
    unchanged    boolean NOT NULL DEFAULT false,
    data_as_of   timestamptz NOT NULL,
    published_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX feed_publications_shop_channel ON feed_publications (shop_id, channel, data_as_of);
