"""The line cache (worker/feed/linecache.py) never changes what a build writes: with the cache cold,
warm, partly warm or off, every channel's bytes, its rejects (rows and counts) and its counters are
an uncached build's — night after night while products, groups, options, the code's fingerprint
and the time change; a failed build stores no line; the off switch and prune still work."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from submitter.retention import prune
from tests.catalogs import WATERMARK, edge_catalog, insert_products, product
from tests.fixtures_shops import make_shop
from tests.worker.feed.helpers import GOLDEN_OPTIONS, NOW, ListRejects, read_text
from worker.common.settings import Settings
from worker.feed import linecache
from worker.feed.channels import get_channel, registry
from worker.feed.channels.base import YEAR_AHEAD, ChannelOptions
from worker.feed.linecache import validity
from worker.feed.rules import iso_utc
from worker.feed.task import Build, build_feeds

ALL = sorted(registry())
GOLDEN = Path(__file__).parent / "golden"


def _build(
    conn: psycopg.Connection, shop_id: str, names: Sequence[str], folder: Path,
    options: ChannelOptions, *, cache: bool,
) -> tuple[Build, ListRejects]:
    folder.mkdir(parents=True, exist_ok=True)
    rejects = ListRejects()
    channels = [get_channel(n, options=options) for n in names]
    built = build_feeds(conn, shop_id, channels, folder, rejects=rejects, line_cache=cache)
    return built, rejects


def _outcome(built: Build, rejects: ListRejects) -> dict[str, Any]:
    """Everything a build's caller sees: bytes, counters, every reject in order."""
    return {
        "rows_in": built.rows_in,
        "live": built.live,
        "feeds": {
            f.channel.name: (read_text(f.path), f.rows, f.excluded, dict(f.rejected),
                             dict(f.dropped), f.bytes, f.sha256)
            for f in built.feeds
        },
        "rejects": rejects.records,
    }


def _cached(built: Build) -> dict[str, int]:
    return {f.channel.name: f.cached for f in built.feeds}


def _both(
    conn: psycopg.Connection, shop_id: str, names: Sequence[str], folder: Path,
    options: ChannelOptions,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Build with the cache and without; assert they agree; the cached build's hits."""
    cached, cached_rejects = _build(conn, shop_id, names, folder / "cached", options, cache=True)
    plain, plain_rejects = _build(conn, shop_id, names, folder / "plain", options, cache=False)
    expected = _outcome(plain, plain_rejects)
    assert _outcome(cached, cached_rejects) == expected
    return expected, _cached(cached)


def _watermark(conn: psycopg.Connection, shop_id: str) -> None:
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES (%s, 'naver', 'k', 1, 1, 'x', %s)", (shop_id, WATERMARK),
    )
    conn.commit()


def _lines(conn: psycopg.Connection, shop_id: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT product_id, channel, input_key, valid_from, valid_until, line, notes"
        " FROM feed_lines WHERE shop_id = %s ORDER BY 1, 2", (shop_id,),
    ).fetchall()
    conn.commit()
    return rows


def test_cold_warm_and_off_write_the_golden_files_and_the_same_rejects(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=ALL)
    insert_products(conn, "shop-a", edge_catalog())
    _watermark(conn, "shop-a")
    cold, hits = _both(conn, "shop-a", ALL, tmp_path / "cold", GOLDEN_OPTIONS)
    assert hits == dict.fromkeys(ALL, 0)
    for name in ALL:
        extension = get_channel(name).extension
        assert cold["feeds"][name][0] == (GOLDEN / f"{name}.{extension}").read_text(
            encoding="utf-8"), name
    stored = _lines(conn, "shop-a")
    assert stored
    warm, hits = _both(conn, "shop-a", ALL, tmp_path / "warm", GOLDEN_OPTIONS)
    assert warm == cold
    # Every item of every full channel came from the cache; the summary's changed ones too (the
    # gone product's "D" is built every night).
    live = cold["live"]
    assert all(hits[n] == live for n in ALL if n != "naver_summary"), hits
    assert hits["naver_summary"] > 0
    # Excluded items, dropped attributes and left-out items are replayed (the golden catalog has
    # all three), and a warm build stores nothing new.
    assert any(r["outcome"] == "excluded" for r in warm["rejects"])
    assert any(r["outcome"] == "dropped" for r in warm["rejects"])
    assert any(f[2] for f in warm["feeds"].values())
    assert _lines(conn, "shop-a") == stored


