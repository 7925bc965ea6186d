"""Shared test helpers: plain constants, functions and classes (fixtures live in the conftest.py files).

Repository paths and the sample data; the 4-class scheme of the bundled models; writers and
readers of small rasters (scenes, class maps, the two dates of a change); what a model needs of
a scene; and the parsers the infra tests check deployment files with (Dockerfile,
.dockerignore, cron schedules). Import them as ``from tests.helpers import ...``.
"""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import numpy as np
import rasterio
import yaml
from rasterio.transform import from_origin

# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"
SHARED = REPO.parent / "shared" / "data"
NC_IMAGE = SAMPLE / "nc_raleigh_landsat7_2000.tif"
NC_LABELS = SAMPLE / "nc_raleigh_labels_4class.tif"
ZION_IMAGE = SAMPLE / "zion_north_landsat8_2015_crop.tif"
ZION_LABELS = SAMPLE / "zion_north_labels_4class_crop.tif"
PUCALLPA = REPO / "data" / "pucallpa"
WEIGHTS = REPO / "geoseg" / "model" / "weights"
UNET_MODEL = WEIGHTS / "landcover-unet-mnv2"
SPECTRAL_MODEL = WEIGHTS / "landcover-spectral-index"

# ---------------------------------------------------------------------------------------------
# The class scheme of the bundled models
# ---------------------------------------------------------------------------------------------

CLASSES = [
    {"id": 0, "name": "other", "color": "#e3d9a6"},
    {"id": 1, "name": "forest", "color": "#1b7837"},
    {"id": 2, "name": "water", "color": "#2166ac"},
    {"id": 3, "name": "urban", "color": "#d6301d"},
]
CLASS_NAMES = [c["name"] for c in CLASSES]


def small_card(**kw):
    """A model card of a small U-Net (resnet18 encoder, depth 3) for the 4 classes on green/red/nir; ``kw`` overrides."""
    from geoseg.model.checkpoint import ModelCard

    base = dict(name="t", arch="unet", encoder="resnet18", arch_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
                bands=["green", "red", "nir"], classes=CLASSES, tile_size=128, halo=16)
    base.update(kw)
    return ModelCard(**base)


def segment_config(inputs, out, **kw):
    """A segment config for an in-process (no Ray) CPU run of ``inputs`` into ``out``: 256 px tiles, 32 px halo."""
    from geoseg.config import SegmentConfig

    base = dict(inputs=[str(p) for p in inputs], output=str(out), tile_size=256, halo=32, device="cpu",
                runtime={"local": True})
    base.update(kw)
    return SegmentConfig(**base)


class PgSchema:
    """A schema of the test PostgreSQL server: the sink URL that loads into it, and queries to check what it holds."""

    def __init__(self, base_url: str, schema: str):
        import psycopg

        self.base_url = base_url
        self.schema = schema
        self.url = f"{base_url}?schema={schema}"
        self.conn = psycopg.connect(base_url, autocommit=True)

    def rows(self, query: str, *params) -> list[tuple]:
        """The rows of ``query`` (none for a statement), ``{s}`` standing for this schema."""
        cur = self.conn.execute(query.replace("{s}", f'"{self.schema}"'), params or None)
        return cur.fetchall() if cur.description else []

    def value(self, query: str, *params):
        return self.rows(query, *params)[0][0]

    def close(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Rasters
# ---------------------------------------------------------------------------------------------

UTM12_30M = from_origin(500000, 4200000, 30, 30)
"""30 m pixels in UTM zone 12N (EPSG:32612): the default grid of the rasters written here."""


def write_stac_items(path: Path, items: list[tuple[str, str, str]]) -> Path:
    """A STAC ItemCollection at ``path`` of ``(id, datetime, image href)`` Items, each with one GeoTIFF asset."""
    import json

    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": i, "properties": {"datetime": when},
         "assets": {"image": {"href": href, "type": "image/tiff; application=geotiff"}}} for i, when, href in items]}))
    return path


