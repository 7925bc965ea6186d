"""The sink's address: a PostgreSQL URL parsed into libpq connection parameters and a schema.

``postgresql://USER@HOST:PORT/DB?schema=NAME``: everything but ``schema`` is libpq's own URI
syntax (``sslmode``, ``service``, ``connect_timeout``, several hosts...), so the password comes
from libpq's usual sources: ``PGPASSWORD``, the password file (``~/.pgpass``, or ``PGPASSFILE``)
or a connection service file (``?service=NAME``; ``~/.pg_service.conf`` or ``PGSERVICEFILE``).

A password written into the URL still works, but it is never logged or written: geoseg
shows the URL only as :attr:`SinkTarget.masked`, dumps configs through
:func:`geoseg.config.mask_password` (``manifest.json``), and scrubs it from the database
driver's messages (:meth:`SinkTarget.scrub`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from geoseg.config import mask_password
from geoseg.errors import ConfigError

DEFAULT_SCHEMA = "geoseg"
"""Schema of the tables when the URL names none (``?schema=NAME``)."""

SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
FORM = "postgresql://USER@HOST:PORT/DB[?schema=NAME]"


@dataclass(frozen=True)
class SinkTarget:
    """Where to load: libpq ``conninfo`` (may hold a password: never show it), ``schema``, the ``masked`` URL."""

    conninfo: str = field(repr=False)
    schema: str
    masked: str
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def parse(cls, url: str, source: str = "sink") -> SinkTarget:
        """Check ``url`` (``source``: the key or flag it came from, for messages); :class:`ConfigError` if unusable."""
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        masked = mask_password(url)
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not url.startswith(f"{parts.scheme}://"):
            raise ConfigError(f"{source} {masked!r}: not a PostgreSQL URL; give {FORM}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in reversed(query) if k == "schema"), DEFAULT_SCHEMA)
        if not SCHEMA_NAME.match(schema):
            raise ConfigError(f"{source} {masked}: schema {schema!r} is not a plain SQL name (a letter or _, then "
                              "letters, digits or _; at most 63); choose another ?schema=")
        rest = [(k, v) for k, v in query if k != "schema"]
        base = url.split("?", 1)[0].split("#", 1)[0]  # not urlunsplit: it drops the // of postgresql:///db
        conninfo = base + ("?" + urlencode(rest, quote_via=quote) if rest else "")
        secrets = [v for k, v in rest if k == "password" and v]
        try:  # userinfo ``user:password@`` (percent-encoded)
            if parts.password:
                secrets += [parts.password, unquote(parts.password)]
        except ValueError:
            pass
        target = cls(conninfo, schema, masked, tuple(sorted(set(secrets), key=len, reverse=True)))
        try:
            conninfo_to_dict(conninfo)  # libpq's own check: unknown parameters, bad syntax
        except ProgrammingError as exc:
            raise ConfigError(f"{source} {masked}: {target.scrub(str(exc))}; give {FORM}") from None
        return target

    @property
    def has_password(self) -> bool:
        return bool(self.secrets)

    def scrub(self, text: str) -> str:
        """``text`` (e.g. a driver error) with any password of the URL replaced by ``***``."""
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def describe(self) -> str:
        """The masked URL and the schema, as messages show them."""
        return f"{self.masked} (schema {self.schema})"