def test_a_row_every_channel_hit_is_never_normalised(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "meta"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(20)])
    _both(conn, "shop-a", ["google", "meta"], tmp_path / "1", GOLDEN_OPTIONS)
    insert_products(conn, "shop-a", [product("P3", title="A new title")])
    calls: list[str] = []
    from worker.feed import task

    real = task.normalise

    def counting(row: Any) -> Any:
        calls.append(row[0])
        return real(row)

    monkeypatch.setattr(task, "normalise", counting)
    built, _ = _build(conn, "shop-a", ["google", "meta"], tmp_path / "2", GOLDEN_OPTIONS,
                      cache=True)
    assert calls == ["P3"]
    assert _cached(built) == {"google": 19, "meta": 19}


# --- the build time -------------------------------------------------------------------------------

def test_validity_breaks_at_the_sale_window_and_a_year_before_availability() -> None:
    now = "2026-11-29T03:00:00Z"
    assert validity(None, None, None, now) == (None, None)
    assert validity("2026-11-25T00:00:00Z", "2026-12-05T00:00:00Z", None, now) == (
        "2026-11-25T00:00:00Z", "2026-12-05T00:00:00Z")
    assert validity("2026-12-10T00:00:00Z", None, None, now) == (None, "2026-12-10T00:00:00Z")
    assert validity(None, "2026-11-29T03:00:00Z", None, now) == ("2026-11-29T03:00:00Z", None)
    # Google refuses a date more than a year ahead: the answer turns a year before it.
    assert validity(None, None, "2027-12-01T00:00:00Z", now) == (None, "2026-12-01T00:00:00Z")
    assert validity(None, None, "2027-01-15T09:30:00Z", now) == ("2026-01-15T09:30:00Z", None)
    # What cannot be compared as the rules compare it is never cached.
    assert validity("0999-01-01T00:00:00Z", None, None, now) == ("0999-01-01T00:00:00Z", None)
    assert validity(None, None, "0999-06-01T00:00:00Z", now) is None
    assert validity("12345-01-01T00:00:00Z", None, None, now) is None


@st.composite
def _moments(draw: st.DrawFn) -> list[int]:
    """Build times as seconds after NOW, in order, crowding the catalog's breakpoints."""
    points = [0, 3600, 86_400, 86_400 * 3, 86_400 * 7, 86_400 * 30]
    near = st.sampled_from(points).flatmap(lambda p: st.integers(p - 2, p + 2))
    return sorted(draw(st.lists(near, min_size=2, max_size=6)))


def _timed_catalog() -> list[dict[str, Any]]:
    """Products whose lines change with the build time, breakpoints 1 h, 1, 3, 7, 30 days on."""
    at = [NOW + timedelta(seconds=s) for s in (3600, 86_400, 86_400 * 3, 86_400 * 7, 86_400 * 30)]
    return [
        product("T-01", sale_price=Decimal("9900"), sale_price_start=at[0], sale_price_end=at[2]),
        product("T-02", sale_price=Decimal("9900"), sale_price_start=NOW - timedelta(days=1),
                sale_price_end=at[1]),
        product("T-03", sale_price=Decimal("9900"), sale_price_start=at[3]),
        product("T-04", sale_price=Decimal("9900"), sale_price_end=at[4]),
        product("T-05", availability="preorder", availability_date=at[1] + YEAR_AHEAD),
        product("T-06", availability="backorder", availability_date=at[3] + YEAR_AHEAD),
        product("T-07", sale_price=Decimal("9900"), sale_price_start=at[2],
                sale_price_end=at[1]),  # inverted: dropped whatever the time
        product("T-08", sale_price=Decimal("13900"), sale_price_start=at[0]),  # not lower
        product("T-09"),
    ]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moments=_moments())
