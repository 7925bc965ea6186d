"""The tile journal: finished tiles saved under the output prefix so that a rerun resumes.

A run appends the results of finished tiles (class and confidence cores, class counts
and areas; with a quality source, the flag codes and their counts and areas) in compressed chunks to ``<output>/.geoseg-journal/<run key>/``, local or
``s3://``. Each chunk is one atomic write (temp file + rename, or one S3 PUT), so a
driver killed at any moment leaves only whole chunks (a chunk that cannot be read
anyway, e.g. after a crash of the machine, is skipped and its tiles computed again).
Rerunning the same command finds the journal by its key (inputs, grids, bands,
normalisation, model weights and card, device, tiling, AOI geometry: everything a tile's
result depends on, see ``pipeline._journal_key``), replays the chunks into the stitcher
and only sends the remaining tiles to the workers. Tile predictions are deterministic,
so the published rasters are pixel-identical to an uninterrupted run. The journal is
removed once outputs are published; after a run that failed on some tiles it is kept,
so the rerun retries only those.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
import uuid
import zipfile
from collections.abc import Iterator

import numpy as np

from geoseg.errors import InputError
from geoseg.io import storage
from geoseg.model.predict import TileResult
from geoseg.tiling import TileGrid

log = logging.getLogger(__name__)

JOURNAL_DIR = ".geoseg-journal"


def run_key(parts: dict) -> str:
    """A stable 16-hex-digit key for a JSON-serialisable description of what a run computes."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class TileJournal:
    """Chunks of finished :class:`~geoseg.model.predict.TileResult` for the scenes of one run.

    ``every_tiles`` / ``every_s``: a chunk is written once that many tiles are buffered,
    or that many seconds passed since the last write (whichever comes first). Memory is
    bounded by the buffered tiles.
    """

    def __init__(self, output: str, key: str, grids: list[TileGrid], every_tiles: int = 64, every_s: float = 60.0):
        self.root = storage.join(output, JOURNAL_DIR, key)
        self.grids = grids
        self.every_tiles = every_tiles
        self.every_s = every_s
        self._buffer: list[tuple[int, TileResult]] = []
        self._last = time.monotonic()
        self.chunks_written = 0
        self.tiles_written = 0  # tiles saved by this run (the journal also holds those it restored)
        self.seconds = 0.0  # spent writing chunks

    def restore(self) -> Iterator[tuple[int, list[TileResult]]]:
        """Yield ``(scene, results)`` for every saved chunk (one chunk in memory at a time).

        A chunk that cannot be read or decoded is skipped with a warning: its tiles are
        simply not resumed (results are deterministic, so recomputing them is safe).
        """
        for fname in storage.listdir(self.root):
            if not (fname.startswith("chunk-") and fname.endswith(".npz")):
                continue
            try:
                by_scene = self._read_chunk(fname)
            except (InputError, OSError, EOFError, ValueError, KeyError, IndexError, zipfile.BadZipFile) as exc:
                log.warning("journal: skipping unreadable chunk %s (%s: %s); its tiles are computed again",
                            storage.join(self.root, fname), type(exc).__name__, exc)
                continue
            yield from by_scene.items()

    def _read_chunk(self, fname: str) -> dict[int, list[TileResult]]:
        """The tiles of one chunk, by scene (decoded completely, so a damaged chunk yields nothing)."""
        with np.load(io.BytesIO(storage.read_bytes(storage.join(self.root, fname)))) as data:
            counts, areas = data["counts"], data["area_m2"]
            by_scene: dict[int, list[TileResult]] = {}
            for i, (scene, index, skipped) in enumerate(zip(data["scene"], data["tile"], data["skipped"])):
                grid = self.grids[int(scene)]
                cols = grid.shape[1]
                tile = grid.tile(int(index) // cols, int(index) % cols)
                quality = {"quality": data.get(f"quality_{i}"), "flag_counts": data.get(f"flag_counts_{i}"),
                           "flag_area_m2": data.get(f"flag_area_m2_{i}")}
                if skipped:
                    res = TileResult(tile, None, None, counts[i], areas[i], skipped=True, **quality)
                else:
                    conf = data.get(f"confidence_{i}")
                    res = TileResult(tile, data[f"classes_{i}"], conf, counts[i], areas[i], **quality)
                by_scene.setdefault(int(scene), []).append(res)
        return by_scene

    def record(self, scene: int, results: list[TileResult]) -> None:
        """Buffer finished tiles of ``scene``; write a chunk when the buffer is due."""
        self._buffer.extend((scene, r) for r in results)
        if len(self._buffer) >= self.every_tiles or time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> None:
        """Write buffered tiles as one chunk (atomic); no-op when empty."""
        self._last = time.monotonic()
        if not self._buffer:
            return
        t0 = time.perf_counter()
        arrays: dict[str, np.ndarray] = {
            "scene": np.array([s for s, _ in self._buffer], np.int32),
            "tile": np.array([r.tile.index for _, r in self._buffer], np.int32),
            "skipped": np.array([r.skipped for _, r in self._buffer], bool),
            "counts": np.stack([r.counts for _, r in self._buffer]),
            "area_m2": np.stack([r.area_m2 for _, r in self._buffer]),
        }
        for i, (_, r) in enumerate(self._buffer):
            if r.quality is not None:
                assert r.flag_counts is not None and r.flag_area_m2 is not None  # set together (predict._with_quality)
                arrays.update({f"quality_{i}": r.quality, f"flag_counts_{i}": r.flag_counts,
                               f"flag_area_m2_{i}": r.flag_area_m2})
            if not r.skipped:
                assert r.classes is not None  # only skipped tiles carry no arrays
                arrays[f"classes_{i}"] = r.classes
                if r.confidence is not None:
                    arrays[f"confidence_{i}"] = r.confidence
        buf = io.BytesIO()
        # what np.savez_compressed writes (np.load reads it), at zlib level 1: ~3x faster than its level 6 on
        # class and confidence tiles, for a chunk a few % larger; the journal is written while tiles run
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for key, value in arrays.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
        # names sort in write order, so a replay meets tiles in the order they finished
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        storage.write_bytes(storage.join(self.root, name), buf.getvalue())
        self.chunks_written += 1
        self.tiles_written += len(self._buffer)
        self.seconds += time.perf_counter() - t0
        log.debug("journal: saved %d tile(s) to %s", len(self._buffer), name)
        self._buffer.clear()

    def clear(self) -> None:
        """Remove the journal (after the outputs were published)."""
        self._buffer.clear()
        storage.delete_tree(self.root)
        parent = storage.parent(self.root)
        if not storage.is_remote(parent):
            with contextlib.suppress(OSError):  # drop the empty .geoseg-journal directory too
                os.rmdir(parent)
