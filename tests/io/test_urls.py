"""geoseg.io.urls: what is left of a URL once its secrets are removed, in one URL, in free text, in log records."""

from __future__ import annotations

import logging

import pytest

from geoseg.io.urls import RedactingFilter, redact, redact_text, stem_of

PRESIGNED = ("https://bucket.s3.us-east-1.amazonaws.com/scenes/2024/x.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z"
             "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=0123456789abcdef")


@pytest.mark.parametrize(("url", "want"), [
    (PRESIGNED, "https://bucket.s3.us-east-1.amazonaws.com/scenes/2024/x.tif"),
    ("https://user:s3cr3t@example.com:8443/a/b.tif?token=abc#frag", "https://example.com:8443/a/b.tif"),
    ("http://token@127.0.0.1:9000/bucket/k.tif", "http://127.0.0.1:9000/bucket/k.tif"),
    ("https://example.com/a.tif#part", "https://example.com/a.tif"),
    ("s3://bucket/a/b.tif", "s3://bucket/a/b.tif"),  # nothing to remove: unchanged
    ("/vsicurl/https://u:p@example.com/a.tif?sig=1", "/vsicurl/https://example.com/a.tif"),
    ("/data/scenes/a#1?.tif", "/data/scenes/a#1?.tif"),  # a local path: '#' and '?' are part of the name
    ("relative/x.tif", "relative/x.tif"),
    ("C:\\data\\x.tif", "C:\\data\\x.tif"),
])
def test_redact_keeps_scheme_host_port_and_path_only(url, want):
    assert redact(url) == want
    assert redact(want) == want  # idempotent


def test_redact_text_cleans_every_url_in_a_message_but_leaves_postgresql_urls_to_their_own_masking():
    msg = (f"{PRESIGNED}: cannot open as a raster (HTTP error 403 on '{PRESIGNED}'); also https://k:v@h/x?y=1, "
           "sink postgresql://geoseg:***@db:5432/gis?schema=landcover")
    out = redact_text(msg)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "0123456789abcdef", "X-Amz", "k:v@", "y=1"):
        assert secret not in out
    assert out.count("https://bucket.s3.us-east-1.amazonaws.com/scenes/2024/x.tif") == 2
    assert "'https://bucket.s3.us-east-1.amazonaws.com/scenes/2024/x.tif')" in out  # the quote and bracket stay
    assert "postgresql://geoseg:***@db:5432/gis?schema=landcover" in out
    # commas and brackets inside a query go with it; punctuation after a URL stays
    assert redact_text("see (https://h/a.tif?bbox=1,2&sig=x), then https://[::1]:9000/b.tif?t=1.") == \
        "see (https://h/a.tif), then https://[::1]:9000/b.tif."


def test_the_stem_of_a_presigned_url_is_its_file_name():
    assert stem_of(PRESIGNED) == "x"
    assert stem_of("https://h/a/scene.v2.tif?sig=a.b.c") == "scene.v2"
    assert stem_of("/local/y.tif") == "y"


def test_log_records_lose_the_secrets_of_urls_in_their_message_arguments_and_traceback(caplog):
    log = logging.getLogger("geoseg.test_urls")
    caplog.handler.addFilter(RedactingFilter())
    try:
        with caplog.at_level(logging.INFO, logger="geoseg.test_urls"):
            log.info("reading %s", PRESIGNED)
            try:
                raise OSError(f"failed: {PRESIGNED}")
            except OSError:
                log.exception("tile failed")
    finally:
        caplog.handler.filters.clear()
    assert "https://bucket.s3.us-east-1.amazonaws.com/scenes/2024/x.tif" in caplog.text
    assert "X-Amz-Signature" not in caplog.text and "AKIAIOSFODNN7EXAMPLE" not in caplog.text