def test_time_moving_across_sale_windows_and_the_year_ahead_changes_only_what_it_must(
    conn: psycopg.Connection, tmp_path_factory: pytest.TempPathFactory, moments: list[int]
) -> None:
    shop_id = f"time-{next(_SHOPS)}"
    make_shop(conn, id=shop_id, channels=ALL)
    insert_products(conn, shop_id, _timed_catalog())
    folder = tmp_path_factory.mktemp("time")
    for n, seconds in enumerate(moments):
        options = replace(GOLDEN_OPTIONS, now=NOW + timedelta(seconds=seconds))
        _both(conn, shop_id, ALL, folder / str(n), options)


def test_a_line_is_reused_inside_its_interval_and_rebuilt_across_a_breakpoint(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", _timed_catalog())
    start = NOW + timedelta(seconds=3600)  # T-01's sale starts
    steps = [start - timedelta(seconds=2), start - timedelta(seconds=1), start,
             start + timedelta(seconds=1)]
    hits = []
    for n, moment in enumerate(steps):
        options = replace(GOLDEN_OPTIONS, now=moment)
        outcome, cached = _both(conn, "shop-a", ["google", "naver"], tmp_path / str(n), options)
        hits.append(cached["google"])
        naver = outcome["feeds"]["naver"][0]
        line = next(x for x in naver.splitlines() if x.startswith("T-01\t"))
        assert line.split("\t")[2] == ("9900" if moment >= start else "12900")
    # Nine products: the first build makes every line; within an interval all hit; at the
    # breakpoint only the product whose window opens (T-01) and T-08 (a start there too) miss.
    assert hits == [0, 9, 7, 9]


# --- night after night ----------------------------------------------------------------------------

_SHOPS = itertools.count()
_NIGHT = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.integers(0, 11)),
        st.tuples(st.just("gone"), st.integers(0, 11)),
        st.tuples(st.just("back"), st.integers(0, 11)),
        st.tuples(st.just("new"), st.integers(0, 5)),
        st.tuples(st.just("variant"), st.integers(0, 1)),
        st.tuples(st.just("options"), st.sampled_from([None, "KR", "US"])),
        st.tuples(st.just("apparel"), st.booleans()),
        st.tuples(st.just("deploy"), st.integers(0, 3)),
    ),
    max_size=4,
)


def _night_catalog() -> list[dict[str, Any]]:
    return [
        product("N-00"),
        product("N-01", item_group_id="G0", color="Red", size="M", gender="male",
                age_group="adult"),
        product("N-02", item_group_id="G0", color="Blue", size="M", gender="male",
                age_group="adult"),
        product("N-03", item_group_id="G1", size="S"),
        product("N-04", item_group_id="G1", size="S", material="Wool"),
        product("N-05", sale_price=Decimal("9900"), sale_price_start=NOW + timedelta(days=2),
                sale_price_end=NOW + timedelta(days=5)),
        product("N-06", availability="preorder",
                availability_date=NOW + YEAR_AHEAD + timedelta(days=3)),
        product("N-07", price=Decimal("0")),
        product("N-08", brand=None, mpn=None),
        product("N-09", gtin="8801234567890", gender="unknown"),
        product("N-10", availability="out_of_stock"),
        product("N-11", item_group_id="N-00", shipping_cost=None),
    ]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(nights=st.lists(st.tuples(_NIGHT, st.sampled_from([0, 1, 2, 24, 49, 75])), min_size=2,
                       max_size=5))