def write_raster(path: Path, array: np.ndarray, *, crs: str | None = "EPSG:32612", transform=None, nodata=None,
                 descriptions: list[str] | None = None, tags: dict | None = None, blocksize: int | None = None,
                 compress: str | None = None) -> Path:
    """Write ``array`` (``(bands, rows, cols)`` or ``(rows, cols)``) as a GeoTIFF and return ``path``.

    Tiled in ``blocksize`` x ``blocksize`` blocks when given (else striped); ``tags``: dataset tags.
    """
    arr = array if array.ndim == 3 else array[None]
    profile = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype,
                   crs=crs, transform=transform or UTM12_30M, nodata=nodata)
    if blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    if compress:
        profile.update(compress=compress)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        if descriptions:
            dst.descriptions = tuple(descriptions)
        if tags:
            dst.update_tags(**tags)
    return Path(path)


def read_band(path, band: int = 1) -> np.ndarray:
    """One band of a raster, as an array."""
    with rasterio.open(path) as src:
        return src.read(band)


def crop_raster(src_path: Path, dst_path: Path, window, **profile) -> Path:
    """Copy ``window`` of every band of ``src_path`` (band descriptions kept) to ``dst_path``.

    ``profile``: overrides of the source profile (e.g. block sizes).
    """
    with rasterio.open(src_path) as src:
        prof = {**src.profile, "width": int(window.width), "height": int(window.height),
                "transform": src.window_transform(window), **profile}
        with rasterio.open(dst_path, "w", **prof) as dst:
            dst.write(src.read(window=window))
            dst.descriptions = src.descriptions
    return dst_path


