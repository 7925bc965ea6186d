"""The sink's address (geoseg.io.sink.target) and the config key that holds it: parsing, schema, masking.

Oracles: libpq's own parse of the connection string (psycopg.conninfo), hand-written URLs whose
password and schema are known, and the password's absence from every written form.
"""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from geoseg.config import MonitorConfig, SegmentConfig, mask_password
from geoseg.errors import ConfigError
from geoseg.io.sink.target import DEFAULT_SCHEMA, SinkTarget


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://gis:s3cr%40t@db.example:5432/maps", "postgresql://gis:***@db.example:5432/maps"),
    ("postgres://gis:pw@db/maps?schema=lc", "postgres://gis:***@db/maps?schema=lc"),
    ("postgresql://gis@db/maps?sslmode=require&password=pw&schema=x", "postgresql://gis@db/maps?sslmode=require&password=***&schema=x"),
    ("postgresql://gis@db:5432/maps", "postgresql://gis@db:5432/maps"),
    ("postgresql://db:5432/maps?service=geoseg", "postgresql://db:5432/maps?service=geoseg"),
])
def test_passwords_are_masked_and_nothing_else_is(url, masked):
    assert mask_password(url) == masked


def test_the_schema_is_taken_out_and_the_rest_is_libpqs():
    t = SinkTarget.parse("postgresql://gis@db.example:6543/maps?sslmode=require&schema=landcover&connect_timeout=3")
    assert t.schema == "landcover" and not t.has_password
    assert conninfo_to_dict(t.conninfo) == {"user": "gis", "host": "db.example", "port": "6543", "dbname": "maps",
                                            "sslmode": "require", "connect_timeout": "3"}
    assert SinkTarget.parse("postgresql://gis@db/maps").schema == DEFAULT_SCHEMA
    # libpq URI syntax passes through untouched: several hosts, a service, percent-encoded values
    t = SinkTarget.parse("postgresql://h1:5432,h2:5433/maps?service=geo&options=-c%20statement_timeout%3D5000")
    assert conninfo_to_dict(t.conninfo) == {"host": "h1,h2", "port": "5432,5433", "dbname": "maps", "service": "geo",
                                            "options": "-c statement_timeout=5000"}
    t = SinkTarget.parse("postgresql:///?service=maps&schema=lc")  # everything from the service file
    assert conninfo_to_dict(t.conninfo) == {"service": "maps"} and t.schema == "lc"


def test_a_password_in_the_url_connects_but_is_scrubbed_from_messages():
    t = SinkTarget.parse("postgresql://gis:p%40ss@db/maps?schema=s")
    assert t.has_password and conninfo_to_dict(t.conninfo)["password"] == "p@ss"
    assert "p@ss" not in repr(t) and "p%40ss" not in t.masked
    assert t.scrub('FATAL: bad password "p@ss" (p%40ss)') == 'FATAL: bad password "***" (***)'


@pytest.mark.parametrize(("url", "words"), [
    ("mysql://gis:topsecret@db/maps", ["not a PostgreSQL URL", "mysql://gis:***@db/maps"]),
    ("db.example:5432/maps", ["not a PostgreSQL URL"]),
    ("postgresql://gis:topsecret@db/maps?schema=drop table", ["schema 'drop table'", "?schema="]),
    ("postgresql://gis:topsecret@db/maps?scheme=x", ["invalid URI query parameter", "scheme"]),
])
def test_unusable_urls_are_config_errors_that_never_show_the_password(url, words):
    with pytest.raises(ConfigError) as e:
        SinkTarget.parse(url)
    for w in words:
        assert w in str(e.value)
    assert "topsecret" not in str(e.value)


def test_configs_keep_the_password_for_connecting_but_dump_it_masked():
    url = "postgresql://gis:topsecret@db/maps?schema=lc"
    cfg = SegmentConfig(sink=url)
    assert cfg.sink == url  # what the run connects with
    assert cfg.model_dump(mode="json")["sink"] == "postgresql://gis:***@db/maps?schema=lc"  # what manifest.json holds
    assert "topsecret" not in cfg.model_dump_json() and SegmentConfig().model_dump()["sink"] is None
    mon = MonitorConfig(output_root="out", regions=[{"name": "a", "imagery": "x_{period}.tif"}], sink=url)
    assert "topsecret" not in mon.model_dump_json()
    with pytest.raises(ValueError, match="sink"):  # the monitor's sink is one, at the top level
        MonitorConfig(output_root="out", regions=[{"name": "a", "imagery": "x_{period}.tif"}], segment={"sink": url})