def test_night_after_night_the_cached_build_writes_what_an_uncached_one_writes(
    conn: psycopg.Connection, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch, nights: list[tuple[list[tuple[str, Any]], int]],
) -> None:
    shop_id = f"night-{next(_SHOPS)}"
    make_shop(conn, id=shop_id, channels=ALL)
    catalog = {p["product_id"]: p for p in _night_catalog()}
    insert_products(conn, shop_id, catalog.values())
    _watermark(conn, shop_id)
    folder = tmp_path_factory.mktemp("nights")
    options = GOLDEN_OPTIONS
    now = NOW
    real = linecache.code_fingerprint()
    for n, (changes, hours) in enumerate(nights):
        now += timedelta(hours=hours)
        for kind, arg in changes:
            if kind == "update":
                pid = f"N-{arg:02d}"
                catalog[pid] = {**catalog[pid], "title": f"{catalog[pid]['title']} {n}",
                                "changed_at": now}
            elif kind == "gone":
                pid = f"N-{arg:02d}"
                catalog[pid] = {**catalog[pid], "gone_at": now, "changed_at": now}
            elif kind == "back":
                pid = f"N-{arg:02d}"
                catalog[pid] = {**catalog[pid], "gone_at": None, "changed_at": now}
            elif kind == "new":
                pid = f"X-{arg:02d}"
                catalog.setdefault(pid, product(pid, first_seen_at=now, changed_at=now))
            elif kind == "variant":
                # A group gains a variant: group_varies changes for every item of it.
                pid = f"V{arg}-{n}"
                catalog[pid] = product(pid, item_group_id=f"G{arg}", size="XL", color="Green",
                                       first_seen_at=now, changed_at=now)
            elif kind == "options":
                options = replace(options, country=arg)
            elif kind == "apparel":
                options = replace(options, apparel=arg)
            else:
                monkeypatch.setattr(linecache, "code_fingerprint",
                                    lambda arg=arg: f"{real}-deploy-{arg}")
        insert_products(conn, shop_id, catalog.values())
        _both(conn, shop_id, ALL, folder / str(n), replace(options, now=now))
    # The cache holds no line of a gone product.
    gone = {pid for pid, p in catalog.items() if p["gone_at"] is not None}
    assert not gone & {row[0] for row in _lines(conn, shop_id)}


# --- what invalidates, the off switch, failures, retention ---------------------------------------

def test_a_new_fingerprint_or_other_options_rebuild_every_line(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "meta"])
    insert_products(conn, "shop-a", edge_catalog())
    names = ["google", "meta"]
    _, hits = _both(conn, "shop-a", names, tmp_path / "1", GOLDEN_OPTIONS)
    _, hits = _both(conn, "shop-a", names, tmp_path / "2", GOLDEN_OPTIONS)
    assert min(hits.values()) > 0
    sets = conn.execute("SELECT channel, fingerprint FROM feed_line_sets ORDER BY 1").fetchall()
    conn.commit()
    # A deploy that changes any rule: a new code fingerprint, every line of every channel rebuilt.
    monkeypatch.setattr(linecache, "code_fingerprint", lambda: "another rule book")
    _, hits = _both(conn, "shop-a", names, tmp_path / "3", GOLDEN_OPTIONS)
    assert hits == {"google": 0, "meta": 0}
    after = conn.execute("SELECT channel, fingerprint FROM feed_line_sets ORDER BY 1").fetchall()
    conn.commit()
    assert [c for c, _ in after] == names and all(
        a[1] != b[1] for a, b in zip(after, sets, strict=True))
    _, hits = _both(conn, "shop-a", names, tmp_path / "4", GOLDEN_OPTIONS)
    assert min(hits.values()) > 0
    # Other options for the shop (its country): rebuilt too, then reused.
    other = replace(GOLDEN_OPTIONS, country="US")
    _, hits = _both(conn, "shop-a", names, tmp_path / "5", other)
    assert hits == {"google": 0, "meta": 0}
    _, hits = _both(conn, "shop-a", names, tmp_path / "6", other)
    assert min(hits.values()) > 0