def corrupt_block(src: Path, dst: Path, block: tuple[int, int]) -> None:
    """Copy ``src`` as a 64 x 64-tiled DEFLATE GeoTIFF and overwrite the compressed bytes of one block
    (``(block row, block col)``): every read touching it fails."""
    with rasterio.open(src) as s:
        profile = {**s.profile, "tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate"}
        data = s.read()
        desc = s.descriptions
    with rasterio.open(dst, "w", **profile) as d:
        d.write(data)
        d.descriptions = desc
    with rasterio.open(dst) as d:
        offset = int(d.get_tag_item(f"BLOCK_OFFSET_{block[1]}_{block[0]}", "TIFF", bidx=1))
        size = int(d.get_tag_item(f"BLOCK_SIZE_{block[1]}_{block[0]}", "TIFF", bidx=1))
    with open(dst, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


def scene_inputs(path, card):
    """``(RasterInfo, band indexes, scene statistics)`` of a scene (local path or s3://) for a model card."""
    from geoseg.io.raster import RasterInfo, open_raster, resolve_bands
    from geoseg.model.normalization import scene_stats

    with open_raster(path) as src:
        info = RasterInfo.from_dataset(str(path), src)
        idx = resolve_bands(info, card.bands)
        return info, idx, scene_stats(src, idx, card.normalization)


def normalized_scene(path, card) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene as model input for ``card`` (``(bands, rows, cols)`` float32) and its valid mask."""
    from geoseg.io.raster import open_raster, read_window
    from geoseg.model.normalization import apply

    info, idx, stats = scene_inputs(path, card)
    with open_raster(path) as src:
        data, valid = read_window(src, idx, info.grid.box)
    return apply(data, stats, card.normalization), valid


# ---------------------------------------------------------------------------------------------
# Class maps (vectorizer tests)
# ---------------------------------------------------------------------------------------------

CLASS_MAP_TAGS = {"class_names": ",".join(CLASS_NAMES), "model": "unet-test", "TIFFTAG_DATETIME": "2015:08:18 17:55:12"}


def write_classes(directory: Path, classes: np.ndarray, *, crs="EPSG:32612", transform=UTM12_30M,
                  tags=CLASS_MAP_TAGS, name: str | None = None) -> Path:
    """A striped uint8 class map (nodata 255) in ``directory``; a fresh name unless ``name`` is given."""
    import uuid

    path = directory / (name or f"classes-{uuid.uuid4().hex[:6]}.tif")
    return write_raster(path, classes.astype(np.uint8), crs=crs, transform=transform, nodata=255, tags=tags)


def blobs(seed: int, shape=(48, 53)) -> np.ndarray:
    """A random 4-class map of smooth blobs (median-filtered noise) with 6 % speckle of class 3."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    a = ndimage.median_filter(rng.integers(0, 4, shape).astype(np.uint8), 3)
    a[rng.random(shape) < 0.06] = 3  # speckle
    return a


def majority_blocks(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, mode)``: a 4-class map whose every 2 x 2 block holds one class three times and another once
    (at its top-left pixel), and the ``(height / 2, width / 2)`` map of each block's majority class. The first
    overview of a MODE-resampled COG of ``classes`` is ``mode``; nearest (top-left) or averaging is not."""
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, 4, size=(height // 2, width // 2)).astype(np.uint8)
    minority = ((mode + rng.integers(1, 4, size=mode.shape)) % 4).astype(np.uint8)
    classes = np.repeat(np.repeat(mode, 2, axis=0), 2, axis=1)
    classes[::2, ::2] = minority
    return classes, mode


# ---------------------------------------------------------------------------------------------
# The dates of a change (change detection tests)
# ---------------------------------------------------------------------------------------------

CHANGE_CRS = "EPSG:32718"
CHANGE_ORIGIN = (550000.0, 9080000.0)
PX_HA = 0.09
"""Hectares of one 30 m pixel."""


def write_map(path, arr, *, crs=CHANGE_CRS, transform=None, nodata=255, tags=True) -> str:
    """A uint8 class map (16 x 16 blocks) with geoseg's class tags; or, ``tags=False``, a confidence raster."""
    tags = {"class_names": ",".join(CLASS_NAMES), "class_ids": "0,1,2,3", "source": str(path)} if tags else None
    write_raster(path, arr.astype(np.uint8), crs=crs, transform=transform or from_origin(*CHANGE_ORIGIN, 30, 30),
                 nodata=nodata, blocksize=16, tags=tags)
    return str(path)


def write_pair(tmp_path, before, after, conf_before=None, conf_after=None, **kw) -> tuple[str, str]:
    """``before_classes.tif`` and ``after_classes.tif`` (and their ``*_confidence.tif`` if given) in ``tmp_path``."""
    b = write_map(tmp_path / "before_classes.tif", before, **kw)
    a = write_map(tmp_path / "after_classes.tif", after, **kw)
    for name, conf in (("before", conf_before), ("after", conf_after)):
        if conf is not None:
            write_map(tmp_path / f"{name}_confidence.tif", conf, tags=False, **kw)
    return b, a


def transitions_table(out: Path) -> dict[tuple[str, str], tuple[int, float]]:
    """``transitions.csv`` of a change run: ``{(from, to): (pixels, area_ha)}``."""
    import csv

    with open(out / "transitions.csv", newline="") as f:
        return {(r["from_class"], r["to_class"]): (int(r["pixels"]), float(r["area_ha"])) for r in csv.DictReader(f)}


def expected_codes(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The change raster of two 4-class maps without guards: 0 unchanged, the change code, 255 nodata."""
    from geoseg.change.transitions import change_code

    codes = np.where(b == a, 0, change_code(b, a, 4)).astype(np.uint8)
    codes[(b == 255) | (a == 255)] = 255
    return codes


# ---------------------------------------------------------------------------------------------
# Deployment files: YAML, Dockerfile, .dockerignore, cron
# ---------------------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[dict]:
    """The non-empty documents of a YAML file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comment lines dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continued instruction, as Docker does
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        instr, _, args = (buf + line).partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    assert not buf, "Dockerfile ends inside a continued instruction"
    return out


class Dockerfile:
    """A single-stage Dockerfile: its instructions, ARG defaults, base image, WORKDIR, labels, USER, ENV, COPYs."""

    def __init__(self, path: Path):
        self.instructions = dockerfile_instructions(path.read_text())
        self.args: dict[str, str] = {}
        for instr, args in self.instructions:
            if instr == "ARG" and "=" in args:
                key, _, value = args.partition("=")
                self.args.setdefault(key.strip(), value.strip().strip('"'))
        froms = [a for i, a in self.instructions if i == "FROM"]
        assert len(froms) == 1, f"expected one build stage, found FROM {froms}"
        self.base = self.expand(froms[0].split()[0])
        workdirs = [a for i, a in self.instructions if i == "WORKDIR"]
        assert workdirs, "the Dockerfile sets no WORKDIR (entrypoint paths are relative to it)"
        self.workdir = workdirs[-1]
        labels = " ".join(a for i, a in self.instructions if i == "LABEL")
        self.labels = dict(re.findall(r'([\w.\-]+)="([^"]*)"', labels))
        users = [a for i, a in self.instructions if i == "USER"]
        self.user = users[-1] if users else "root"
        """The user the image runs as (the last USER)."""
        env = " ".join(a for i, a in self.instructions if i == "ENV")
        self.env = {k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', env)}

    def expand(self, s: str) -> str:
        """``s`` with ``${ARG}`` / ``$ARG`` replaced by the ARG defaults, recursively (defaults may name ARGs)."""
        for _ in range(10):
            s, n = re.subn(r"\$\{(\w+)\}|\$(\w+)", lambda m: self.args[m.group(1) or m.group(2)], s)
            if not n:
                return s
        raise AssertionError(f"ARG defaults refer to each other in a loop: {s}")

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY, flags dropped."""
        out = []
        for instr, args in self.instructions:
            if instr == "COPY":
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                out.append((words[:-1], words[-1]))
        return out

    def image_layout(self) -> set[str]:
        """Repository paths present in the image at the same path relative to WORKDIR.

        COPY of a repo path to the same relative destination, minus what a later RUN removes with
        `rm -rf` (the source tree after `pip install .`).
        """
        present: set[str] = set()
        for instr, args in self.instructions:
            if instr == "COPY":
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                dest = words[-1].rstrip("/")
                for src in (w.rstrip("/") for w in words[:-1]):
                    # a top-level file copied into WORKDIR, or a path copied to the same relative path
                    if (dest in ("", ".") and "/" not in src) or dest.removeprefix("./") == src:
                        present.add(src)
            elif instr == "RUN":
                for m in re.finditer(r"rm -rf ([^&;|]+)", args):
                    for p in m.group(1).split():
                        present.discard(p.strip().rstrip("/").removeprefix("./"))
        return present


def in_image(layout: set[str], relpath: str) -> bool:
    """Whether ``relpath`` is under one of the paths of an image layout (:meth:`Dockerfile.image_layout`)."""
    rel = relpath.rstrip("/")
    return any(rel == p or rel.startswith(p + "/") for p in layout)


def _glob_regex(pattern: str) -> re.Pattern:
    """Docker's .dockerignore globs: `*` and `?` within a path component, `**` across components."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(patterns: list[str], relpath: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relpath.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pat = raw[1:] if negate else raw
        pat = pat.strip().strip("/")
        rx = _glob_regex(pat)
        if any(rx.match(c) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns(path: Path) -> list[str]:
    """The patterns of a .dockerignore file (comments and blank lines dropped)."""
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


CRON_FIELDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}),
               (1, 12, {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}),
               (0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])})]
CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def valid_cron(expr: str) -> bool:
    """A standard 5-field cron expression (as Kubernetes CronJob accepts), or one of its macros."""
    expr = expr.strip()
    if expr in CRON_MACROS:
        return True
    fields = expr.split()
    if len(fields) != 5:
        return False

    def value(tok: str, lo: int, hi: int, names: dict) -> int | None:
        v = names.get(tok.lower()) if names else None
        if v is None:
            if not tok.isdigit():
                return None
            v = int(tok)
        return v if lo <= v <= hi else None

    for field, (lo, hi, names) in zip(fields, CRON_FIELDS):
        for item in field.split(","):
            rng, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return False
            if rng in ("*", "?"):
                continue
            a, dash, b = rng.partition("-")
            va = value(a, lo, hi, names)
            vb = value(b, lo, hi, names) if dash else va
            if va is None or vb is None or vb < va:
                return False
    return True


def train_config(tmp_path, **kw):
    """A small, fast :class:`~geoseg.config.TrainConfig` on the bundled Zion crop (in process unless ``trainer``)."""
    from geoseg.config import TrainConfig

    base = dict(output=str(tmp_path / "ck"), bands=["green", "red", "nir"], classes=CLASSES,
                arch_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
                scenes=[{"image": str(ZION_IMAGE), "labels": str(ZION_LABELS)}],
                chip_size=64, batch_size=8, steps=30, eval_every=15, patience=5, lr=3e-3, threads=2,
                trainer={"ray": False})
    base.update(kw)
    return TrainConfig(**base)


# ---------------------------------------------------------------------------------------------
# STAC, external tools (GDAL's command line, QGIS, Chromium)
# ---------------------------------------------------------------------------------------------

STAC_SCHEMAS = Path(__file__).parent / "stac_schemas"


