"""Settings are read once, validated, and every problem is named with its variable."""

import ipaddress

import psycopg.conninfo
import pytest

from worker.common.errors import EXIT_DATAERR, ConfigError
from worker.common.settings import Settings, database_url_from_secret


def test_defaults_from_a_minimal_environment():
    s = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "LOG_FORMAT": "json"})
    assert s.output_url == "./out"
    assert s.array_index == 0 and s.attempt == 1 and s.shop_index_offset == 0
    assert s.fetch_allow_networks == () and s.force is False


def test_missing_database_url_names_the_variable_and_the_fix():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({})
    assert "DATABASE_URL is not set" in str(err.value)
    assert "postgresql://" in str(err.value)
    assert err.value.exit_code == EXIT_DATAERR


def test_every_problem_is_reported_at_once():
    env = {
        "DATABASE_URL": "mysql://nope",
        "LOG_FORMAT": "xml",
        "AWS_BATCH_JOB_ARRAY_INDEX": "two",
        "SHOP_INDEX_OFFSET": "-1",
        "FETCH_ALLOW_NETWORKS": "127.0.0.0/8,banana",
        "OUTPUT_URL": "ftp://x/y",
        "CATALOG_FORCE": "perhaps",
        "FEED_LINE_CACHE": "maybe",
    }
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    text = str(err.value)
    for name in ("DATABASE_URL", "LOG_FORMAT", "AWS_BATCH_JOB_ARRAY_INDEX", "SHOP_INDEX_OFFSET",
                 "FETCH_ALLOW_NETWORKS", "OUTPUT_URL", "CATALOG_FORCE='perhaps' is not a boolean",
                 "FEED_LINE_CACHE='maybe' is not a boolean"):
        assert name in text, name
    assert "banana" in text


def test_batch_and_shop_variables_are_parsed():
    s = Settings.from_env({
        "DATABASE_URL": "postgresql://u@h/db",
        "SHOP_IDS": "5, 6,7",
        "AWS_BATCH_JOB_ARRAY_INDEX": "2",
        "AWS_BATCH_JOB_ID": "abc:2",
        "AWS_BATCH_JOB_ATTEMPT": "3",
        "FETCH_ALLOW_NETWORKS": "127.0.0.0/8,::1",
        "CATALOG_FORCE": "1",
    })
    assert s.shop_ids == ("5", "6", "7")
    assert (s.array_index, s.job_id, s.attempt, s.force) == (2, "abc:2", 3, True)
    assert ipaddress.ip_address("127.0.0.1") in s.fetch_allow_networks[0]


def test_public_base_url_must_be_http_and_loses_its_trailing_slash():
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "PUBLIC_BASE_URL": "s3://b/p"})
    s = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "PUBLIC_BASE_URL": "https://cdn.x/n/"})
    assert s.public_base_url == "https://cdn.x/n"


def test_an_empty_entry_in_shop_ids_is_refused():
    with pytest.raises(ConfigError, match="SHOP_IDS"):
        Settings.from_env({"DATABASE_URL": "postgresql://u@h/db", "SHOP_IDS": "5,,7"})


def test_the_password_is_not_echoed_in_errors():
    with pytest.raises(ConfigError) as err:
        Settings.from_env({"DATABASE_URL": "mysql://user:secret@h/db"})
    assert "secret" not in str(err.value)


def test_an_rds_json_secret_in_database_url_becomes_a_uri():
    secret = '{"username": "cat", "password": "p@ss/w", "host": "db.x", "port": 5433, "dbname": "feeds"}'
    s = Settings.from_env({"DATABASE_URL": secret})
    assert s.database_url is not None
    assert psycopg.conninfo.conninfo_to_dict(s.database_url) == {
        "user": "cat", "password": "p@ss/w", "host": "db.x", "port": "5433", "dbname": "feeds"}
    with pytest.raises(ConfigError, match="not a usable RDS secret: the database secret lacks"):
        Settings.from_env({"DATABASE_URL": '{"user": "x"}'})
    assert "p@ss" not in repr(s)  # the connection string (and its password) stays out of the repr


def test_a_secret_whose_host_is_a_socket_folder_still_connects_somewhere_sane():
    url = database_url_from_secret(
        '{"username": "u", "password": "x y", "host": "/tmp/pg sock", "port": 5432}')
    assert psycopg.conninfo.conninfo_to_dict(url)["host"] == "/tmp/pg sock"
    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == "x y"


def test_settings_are_frozen():
    s = Settings.from_env({"DATABASE_URL": "postgresql://u@h/db"})
    with pytest.raises(AttributeError):
        s.output_url = "elsewhere"  # type: ignore[misc]