def test_the_fingerprint_covers_the_rule_book_and_the_options_but_not_the_time() -> None:
    google = get_channel("google", options=GOLDEN_OPTIONS)
    later = get_channel("google", options=replace(GOLDEN_OPTIONS, now=NOW + timedelta(days=9)))
    assert linecache.channel_fingerprint(google) == linecache.channel_fingerprint(later)
    for options in (replace(GOLDEN_OPTIONS, country="US"), replace(GOLDEN_OPTIONS, apparel=True),
                    replace(GOLDEN_OPTIONS, description_from_title=True),
                    replace(GOLDEN_OPTIONS, allow_networks=Settings.from_env(
                        {"DATABASE_URL": "postgresql:///x",
                         "FETCH_ALLOW_NETWORKS": "127.0.0.0/8"}).fetch_allow_networks)):
        other = get_channel("google", options=options)
        assert linecache.channel_fingerprint(other) != linecache.channel_fingerprint(google)
    tsv = get_channel("google_tsv", options=GOLDEN_OPTIONS)
    assert linecache.channel_fingerprint(tsv) != linecache.channel_fingerprint(google)
    code = linecache.code_fingerprint()
    assert len(code) == 64 and linecache.code_fingerprint() == code


def test_the_off_switch(conn: psycopg.Connection, tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql:///x"}
    assert Settings.from_env(env).feed_line_cache is True
    assert Settings.from_env({**env, "FEED_LINE_CACHE": "0"}).feed_line_cache is False
    with pytest.raises(Exception, match="FEED_LINE_CACHE='maybe'"):
        Settings.from_env({**env, "FEED_LINE_CACHE": "maybe"})
    make_shop(conn, id="shop-a", channels=ALL)
    insert_products(conn, "shop-a", edge_catalog())
    _build(conn, "shop-a", ALL, tmp_path / "off", GOLDEN_OPTIONS, cache=False)
    assert _lines(conn, "shop-a") == []
    assert conn.execute("SELECT count(*) FROM feed_line_sets").fetchone() == (0,)


def test_the_task_builds_with_the_cache_unless_switched_off(
    conn: psycopg.Connection, settings_env: dict[str, str]
) -> None:
    from worker.common.errors import EXIT_OK
    from worker.router import run_task

    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(5)])
    off = Settings.from_env({**settings_env, "SHOP_ID": "shop-a", "FEED_LINE_CACHE": "0"})
    assert run_task("feed", off) == EXIT_OK
    assert _lines(conn, "shop-a") == []
    root = Path(settings_env["OUTPUT_URL"]) / "feeds" / "shop-a"
    before = {p.name: p.read_bytes() for p in root.iterdir() if "manifest" not in p.name}
    on = Settings.from_env({**settings_env, "SHOP_ID": "shop-a"})
    assert run_task("feed", on) == EXIT_OK
    assert len(_lines(conn, "shop-a")) == 10
    assert run_task("feed", on) == EXIT_OK
    after = {p.name: p.read_bytes() for p in root.iterdir() if "manifest" not in p.name}
    assert after == before


class _Boom(Exception):
    pass


def _failing_after(monkeypatch: pytest.MonkeyPatch, channel: str, product_id: str) -> None:
    cls = registry()[channel]
    real = cls.row

    def row(self: Any, p: Any) -> Any:
        if p.product_id == product_id:
            raise _Boom(product_id)
        return real(self, p)

    monkeypatch.setattr(cls, "row", row)