def stac_registry():
    """A ``referencing`` registry of the STAC 1.1 core schemas (from pystac) and the extension schemas shipped in
    ``tests/stac_schemas`` (see its README); any other URI raises instead of being fetched."""
    import json

    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource
    from referencing.exceptions import NoSuchResource

    schemas = dict(get_local_schema_cache())
    for f in STAC_SCHEMAS.glob("*.json"):
        doc = json.loads(f.read_text())
        schemas[doc["$id"].rstrip("#")] = doc

    def refuse(uri: str):
        raise NoSuchResource(ref=uri)

    return Registry(retrieve=refuse).with_resources((u, Resource.from_contents(s)) for u, s in schemas.items()), schemas


def validate_stac(doc: dict) -> None:
    """Validate a STAC Item, Collection or Catalog against its core schema and every extension it declares
    (offline); raises ``jsonschema.ValidationError``."""
    from jsonschema import Draft7Validator

    registry, schemas = stac_registry()
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}[doc["type"]]
    core = f"https://schemas.stacspec.org/v{doc['stac_version']}/{kind}-spec/json-schema/{kind}.json"
    for uri in [core, *doc.get("stac_extensions", [])]:
        Draft7Validator(schemas[uri], registry=registry).validate(doc)


def require_tool(path: str) -> str:
    """``path`` of an external program a test needs: skipped where it is missing, except in CI (``CI=true``),
    where ``.ci/run`` installs it and its absence fails the test."""
    import os
    import shutil

    import pytest

    found = shutil.which(path)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{path} is not installed; .ci/run installs it")
        pytest.skip(f"{path} is not installed (apt-get install it; .ci/run does)")
    return found


def read_png(path) -> np.ndarray:
    """A PNG as an ``(rows, cols, 4)`` RGBA array, decoded by Pillow."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def spiral(n: int) -> np.ndarray:
    """An ``n x n`` uint8 map with a one-pixel-wide spiral of class 1 on class 0 (one 4-connected region)."""
    a = np.zeros((n, n), np.uint8)
    r0, c0, r1, c1 = 0, 0, n - 1, n - 1
    while r0 <= r1 and c0 <= c1:
        a[r0, c0:c1 + 1] = 1
        a[r0:r1 + 1, c1] = 1
        if r1 - r0 >= 2:
            a[r1, c0 + 2:c1 + 1] = 1
        if c1 - c0 >= 2:
            a[r0 + 2:r1 + 1, c0 + 2] = 1
        r0, c0, r1, c1 = r0 + 2, c0 + 2, r1 - 2, c1 - 2
    return a


def assert_card_scores_recomputed(path) -> None:
    """The card's pooled held-out mIoU and accuracy, recomputed: the saved model run over the validation block
    of :func:`train_config`'s scene (columns 410-511 of the Zion crop) and scored against the reference labels
    with a numpy confusion matrix."""
    import json

    import pytest

    from geoseg.model.checkpoint import load_checkpoint
    from geoseg.model.predict import Predictor

    card = json.loads((Path(path) / "model.json").read_text())
    ckpt = load_checkpoint(path)
    x, valid = normalized_scene(ZION_IMAGE, ckpt.card)
    block = (slice(0, 512), slice(410, 512))
    pred = Predictor.from_checkpoint(ckpt, "cpu").classify(x[None][(slice(None), slice(None), *block)])[0][0]
    labels = read_band(ZION_LABELS)[block]
    ok = (labels != 255) & valid[block]
    cm = np.bincount(labels[ok].astype(int) * 4 + pred[ok], minlength=16).reshape(4, 4)
    present = (cm.sum(0) + cm.sum(1)) > 0
    iou = np.diag(cm)[present] / (cm.sum(0) + cm.sum(1) - np.diag(cm))[present]
    pooled = card["metrics"]["pooled"]
    assert pooled["pixels"] == ok.sum()
    assert pooled["miou"] == pytest.approx(iou.mean(), abs=0.005)
    assert pooled["overall_accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=0.005)


# ---------------------------------------------------------------------------------------------
# What an output location holds (bad-input tests: a failed run leaves it byte-identical)
# ---------------------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None, files as their bytes): what the output location holds."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def prior_output(tmp_path: Path) -> tuple[Path, dict[str, bytes | None]]:
    """An output folder that already holds something (a file the user keeps there), and its snapshot."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    return out, snapshot(out)
