-- The feed's line cache (worker/feed/linecache.py, docs/feed.md "The line cache"): each channel's
-- output for each product, reused on a night when nothing it depends on changed. A line holds when
-- the feed query's row for the product hashes to input_key (hash_record_extended of the whole row,
-- computed by the server), the build's time lies in [valid_from, valid_until) (NULL: unbounded; breakpoints at the
-- sale window and availability_date - 1 year) and the channel's fingerprint (the rule book's code,
-- Python and python-stdnum versions, the channel's options) is the one feed_line_sets holds for
-- the (shop, channel). line NULL: excluded or left out; notes: the rejects to replay, a JSON array
-- ('' when none). One row per live product per channel: see docs/infra.md for its size.
CREATE TABLE feed_line_sets (
    shop_id     text NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    channel     text NOT NULL,
    fingerprint text NOT NULL,
    PRIMARY KEY (shop_id, channel)
);

-- Keyed (shop, product, channel): the feed query looks lines up by product, and a product's delete
-- (a shop's, cascading) finds its lines through the same index.
CREATE TABLE feed_lines (
    shop_id     text NOT NULL,
    product_id  text NOT NULL,
    channel     text NOT NULL,
    input_key   bigint NOT NULL,
    valid_from  timestamptz,
    valid_until timestamptz,
    line        text,
    notes       text NOT NULL DEFAULT '',
    PRIMARY KEY (shop_id, product_id, channel),
    FOREIGN KEY (shop_id, product_id) REFERENCES products (shop_id, product_id) ON DELETE CASCADE
);