def test_a_failed_build_stores_no_line_and_leaves_the_previous_ones(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    insert_products(conn, "shop-a", [product(f"P{i:02d}") for i in range(30)])
    # Cold, failing at the 20th product: nothing stored, not even the 19 lines before it.
    with monkeypatch.context() as patch:
        _failing_after(patch, "naver", "P19")
        with pytest.raises(_Boom):
            _build(conn, "shop-a", ["google", "naver"], tmp_path / "1", GOLDEN_OPTIONS,
                   cache=True)
    assert _lines(conn, "shop-a") == []
    assert conn.execute("SELECT count(*) FROM feed_line_sets").fetchone() == (0,)
    conn.commit()
    _both(conn, "shop-a", ["google", "naver"], tmp_path / "2", GOLDEN_OPTIONS)
    stored = _lines(conn, "shop-a")
    # Warm, with changes, under a new fingerprint, failing late: the previous lines stay as
    # they were.
    insert_products(conn, "shop-a", [product(f"P{i:02d}", title="Changed") for i in range(10)])
    monkeypatch.setattr(linecache, "code_fingerprint", lambda: "next deploy")
    with monkeypatch.context() as patch:
        _failing_after(patch, "google", "P29")
        with pytest.raises(_Boom):
            _build(conn, "shop-a", ["google", "naver"], tmp_path / "3", GOLDEN_OPTIONS,
                   cache=True)
    assert _lines(conn, "shop-a") == stored
    _both(conn, "shop-a", ["google", "naver"], tmp_path / "4", GOLDEN_OPTIONS)


def test_storing_lines_that_fails_leaves_the_build_and_the_cache_as_they_were(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(conn, id="shop-a", channels=["google"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(5)])
    # Lines the server refuses to store (a validity that is no time): the COPY fails.
    real = linecache.LineCache.remember

    def unstorable(self: linecache.LineCache, channel: str, product_id: str, key: int | str,
                   valid: tuple[str | None, str | None], line: str | None, notes: str) -> None:
        real(self, channel, product_id, key, ("not a time", None), line, notes)

    monkeypatch.setattr(linecache.LineCache, "remember", unstorable)
    built, _ = _build(conn, "shop-a", ["google"], tmp_path / "1", GOLDEN_OPTIONS, cache=True)
    assert built.feeds[0].rows == 5
    assert _lines(conn, "shop-a") == []


def test_lines_go_with_their_products_and_prune_still_works(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=["google", "naver"])
    make_shop(conn, id="shop-b", channels=["google"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(4)])
    insert_products(conn, "shop-b", [product(f"P{i}") for i in range(3)])
    _build(conn, "shop-a", ["google", "naver"], tmp_path / "a", GOLDEN_OPTIONS, cache=True)
    _build(conn, "shop-b", ["google"], tmp_path / "b", GOLDEN_OPTIONS, cache=True)
    assert len(_lines(conn, "shop-a")) == 8
    # Retention removes old task rows, rejects and runs; the cache is no business of it.
    assert prune(conn, keep_days=1, now=datetime.now(UTC) + timedelta(days=10))
    assert len(_lines(conn, "shop-a")) == 8
    # A gone product's lines go at the next build; a deleted product's (a shop's) at once.
    conn.execute("UPDATE products SET gone_at = now() WHERE shop_id = 'shop-a'"
                 " AND product_id = 'P0'")
    conn.commit()
    _build(conn, "shop-a", ["google", "naver"], tmp_path / "a2", GOLDEN_OPTIONS, cache=True)
    assert {r[0] for r in _lines(conn, "shop-a")} == {"P1", "P2", "P3"}
    conn.execute("DELETE FROM shops WHERE id = 'shop-b'")
    conn.commit()
    assert _lines(conn, "shop-b") == []
    assert conn.execute("SELECT count(*) FROM feed_line_sets WHERE shop_id = 'shop-b'"
                        ).fetchone() == (0,)


def test_a_second_build_of_the_shop_at_the_same_time_goes_without_the_cache(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    make_shop(conn, id="shop-a", channels=["google"])
    insert_products(conn, "shop-a", [product(f"P{i}") for i in range(3)])
    with psycopg.connect(database_url) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)",
                      (linecache.shop_lock_key("shop-a", "feed_lines"),))
        built, _ = _build(conn, "shop-a", ["google"], tmp_path, GOLDEN_OPTIONS, cache=True)
    assert built.feeds[0].rows == 3
    assert _lines(conn, "shop-a") == []


def test_iso_of_now_is_what_the_rules_compare() -> None:
    assert iso_utc(NOW) == ChannelOptions(now=NOW).now_iso


def test_after_a_new_fingerprint_no_line_of_the_old_one_is_left(
    conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even a line tonight's pass does not reach (a summary line of a product unchanged since the
    new watermark) goes with the old fingerprint: it could otherwise be hit again one day."""
    make_shop(conn, id="shop-a", channels=["naver", "naver_summary"])
    changed = WATERMARK + timedelta(days=1)
    insert_products(conn, "shop-a", [product("P1", changed_at=changed), product("P2")])
    _watermark(conn, "shop-a")
    names = ["naver", "naver_summary"]
    _both(conn, "shop-a", names, tmp_path / "1", GOLDEN_OPTIONS)
    assert {(r[0], r[1]) for r in _lines(conn, "shop-a")} == {
        ("P1", "naver"), ("P2", "naver"), ("P1", "naver_summary")}
    conn.execute(
        "INSERT INTO feed_publications (shop_id, channel, key, rows, bytes, sha256, data_as_of)"
        " VALUES ('shop-a', 'naver', 'k', 1, 1, 'x', %s)", (changed + timedelta(days=1),),
    )
    conn.commit()
    monkeypatch.setattr(linecache, "code_fingerprint", lambda: "next deploy")
    _both(conn, "shop-a", names, tmp_path / "2", GOLDEN_OPTIONS)
    assert {(r[0], r[1]) for r in _lines(conn, "shop-a")} == {("P1", "naver"), ("P2", "naver")}


def test_without_its_source_the_rule_book_matches_no_other_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker

    (tmp_path / "feed").mkdir()
    monkeypatch.setattr(worker, "__file__", str(tmp_path / "__init__.py"))
    linecache.code_fingerprint.cache_clear()
    try:
        first = linecache.code_fingerprint()
        linecache.code_fingerprint.cache_clear()
        assert first.startswith("no source") and linecache.code_fingerprint() != first
    finally:
        linecache.code_fingerprint.cache_clear()


def test_one_channel_rebuilt_beside_one_reused(conn: psycopg.Connection, tmp_path: Path) -> None:
    make_shop(conn, id="shop-a", channels=["google", "meta"])
    insert_products(conn, "shop-a", edge_catalog())
    names = ["google", "meta"]
    _both(conn, "shop-a", names, tmp_path / "1", GOLDEN_OPTIONS)
    conn.execute("UPDATE feed_line_sets SET fingerprint = 'older' WHERE channel = 'meta'")
    conn.commit()
    insert_products(conn, "shop-a", [product("A-002", title="Changed tonight")])
    _, hits = _both(conn, "shop-a", names, tmp_path / "2", GOLDEN_OPTIONS)
    assert hits["meta"] == 0 and hits["google"] > 0
    _, hits = _both(conn, "shop-a", names, tmp_path / "3", GOLDEN_OPTIONS)
    assert hits["meta"] == hits["google"] > 0


def test_rows_through_copy_give_the_same_with_the_cache(
    conn: psycopg.Connection, tmp_path: Path
) -> None:
    """``method="copy"`` hands every column over as text: the hit flag and the key still work."""
    make_shop(conn, id="shop-a", channels=ALL)
    insert_products(conn, "shop-a", edge_catalog())
    _watermark(conn, "shop-a")
    plain, plain_rejects = _build(conn, "shop-a", ALL, tmp_path / "plain", GOLDEN_OPTIONS,
                                  cache=False)
    expected = _outcome(plain, plain_rejects)
    for n in range(2):
        folder = tmp_path / f"copy-{n}"
        folder.mkdir()
        rejects = ListRejects()
        channels = [get_channel(name, options=GOLDEN_OPTIONS) for name in ALL]
        built = build_feeds(conn, "shop-a", channels, folder, rejects=rejects, line_cache=True,
                            method="copy")
        assert _outcome(built, rejects) == expected
        assert (min(_cached(built).values()) > 0) == (n == 1)
