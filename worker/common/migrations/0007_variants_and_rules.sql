-- The feed rules (variants, sale windows, shipping country): the attributes Google, Meta and Naver
-- read for apparel and option products, the sale price's window, and the shop's target country.
-- Collect fills them from the mapping (targets of the same names); the feed reads them.
ALTER TABLE products
    ADD COLUMN color            text,
    ADD COLUMN size             text,
    ADD COLUMN gender           text,
    ADD COLUMN age_group        text,
    ADD COLUMN material         text,
    ADD COLUMN pattern          text,
    ADD COLUMN size_system      text,
    ADD COLUMN size_type        text,
    ADD COLUMN sale_price_start timestamptz,
    ADD COLUMN sale_price_end   timestamptz;

-- ISO 3166-1 alpha-2: where the shop's products are shipped (Google g:shipping, Meta shipping).
ALTER TABLE shops ADD COLUMN country char(2) CHECK (country ~ '^[A-Z]{2}$');

-- A task row also ends 'interrupted' (SIGTERM/SIGINT, recorded by the worker itself) or 'lost'
-- (its process died without a word: OOM kill, segfault; marked by the next attempt or by status).
ALTER TABLE task_runs DROP CONSTRAINT task_runs_status_check;
ALTER TABLE task_runs ADD CONSTRAINT task_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'lost'));
