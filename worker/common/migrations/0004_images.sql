-- The images task: one row per (shop, source image URL), holding the URL's last outcome, its
-- conditional-GET validators and the processed image it produced, so that an unchanged URL is
-- revalidated (304) instead of downloaded, one URL shared by many products is fetched once, and a
-- transient failure is retried on later nights a bounded number of times.

CREATE TABLE images (
    shop_id        text NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    source_url     text NOT NULL,
    -- the URL's settled state: the outcome of the last attempt that got an answer ('pending'
    -- until one did); a transient failure never overwrites it (worker.images.process.Outcome)
    status         text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'ok', 'too_small', 'not_image', 'corrupt', 'bomb',
                          'too_large', 'blocked', 'http_status', 'bad_url', 'unreachable',
                          'timeout')),
    -- the last attempt's outcome, transient ones ('timeout', 'unreachable') and 'unchanged' too
    last_outcome   text CHECK (last_outcome IN ('ok', 'unchanged', 'too_small', 'not_image',
                          'corrupt', 'bomb', 'too_large', 'blocked', 'http_status', 'bad_url',
                          'unreachable', 'timeout')),
    -- consecutive transient failures (timeout, connection, 5xx/429 after retries); reset by an answer
    tries          integer NOT NULL DEFAULT 0 CHECK (tries >= 0),
    http_status    integer,
    -- validators of the last 200 response, sent back as If-None-Match / If-Modified-Since
    etag           text,
    last_modified  text,
    -- the source body last downloaded: identical bytes are not decoded again
    source_sha256  bytea,
    source_bytes   bigint,
    source_format  text,
    -- the processed image (kept through transient failures; cleared when the URL stops being one)
    output_key     text,
    output_url     text,
    width          integer,
    height         integer,
    fitness        jsonb,
    error          text,          -- the last failure's message (transient or not)
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    attempted_at   timestamptz,   -- the last attempt that changed something (a quiet 304 does not)
    fetched_at     timestamptz,   -- the last 200: when the body was last downloaded
    processed_at   timestamptz,   -- when output_key was last produced
    PRIMARY KEY (shop_id, source_url)
);

