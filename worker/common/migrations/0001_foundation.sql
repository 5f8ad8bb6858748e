-- The foundation: shops, their products, each night's run and its frozen index → shop list,
-- per-task accounting and the rejected records with their reasons.

CREATE TABLE shops (
    id                   text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    name                 text NOT NULL,
    source_url           text NOT NULL,
    format               text NOT NULL CHECK (format IN ('json', 'jsonl', 'csv', 'xml')),
    format_options       jsonb NOT NULL DEFAULT '{}',
    mapping              jsonb NOT NULL DEFAULT '{}',
    channels             text[] NOT NULL DEFAULT '{}',
    currency             char(3) NOT NULL,
    active               boolean NOT NULL DEFAULT true,
    -- thresholds and switches: max_reject_share, max_shrink_share, max_feed_drop_share,
    -- image_square, apparel, image_max_edge
    options              jsonb NOT NULL DEFAULT '{}',
    -- validators of the last successful collect, for a conditional GET
    source_etag          text,
    source_last_modified text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    shop_id                 text NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    product_id              text NOT NULL,
    title                   text NOT NULL,
    description             text,
    link                    text NOT NULL,
    mobile_link             text,
    image_link              text,
    additional_image_links  text[] NOT NULL DEFAULT '{}',
    price                   numeric(20, 4) NOT NULL CHECK (price >= 0),
    sale_price              numeric(20, 4) CHECK (sale_price >= 0),
    currency                char(3) NOT NULL,
    availability            text NOT NULL DEFAULT 'in_stock'
        CHECK (availability IN ('in_stock', 'out_of_stock', 'preorder', 'backorder', 'discontinued')),
    availability_date       timestamptz,
    condition               text NOT NULL DEFAULT 'new'
        CHECK (condition IN ('new', 'refurbished', 'used')),
    brand                   text,
    gtin                    text,
    mpn                     text,
    item_group_id           text,
    product_type            text,
    google_product_category text,
    naver_category          text,
    shipping_cost           numeric(20, 4),
    extra                   jsonb NOT NULL DEFAULT '{}',
    content_hash            bytea NOT NULL,
    first_seen_at           timestamptz NOT NULL DEFAULT now(),
    changed_at              timestamptz NOT NULL DEFAULT now(),
    -- set when the product left the shop's snapshot (kept, not deleted, for the summary EP's D rows)
    gone_at                 timestamptz,
    -- written by the images task: the processed main image and its fitness per channel
    image_url               text,
    image_width             integer,
    image_height            integer,
    image_fitness           jsonb,
    additional_image_urls   text[],
    PRIMARY KEY (shop_id, product_id)
);
CREATE INDEX products_shop_changed ON products (shop_id, changed_at);

CREATE TABLE runs (
    id          text PRIMARY KEY,
    run_date    date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    shop_count  integer NOT NULL CHECK (shop_count >= 0),
    rerun_of    text REFERENCES runs (id),
    options     jsonb NOT NULL DEFAULT '{}',
    -- submitted job ids, per task and chunk, recorded as they are submitted
    jobs        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_date ON runs (run_date);

CREATE TABLE run_shops (
    run_id   text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx      integer NOT NULL CHECK (idx >= 0),
    shop_id  text NOT NULL REFERENCES shops (id),
    PRIMARY KEY (run_id, idx),
    UNIQUE (run_id, shop_id)
);

CREATE TABLE task_runs (
    id             bigserial PRIMARY KEY,
    run_id         text REFERENCES runs (id) ON DELETE CASCADE,
    shop_id        text NOT NULL,
    task           text NOT NULL CHECK (task IN ('collect', 'feed', 'images')),
    array_index    integer,
    job_id         text,
    attempt        integer NOT NULL DEFAULT 1,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    status         text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'succeeded', 'failed')),
    exit_code      integer,
    rows_in        bigint,
    rows_out       bigint,
    rows_rejected  bigint,
    bytes          bigint,
    duration_s     double precision,
    counts         jsonb NOT NULL DEFAULT '{}',
    error          text
);
CREATE INDEX task_runs_run ON task_runs (run_id, task, shop_id);
CREATE INDEX task_runs_shop ON task_runs (shop_id, task, started_at);

CREATE TABLE rejects (
    id           bigserial PRIMARY KEY,
    task_run_id  bigint REFERENCES task_runs (id) ON DELETE CASCADE,
    run_id       text,
    shop_id      text NOT NULL,
    task         text NOT NULL,
    channel      text,
    position     text,
    product_id   text,
    field        text,
    reason       text NOT NULL,
    excerpt      text,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejects_task_run ON rejects (task_run_id);
