"""The images task's database side: which URLs to attempt, each attempt's record, the product rows.

Everything that touches many rows is one set-based statement (the URL register, the product update),
and the work list is read in keyset pages, so that memory never depends on the shop's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worker.images.pipeline import Attempt, ImageJob, ImagesConfig
from worker.images.process import ChannelRule, Outcome

STORED = (Outcome.OK.value, Outcome.TOO_SMALL.value)

# The shop's live products' image URLs, main and additional (up to the channels' limit), once each.
_URLS = sql.SQL("""
    SELECT image_link AS url FROM products
     WHERE shop_id = %(shop)s AND gone_at IS NULL AND image_link IS NOT NULL
    UNION
    SELECT unnest(additional_image_links[1:%(additional)s]) FROM products
     WHERE shop_id = %(shop)s AND gone_at IS NULL
""")


def register_urls(conn: psycopg.Connection, shop_id: str, config: ImagesConfig) -> dict[str, int]:
    """Forget URLs no product uses any more, add the new ones; return how many of each."""
    params = {"shop": shop_id, "additional": config.max_additional, "max": config.max_url_length}
    forgotten = conn.execute(
        sql.SQL("""
        WITH urls AS ({urls})
        DELETE FROM images i
         WHERE i.shop_id = %(shop)s AND NOT EXISTS (SELECT 1 FROM urls WHERE urls.url = i.source_url)
        """).format(urls=_URLS),
        params,
    ).rowcount
    added = conn.execute(
        sql.SQL("""
        INSERT INTO images (shop_id, source_url)
        SELECT %(shop)s, url FROM ({urls}) urls
         WHERE url <> '' AND length(url) <= %(max)s
        ON CONFLICT DO NOTHING
        """).format(urls=_URLS),
        params,
    ).rowcount
    too_long_row = conn.execute(
        sql.SQL("SELECT count(*) FROM ({urls}) urls WHERE length(url) > %(max)s").format(urls=_URLS),
        params,
    ).fetchone()
    conn.commit()
    return {"urls_added": added, "urls_forgotten": forgotten,
            "urls_too_long": int(too_long_row[0]) if too_long_row else 0}


def iter_jobs(
    conn: psycopg.Connection,
    shop_id: str,
    config: ImagesConfig,
    *,
    not_attempted_since: datetime | None = None,
) -> Iterator[ImageJob]:
    """The URLs to attempt tonight, in keyset pages of ``page_size`` (constant memory).

    New URLs; URLs with a stored image and validators (a conditional GET, 304 when unchanged);
    URLs that failed transiently, for ``max_tries`` nights in a row; and, once every
    ``recheck_days``, stored URLs without validators and URLs that failed for good. With
    ``not_attempted_since`` (the start of tonight's first attempt), URLs an earlier attempt of the
    same night already tried are left out: a later attempt goes on where the last one stopped.
    """
    after = ""
    while True:
        rows = conn.execute(
            """
            SELECT source_url, status, tries, etag, last_modified, source_sha256,
                   output_key IS NOT NULL
              FROM images
             WHERE shop_id = %(shop)s AND source_url > %(after)s
               AND (%(since)s::timestamptz IS NULL OR attempted_at IS NULL
                    OR attempted_at < %(since)s::timestamptz)
               AND (
                    (status = 'pending' AND tries < %(max_tries)s)
                 OR (status IN ('ok', 'too_small') AND output_key IS NOT NULL
                     AND (etag IS NOT NULL OR last_modified IS NOT NULL))
                 OR (tries > 0 AND tries < %(max_tries)s)
                 OR coalesce(attempted_at, fetched_at, first_seen_at)
                        < now() - make_interval(days => %(recheck)s)
               )
             ORDER BY source_url
             LIMIT %(limit)s
            """,
            {"shop": shop_id, "after": after, "max_tries": config.max_tries,
             "recheck": config.recheck_days, "limit": config.page_size,
             "since": not_attempted_since},
        ).fetchall()
        conn.commit()
        if not rows:
            return
        for url, status, tries, etag, last_modified, sha, has_output in rows:
            yield ImageJob(url, status, tries, etag, last_modified,
                           bytes(sha) if sha is not None else None, bool(has_output))
        after = rows[-1][0]


def record_attempt(conn: psycopg.Connection, shop_id: str, attempt: Attempt) -> bool:
    """Write one attempt's outcome to its ``images`` row; False when there was nothing to write."""
    job, outcome = attempt.job, attempt.outcome
    key = {"shop": shop_id, "url": job.url}
    if outcome is Outcome.UNCHANGED and not attempt.downloaded:
        if job.tries == 0 and job.status in STORED:
            return False  # a quiet 304 on a settled URL: the row already says everything
        conn.execute(
            """
            UPDATE images SET tries = 0, last_outcome = 'unchanged', error = NULL,
                   status = CASE WHEN status = 'pending' THEN 'ok' ELSE status END,
                   etag = coalesce(%(etag)s, etag),
                   last_modified = coalesce(%(lm)s, last_modified), attempted_at = now()
             WHERE shop_id = %(shop)s AND source_url = %(url)s
            """,
            {**key, "etag": attempt.etag, "lm": attempt.last_modified},
        )
        return True
    if outcome is Outcome.UNCHANGED:
        conn.execute(
            """
            UPDATE images SET tries = 0, last_outcome = 'unchanged', error = NULL,
                   http_status = %(status)s, etag = %(etag)s, last_modified = %(lm)s,
                   attempted_at = now(), fetched_at = now()
             WHERE shop_id = %(shop)s AND source_url = %(url)s
            """,
            {**key, "status": attempt.http_status, "etag": attempt.etag,
             "lm": attempt.last_modified},
        )
        return True
    if attempt.transient:
        conn.execute(
            """
            UPDATE images SET tries = tries + 1, last_outcome = %(outcome)s,
                   http_status = %(status)s, error = %(error)s, attempted_at = now()
             WHERE shop_id = %(shop)s AND source_url = %(url)s
            """,
            {**key, "outcome": outcome.value, "status": attempt.http_status,
             "error": attempt.error},
        )
        return True
    # An answer: a processed image, or a definite refusal (which also clears any old output,
    # because the URL no longer gives an image we can use).
    conn.execute(
        """
        UPDATE images SET status = %(outcome)s, last_outcome = %(outcome)s, tries = 0,
               http_status = %(status)s, error = %(error)s,
               etag = %(etag)s, last_modified = %(lm)s,
               source_sha256 = %(sha)s, source_bytes = %(bytes)s, source_format = %(format)s,
               output_key = %(key)s, output_url = %(output_url)s,
               width = %(width)s, height = %(height)s, fitness = %(fitness)s,
               attempted_at = now(),
               fetched_at = CASE WHEN %(downloaded)s THEN now() ELSE fetched_at END,
               processed_at = CASE WHEN %(key)s::text IS NULL THEN NULL ELSE now() END
         WHERE shop_id = %(shop)s AND source_url = %(url)s
        """,
        {
            **key,
            "outcome": outcome.value,
            "status": attempt.http_status,
            "error": attempt.error,
            "etag": attempt.etag if outcome.stored else None,
            "lm": attempt.last_modified if outcome.stored else None,
            "sha": attempt.source_sha256 if outcome.stored else None,
            "bytes": attempt.source_bytes or None,
            "format": attempt.source_format,
            "key": attempt.output_key,
            "output_url": attempt.output_url,
            "width": attempt.width,
            "height": attempt.height,
            "fitness": Jsonb(attempt.fitness) if attempt.fitness is not None else None,
            "downloaded": attempt.downloaded,
        },
    )
    return True


def _fits(rule: ChannelRule) -> sql.Composable:
    parts = [
        sql.SQL("i.width >= {}").format(sql.Literal(rule.min_width)),
        sql.SQL("i.height >= {}").format(sql.Literal(rule.min_height)),
    ]
    if rule.max_width is not None:
        parts.append(sql.SQL("i.width <= {}").format(sql.Literal(rule.max_width)))
    if rule.max_height is not None:
        parts.append(sql.SQL("i.height <= {}").format(sql.Literal(rule.max_height)))
    return sql.SQL("(") + sql.SQL(" AND ").join(parts) + sql.SQL(")")


def update_products(
    conn: psycopg.Connection,
    shop_id: str,
    rules: Mapping[str, ChannelRule],
    channels: tuple[str, ...],
    config: ImagesConfig,
) -> int:
    """Point every live product at its processed images, in one statement; return rows changed.

    Fitness is computed here from the stored size and today's rules (not copied from the day the
    image was processed), so that a rule that tightens on a date (Google's 500 px) takes effect
    without reprocessing. Additional images are listed when they fit every channel of the shop.
    Rows that already say the same are not written.
    """
    fitness = sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, {}").format(sql.Literal(channel), _fits(rule))
            for channel, rule in rules.items()
        )
    )
    shop_rules = [rules[c] for c in channels if c in rules]
    fits_all = (
        sql.SQL(" AND ").join(_fits(rule) for rule in shop_rules) if shop_rules else sql.SQL("true")
    )
    query = sql.SQL(
        """
        WITH processed AS (
            SELECT i.source_url,
                   coalesce(%(base)s || i.output_key, i.output_url) AS output_url,
                   i.width, i.height,
                   {fitness} AS fitness, {fits_all} AS fits_all
              FROM images i
             WHERE i.shop_id = %(shop)s AND i.output_key IS NOT NULL
        ),
        wanted AS (
            SELECT p.product_id, m.output_url AS image_url, m.width, m.height, m.fitness,
                   (SELECT array_agg(a.output_url ORDER BY x.ord)
                      FROM unnest(p.additional_image_links[1:%(additional)s])
                           WITH ORDINALITY AS x(url, ord)
                      JOIN processed a ON a.source_url = x.url AND a.fits_all) AS additional
              FROM products p
              LEFT JOIN processed m ON m.source_url = p.image_link
             WHERE p.shop_id = %(shop)s AND p.gone_at IS NULL
        )
        UPDATE products p
           SET image_url = w.image_url, image_width = w.width, image_height = w.height,
               image_fitness = w.fitness, additional_image_urls = w.additional
          FROM wanted w
         WHERE p.shop_id = %(shop)s AND p.product_id = w.product_id
           AND (p.image_url, p.image_width, p.image_height, p.image_fitness,
                p.additional_image_urls)
               IS DISTINCT FROM (w.image_url, w.width, w.height, w.fitness, w.additional)
        """
    ).format(fitness=fitness, fits_all=fits_all)
    # Built from the key and today's public base, so that moving the CDN needs no reprocessing.
    base = config.public_base_url.rstrip("/") + "/" if config.public_base_url else None
    changed = conn.execute(
        query, {"shop": shop_id, "additional": config.max_additional, "base": base}
    ).rowcount
    conn.commit()
    return changed


def night_started(conn: psycopg.Connection, run_id: str | None, shop_id: str) -> datetime | None:
    """When the first images attempt of this run for this shop started (None outside a run)."""
    if run_id is None:
        return None
    row = conn.execute(
        "SELECT min(started_at) FROM task_runs WHERE run_id = %s AND shop_id = %s"
        " AND task = 'images'",
        (run_id, shop_id),
    ).fetchone()
    return row[0] if row else None

