"""Input URLs made safe to write: no query string, fragment or user-info in anything geoseg writes.

A presigned URL (``https://bucket.s3.amazonaws.com/scene.tif?X-Amz-Credential=AKIA...&X-Amz-Signature=...``)
or a URL with credentials (``https://user:secret@host/scene.tif``) is a working credential
for as long as it is valid. geoseg reads through it, but every place an input path or URL is
*written* (``manifest.json``, the ``source`` tag of the COGs, the polygons' ``source``
attribute, STAC Items, reports, log and error messages) goes through :func:`redact`, which
keeps the scheme, host, port and path and drops the rest. :func:`redact_text` does the same
for every URL inside a free text (an error message that quotes GDAL, say), and
:class:`RedactingFilter` for every log record.

Local paths (no ``scheme://``) are returned unchanged, ``#`` and ``?`` in file names
included. GDAL virtual paths (``/vsicurl/https://...``) are redacted in the URL they wrap.
PostgreSQL sink URLs are left to :func:`geoseg.config.mask_password`, which keeps the user
and the schema (they say where the results went) and masks only the password.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["RedactingFilter", "redact", "redact_text", "stem_of"]

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
"""A URL inside free text: ``scheme://`` and what follows up to a space, a quote or an angle bracket."""
TRAILING = ").,;:]}"
"""Punctuation that ends a sentence or closes a bracket after a URL, not part of it."""

KEEP = ("postgres://", "postgresql://")
"""Schemes :func:`redact_text` leaves alone (masked by :func:`geoseg.config.mask_password` where written)."""


def redact(url: str) -> str:
    """``url`` without its query string, fragment and ``user:password@``: scheme, host, port and path only.

    ``https://k:s@h:9000/b/x.tif?X-Amz-Signature=abc#f`` -> ``https://h:9000/b/x.tif``. A local path
    is returned as it is; ``/vsicurl/URL`` becomes ``/vsicurl/`` + ``redact(URL)``.
    """
    text = str(url)
    m = URL.search(text)
    if m is None:
        return text
    prefix = text[: m.start()]
    if prefix and not prefix.startswith("/vsi"):
        return text  # a local path that merely contains "x://" somewhere
    return prefix + _redact_url(text[m.start():])


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 host: keep only what precedes any query or user-info
        return url.split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact`), PostgreSQL URLs excepted."""
    def clean(m: re.Match) -> str:
        url = m[0].rstrip(TRAILING)
        return m[0] if url.lower().startswith(KEEP) else _redact_url(url) + m[0][len(url):]

    return URL.sub(clean, str(text))


def stem_of(path: str) -> str:
    """The file name of ``path`` without its extension, after :func:`redact` (``x.tif?sig=...`` -> ``x``)."""
    name = redact(path).rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


class RedactingFilter(logging.Filter):
    """A logging filter (install it on handlers) that redacts every URL in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # the formatted traceback, cached on the record: what every handler prints
            record.exc_text = redact_text(record.exc_text)
        return True
