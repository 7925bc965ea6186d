"""Where files live: local paths or ``s3://bucket/key`` URIs, behind one small set of functions.

S3 goes through boto3 with the standard AWS credential chain (environment, shared
profile, instance role / IRSA) and honours ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``
for S3-compatible stores (MinIO, moto, Ceph). GDAL reads ``s3://`` rasters as ``/vsis3/``;
:func:`configure_gdal_s3` maps the same endpoint variables onto GDAL's config options.

Writes are atomic at the object level: local files are written under a temporary name
and renamed; an S3 object only becomes visible when its (multipart) upload completes.
"""

from __future__ import annotations

import atexit
import fnmatch
import functools
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

from geoseg.errors import InputError, OutputError

log = logging.getLogger(__name__)

MULTIPART_THRESHOLD = 64 * 1024 * 1024
"""Bytes from which uploads go multipart (in parts of this size)."""


def is_remote(uri: str | Path) -> bool:
    """True for ``s3://`` URIs."""
    return str(uri).startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise InputError(f"{uri}: not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str | Path, *parts: str) -> str:
    """Join path parts onto a local path or an S3 URI (always with ``/`` for S3)."""
    if is_remote(base):
        out = str(base).rstrip("/")
        for p in parts:
            out += "/" + p.strip("/")
        return out
    return str(Path(base, *parts))


def name(uri: str | Path) -> str:
    """The last path component (file name) of a path or URI."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str | Path) -> str:
    """The containing directory (or S3 prefix) of a path or URI."""
    if is_remote(uri):
        return str(uri).rstrip("/").rsplit("/", 1)[0]
    return str(Path(uri).parent)


@functools.lru_cache(maxsize=1)
def s3_client():
    """A boto3 S3 client from the standard AWS chain; ``AWS_ENDPOINT_URL(_S3)`` is honoured by botocore."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}))


def endpoint_url() -> str | None:
    """The custom S3 endpoint from the environment, if any."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


GDAL_HTTP_RETRIES = {"GDAL_HTTP_MAX_RETRY": "5", "GDAL_HTTP_RETRY_DELAY": "1"}
"""GDAL's retries of throttled / failed HTTP reads (429, 5xx), set unless already set: without
them one ``SlowDown`` fails a tile read, or degrades a scene's statistics to the readable strips."""


def configure_gdal_s3() -> None:
    """Point GDAL's ``/vsis3/`` at ``AWS_ENDPOINT_URL(_S3)`` unless ``AWS_S3_ENDPOINT`` is already set.

    GDAL reads its config options from the environment; path-style addressing is used
    for custom endpoints (what S3-compatible servers expect). HTTP retries
    (:data:`GDAL_HTTP_RETRIES`) are turned on unless set. Runs in every process that
    opens an ``s3://`` raster (the driver and the model actors).
    """
    for key, value in GDAL_HTTP_RETRIES.items():
        os.environ.setdefault(key, value)
    url = endpoint_url()
    if not url or os.environ.get("AWS_S3_ENDPOINT"):
        return
    parsed = urlparse(url)
    os.environ["AWS_S3_ENDPOINT"] = parsed.netloc or parsed.path
    os.environ.setdefault("AWS_HTTPS", "NO" if parsed.scheme == "http" else "YES")
    os.environ.setdefault("AWS_VIRTUAL_HOSTING", "FALSE")


def _s3_error(uri: str, exc: Exception, what: str) -> str:
    hint = "check the bucket, key, credentials and AWS_ENDPOINT_URL"
    if _error_code(exc) in ("403", "AccessDenied", "Forbidden"):
        # S3 answers 403 rather than 404 for a missing key when s3:ListBucket is not granted
        hint = ("access denied: the credentials need s3:GetObject/PutObject/DeleteObject on the keys and "
                "s3:ListBucket on the bucket (without it S3 reports a missing key as 403)")
    return f"{uri}: cannot {what} ({type(exc).__name__}: {exc}); {hint}"


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return (response or {}).get("Error", {}).get("Code") if isinstance(response, dict) else None


def exists(uri: str | Path) -> bool:
    """Whether a file or object exists at ``uri``."""
    if not is_remote(uri):
        return Path(uri).exists()
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(str(uri))
    try:
        s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return False
        raise InputError(_s3_error(str(uri), exc, "check")) from exc
    except BotoCoreError as exc:  # no credentials, endpoint unreachable, ...
        raise InputError(_s3_error(str(uri), exc, "check")) from exc


def read_bytes(uri: str | Path) -> bytes:
    """The whole content of ``uri``; :class:`InputError` if it cannot be read."""
    if not is_remote(uri):
        try:
            return Path(uri).read_bytes()
        except OSError as exc:
            raise InputError(f"{uri}: cannot read ({exc})") from exc
    bucket, key = split_s3(str(uri))
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise InputError(_s3_error(str(uri), exc, "read")) from exc


def write_bytes(uri: str | Path, data: bytes) -> str:
    """Write ``data`` to ``uri`` atomically (temp file + rename locally; one PUT on S3)."""
    if not is_remote(uri):
        path = Path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"{uri}: cannot write ({exc}); choose a writable output location") from exc
        return str(path)
    bucket, key = split_s3(str(uri))
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data)
    except Exception as exc:
        raise OutputError(_s3_error(str(uri), exc, "write")) from exc
    return str(uri)


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create the object ``uri`` holding ``data`` only if it does not exist (a conditional ``PUT``,
    ``If-None-Match: *``): True if created, False if it already existed."""
    bucket, key = split_s3(uri)
    try:
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
    except Exception as exc:
        if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
            return False
        raise OutputError(_s3_error(uri, exc, "write")) from exc
    return True


def upload(local: str | Path, uri: str | Path) -> str:
    """Copy local file ``local`` to ``uri`` (multipart above :data:`MULTIPART_THRESHOLD`)."""
    if not is_remote(uri):
        dst = Path(uri)
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
            shutil.copyfile(local, tmp)
            os.replace(tmp, dst)
        except OSError as exc:
            raise OutputError(f"{uri}: cannot write ({exc}); choose a writable output location") from exc
        return str(dst)
    from boto3.s3.transfer import TransferConfig

    bucket, key = split_s3(str(uri))
    cfg = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD)
    try:
        s3_client().upload_file(str(local), bucket, key, Config=cfg)
    except Exception as exc:
        raise OutputError(_s3_error(str(uri), exc, "upload to")) from exc
    return str(uri)


def copy(src: str, dst: str) -> str:
    """Copy one object to another key of the same store (server-side on S3)."""
    if not is_remote(src):
        return upload(src, dst)
    sb, sk = split_s3(src)
    db, dk = split_s3(dst)
    try:
        s3_client().copy({"Bucket": sb, "Key": sk}, db, dk)
    except Exception as exc:
        raise OutputError(_s3_error(dst, exc, "copy to")) from exc
    return dst


def download(uri: str | Path, local: str | Path) -> Path:
    """Copy ``uri`` to the local file ``local`` (atomically)."""
    local = Path(local)
    if not is_remote(uri):
        upload(uri, local)
        return local
    bucket, key = split_s3(str(uri))
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        s3_client().download_file(bucket, key, str(tmp))
        os.replace(tmp, local)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(_s3_error(str(uri), exc, "download")) from exc
    return local


def listdir(prefix: str | Path) -> list[str]:
    """Names of the files directly inside directory/prefix ``prefix`` (sorted; [] if none)."""
    if not is_remote(prefix):
        p = Path(prefix)
        return sorted(c.name for c in p.iterdir() if c.is_file()) if p.is_dir() else []
    bucket, key = split_s3(str(prefix))
    key = key.rstrip("/") + "/" if key else ""
    names: list[str] = []
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key, Delimiter="/"):
            # a "folder" marker object (key == prefix, as consoles create) is not a file
            names.extend(o["Key"][len(key):] for o in page.get("Contents", []) if len(o["Key"]) > len(key))
    except Exception as exc:
        raise InputError(_s3_error(str(prefix), exc, "list")) from exc
    return sorted(names)


def delete(uri: str | Path) -> None:
    """Remove one file/object (no error if it is absent)."""
    if not is_remote(uri):
        Path(uri).unlink(missing_ok=True)
        return
    bucket, key = split_s3(str(uri))
    try:
        s3_client().delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise OutputError(_s3_error(str(uri), exc, "delete")) from exc


def delete_tree(uri: str | Path) -> None:
    """Remove a directory / every object under an S3 prefix (no error if absent)."""
    if not is_remote(uri):
        shutil.rmtree(uri, ignore_errors=True)
        return
    bucket, key = split_s3(str(uri))
    key = key.rstrip("/") + "/"
    client = s3_client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objs:
                errors = client.delete_objects(Bucket=bucket, Delete={"Objects": objs, "Quiet": True}).get("Errors")
                if errors:
                    raise OutputError(f"{uri}: cannot delete {len(errors)} object(s), e.g. {errors[0].get('Key')}: "
                                      f"{errors[0].get('Code')} {errors[0].get('Message')}; check the credentials")
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(_s3_error(str(uri), exc, "delete")) from exc


def glob(pattern: str) -> list[str]:
    """Expand a local glob or one on S3 (``s3://bucket/prefix/*.tif``; ``*`` does not cross ``/``). Sorted."""
    if not is_remote(pattern):
        import glob as _glob

        return sorted(_glob.glob(pattern))
    bucket, key = split_s3(pattern)
    cut = min((key.find(ch) for ch in "*?[" if ch in key), default=len(key))
    prefix = key[:cut]
    # wildcards in the last path component only: list that "folder", not everything below it
    listing = {"Prefix": prefix, **({"Delimiter": "/"} if "/" not in key[cut:] else {})}
    out = []
    try:
        for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, **listing):
            for o in page.get("Contents", []):
                k = o["Key"]
                if fnmatch.fnmatchcase(k, key) and k.count("/") == key.count("/"):
                    out.append(f"s3://{bucket}/{k}")
    except Exception as exc:
        raise InputError(_s3_error(pattern, exc, "list")) from exc
    return sorted(out)


def local_copy(uri: str | Path, suffix: str = "") -> Path:
    """A local path with the content of ``uri``: ``uri`` itself when local, else a downloaded temp file."""
    if not is_remote(uri):
        return Path(uri)
    fd, tmp = tempfile.mkstemp(prefix="geoseg-", suffix=suffix or "-" + name(uri))
    os.close(fd)
    try:
        return download(uri, tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def local_tree(uri: str | Path) -> Path:
    """A local directory with the files under ``uri`` (e.g. a checkpoint directory on S3).

    A downloaded copy is a temporary directory, removed when this process exits (it is
    what the returned path is used for until then: e.g. the model weights).
    """
    if not is_remote(uri):
        return Path(uri)
    names = listdir(uri)
    if not names:
        raise InputError(f"{uri}: no files under this prefix; check the URI")
    d = Path(tempfile.mkdtemp(prefix="geoseg-"))
    try:
        for n in names:
            download(join(uri, n), d / n)
    except BaseException:
        shutil.rmtree(d, ignore_errors=True)
        raise
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d
