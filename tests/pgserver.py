"""A throwaway PostgreSQL + PostGIS server for the tests and ``.ci/run``: a temporary directory, 127.0.0.1, a free port.

    python tests/pgserver.py check        # exit 0 when a server can be started here, else say why
    python tests/pgserver.py start DIR    # prints its URL: postgresql://geoseg@127.0.0.1:PORT/geoseg
    python tests/pgserver.py stop DIR     # stops it and removes DIR

Standard library only (``.ci/run`` starts it before the project is installed); the
``pg_url`` fixture (``tests/conftest.py``) starts one itself when ``GEOSEG_TEST_PG_DSN`` is
unset. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (``runuser``) in a directory it owns. It listens on 127.0.0.1 only (no Unix socket).
Authentication: ``trust`` for the superuser ``geoseg``; members of the role ``password_users``
must give their password (scram-sha-256), which is how the tests check that geoseg takes
passwords from libpq's sources. Durability is off (``fsync``, ``synchronous_commit``,
``full_page_writes``) unless ``--durable``: a test server, not a database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

SUPERUSER = "geoseg"
DATABASE = "geoseg"
PASSWORD_ROLE = "password_users"
FAST = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off",)


def find_bin(name: str) -> str | None:
    """A PostgreSQL program: on PATH, else in the newest ``/usr/lib/postgresql/*/bin`` (Debian)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    return versions[-1] if versions else None


def unavailable() -> str | None:
    """Why no server can be started here (None: it can)."""
    missing = [b for b in ("initdb", "pg_ctl", "psql") if find_bin(b) is None]
    if missing:
        return f"PostgreSQL programs not found ({', '.join(missing)}): apt-get install postgresql postgresql-postgis"
    share = Path(find_bin("initdb") or "").resolve().parents[1]  # /usr/lib/postgresql/15
    controls = glob.glob(f"/usr/share/postgresql/{share.name}/extension/postgis.control") + glob.glob(
        str(share / "share" / "extension" / "postgis.control"))
    if not controls:
        return "PostGIS is not installed for this PostgreSQL: apt-get install postgresql-postgis"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    return None


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(as_postgres + args, check=True, capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(directory: str | Path, durable: bool = False) -> str:
    """Start a server with its files under ``directory`` (created); return its URL (no password needed)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(d, pw.pw_uid, pw.pw_gid)
    data, log = d / "data", d / "server.log"
    _run([find_bin("initdb") or "initdb", "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
          "--locale=C", "--no-sync"])
    (data / "pg_hba.conf").write_text(f"host all +{PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
                                      "host all all 127.0.0.1/32 trust\n")
    port = free_port()
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' " + ("" if durable else FAST[0])
    try:
        _run([find_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"])
    except subprocess.CalledProcessError as exc:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{tail}") from exc
    psql = [find_bin("psql") or "psql", "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "-d", "postgres",
            "-v", "ON_ERROR_STOP=1", "-q"]
    subprocess.run([*psql, "-c", f"CREATE ROLE {PASSWORD_ROLE} NOLOGIN", "-c", f"CREATE DATABASE {DATABASE}"],
                   check=True, capture_output=True, text=True)
    (d / "port").write_text(str(port))
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"


def stop(directory: str | Path) -> None:
    """Stop the server under ``directory`` (if running) and remove ``directory``."""
    d = Path(directory)
    if (d / "data" / "postmaster.pid").exists():
        try:
            _run([find_bin("pg_ctl") or "pg_ctl", "-D", str(d / "data"), "-m", "immediate", "-w", "stop"])
        except subprocess.CalledProcessError as exc:
            print(f"pg_ctl stop: {exc.stderr}", file=sys.stderr)
    shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "start", "stop") or (argv[0] != "check" and len(argv) < 2):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] in ("check", "start"):
        reason = unavailable()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        if argv[0] == "start":
            print(start(argv[1], durable="--durable" in argv))
    else:
        stop(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
