"""`catalog-submit shops import|list`: declarative registration with a clear error per shop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def submit(env, *args):
    return subprocess.run([sys.executable, "-m", "submitter", *args],
                          env={**env, "PYTHONPATH": os.getcwd()}, capture_output=True, text=True,
                          timeout=120)


def test_import_the_example_file_then_list(conn, settings_env):
    proc = submit(settings_env, "shops", "import", str(EXAMPLES / "shops.json"))
    assert proc.returncode == 0, proc.stderr
    assert "imported 3 shop(s)" in proc.stdout
    rows = conn.execute("SELECT id, currency, channels, active FROM shops ORDER BY id").fetchall()
    assert rows == [
        ("busan-books", "KRW", ["naver", "naver_summary"], True),
        ("seoul-outfitters", "KRW", ["google", "meta", "naver"], True),
        ("tokyo-gadgets", "JPY", ["google", "google_tsv", "meta"], False),
    ]
    listing = submit(settings_env, "shops", "list")
    assert listing.returncode == 0
    assert "seoul-outfitters" in listing.stdout and "google,meta,naver" in listing.stdout


def test_import_is_an_upsert(conn, settings_env, tmp_path):
    shop = {"id": "s1", "name": "One", "source_url": "https://a.example/x.json", "format": "json",
            "currency": "usd", "channels": ["google"]}
    path = tmp_path / "shops.json"
    path.write_text(json.dumps({"shops": [shop]}))
    assert submit(settings_env, "shops", "import", str(path)).returncode == 0
    shop["name"] = "Renamed"
    path.write_text(json.dumps({"shops": [shop]}))
    assert submit(settings_env, "shops", "import", str(path)).returncode == 0
    assert conn.execute("SELECT name, currency FROM shops").fetchall() == [("Renamed", "USD")]


def test_a_changed_mapping_or_source_forgets_the_conditional_get_validators(conn, settings_env, tmp_path):
    shop = {"id": "s1", "name": "One", "source_url": "https://a.example/x.json", "format": "json",
            "currency": "KRW", "channels": ["google"]}
    path = tmp_path / "shops.json"

    def import_with(**changes):
        path.write_text(json.dumps({"shops": [{**shop, **changes}]}))
        assert submit(settings_env, "shops", "import", str(path)).returncode == 0

    def validators():
        return conn.execute("SELECT source_etag, source_last_modified FROM shops").fetchone()

    import_with()
    for change in ({"name": "Renamed"}, {"mapping": {"title": "name"}}, {"currency": "USD"},
                   {"format_options": {"item_path": "data.item"}},
                   {"source_url": "https://a.example/y.json"}):
        conn.execute("UPDATE shops SET source_etag = '\"e1\"', source_last_modified = 'yesterday'")
        conn.commit()
        import_with(**{**change})
        shop.update(change)
        kept = change == {"name": "Renamed"}
        assert validators() == (('"e1"', "yesterday") if kept else (None, None)), change
        conn.commit()


def test_toml_files_are_accepted(conn, settings_env, tmp_path):
    path = tmp_path / "shops.toml"
    path.write_text(
        '[[shops]]\nid = "t1"\nname = "T"\nsource_url = "https://a.example/c.csv"\n'
        'format = "csv"\ncurrency = "KRW"\nchannels = ["naver"]\n'
    )
    assert submit(settings_env, "shops", "import", str(path)).returncode == 0
    assert conn.execute("SELECT id FROM shops").fetchall() == [("t1",)]


def test_every_bad_shop_is_named_with_its_problems_and_nothing_is_imported(conn, settings_env, tmp_path):
    shops = [
        {"id": "ok", "name": "Fine", "source_url": "https://a.example/x.json", "format": "json",
         "currency": "KRW", "channels": ["google"]},
        {"id": "bad one", "source_url": "gopher://x", "format": "yaml", "currency": "XXX",
         "channels": ["tiktok"], "options": {"max_reject_share": 3}},
        {"id": "b2", "name": "B", "source_url": "https://a.example/x.json", "format": "json",
         "currency": "KRW", "colour": "red"},
    ]
    path = tmp_path / "shops.json"
    path.write_text(json.dumps({"shops": shops}))
    proc = submit(settings_env, "shops", "import", str(path))
    assert proc.returncode == 65
    err = proc.stderr
    assert "shops[1] (shop 'bad one')" in err
    for fragment in ("id 'bad one' is invalid", "unsupported scheme", "format 'yaml'",
                     "currency 'XXX'", "channel 'tiktok'", "options.max_reject_share=3"):
        assert fragment in err, fragment
    assert "shops[2] (shop 'b2')" in err and "unknown field 'colour'" in err
    assert conn.execute("SELECT count(*) FROM shops").fetchone()[0] == 0


def test_a_file_that_is_not_json_says_so(settings_env, tmp_path):
    path = tmp_path / "shops.json"
    path.write_text("{not json")
    proc = submit(settings_env, "shops", "import", str(path))
    assert proc.returncode == 65 and "not valid JSON" in proc.stderr


def test_import_before_migrate_says_to_migrate(pg_admin_url, tmp_path):
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": pg_admin_url}
    proc = submit(env, "shops", "import", str(EXAMPLES / "shops.json"))
    assert proc.returncode == 65 and "catalog-submit migrate" in proc.stderr


def test_a_mapping_that_cannot_work_is_refused_at_import(conn, settings_env, tmp_path):
    shop = {"id": "m1", "name": "M", "source_url": "https://a.example/x.json", "format": "json",
            "currency": "KRW", "channels": ["google"],
            "mapping": {"price": {"path": "amount", "parse": "no-such-parser"}}}
    path = tmp_path / "shops.json"
    path.write_text(json.dumps({"shops": [shop]}))
    proc = submit(settings_env, "shops", "import", str(path))
    assert proc.returncode == 65
    assert "shop 'm1'" in proc.stderr and "no-such-parser" in proc.stderr
    assert conn.execute("SELECT count(*) FROM shops").fetchone()[0] == 0


def test_list_hides_a_source_urls_credentials_and_token(conn, settings_env, tmp_path):
    shop = {"id": "s1", "name": "One", "format": "json", "currency": "KRW", "channels": ["google"],
            "source_url": "https://feed:hunter2@a.example/x.json?access_token=tok-123"}
    path = tmp_path / "shops.json"
    path.write_text(json.dumps({"shops": [shop]}))
    assert submit(settings_env, "shops", "import", str(path)).returncode == 0
    listing = submit(settings_env, "shops", "list")
    assert listing.returncode == 0 and "a.example/x.json" in listing.stdout
    assert "hunter2" not in listing.stdout and "tok-123" not in listing.stdout
