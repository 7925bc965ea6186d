"""The monitoring history store: every file the monitor keeps under its output root (local or ``s3://``).

Layout under ``root``::

    regions/<region>/periods/<period>/     segment outputs of that period (class map, confidence, stats)
    regions/<region>/changes/<a>_to_<b>/   geoseg change outputs between two stored periods
    history/class_areas.csv                region, period, class areas (one row per class)
    history/change_summary.csv             region, period_before, period: areas of change, named types, guards
    history/transitions.csv                region, period_before, period, from_class, to_class, pixels, area_ha
    history/change_polygons/<region>/<period>.parquet
                                           GeoParquet (EPSG:4326) of one comparison's change polygons, with
                                           region/period columns; together one GeoParquet dataset
    history/state.json                     what is stored: periods and changes per region (written last)

Every file is written whole and replaced atomically (temp file + rename locally, one
PUT on S3), rows keyed by ``(region, period)`` replace earlier rows with the same key,
and ``state.json`` is updated last: a run interrupted between two writes redoes that
step and leaves no duplicate. The polygons, the only part that grows with the mapped
area, get one file per comparison, so an update writes only its own polygons (the CSVs,
a few rows per region and period, are rewritten whole). All I/O goes through
:mod:`geoseg.io.storage`.
"""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

from geoseg.errors import InputError
from geoseg.io import storage

log = logging.getLogger(__name__)

HISTORY_CRS = "EPSG:4326"
"""CRS of the polygon history (regions may come in different CRSs)."""
_STRING_COLUMNS = {"region": str, "period": str, "period_before": str, "confirm_period": str}


class HistoryStore:
    """Reads and appends the monitor's history under ``root`` (a directory or an ``s3://`` prefix)."""

    def __init__(self, root: str):
        self.root = str(root).rstrip("/") if storage.is_remote(root) else str(root)

    # ----------------------------------------------------------------- locations

    def uri(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def period_dir(self, region: str, period: str) -> str:
        """Where the segment outputs of ``region`` for ``period`` go."""
        return self.uri("regions", region, "periods", period)

    def change_dir(self, region: str, before: str, after: str) -> str:
        """Where the change outputs between two periods of ``region`` go."""
        return self.uri("regions", region, "changes", f"{before}_to_{after}")

    # ----------------------------------------------------------------- state

    def state(self) -> dict:
        """``{"regions": {name: {"periods": {period: entry}, "changes": {period: entry}}}}`` (empty if new)."""
        uri = self.uri("history", "state.json")
        if not storage.exists(uri):
            return {"regions": {}}
        try:
            return json.loads(storage.read_bytes(uri))
        except ValueError as exc:
            raise InputError(f"{uri}: not valid JSON ({exc}); restore it from the history files or remove the "
                             "output root to start over") from exc

    def region_state(self, region: str) -> dict:
        reg = self.state()["regions"].get(region, {})
        return {"periods": reg.get("periods", {}), "changes": reg.get("changes", {})}

    def _commit(self, region: str, kind: str, period: str, entry: dict) -> None:
        state = self.state()
        reg = state["regions"].setdefault(region, {"periods": {}, "changes": {}})
        reg.setdefault(kind, {})[period] = entry
        state["updated"] = datetime.now(UTC).isoformat()
        storage.write_bytes(self.uri("history", "state.json"), (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())

    # ----------------------------------------------------------------- appends

    def record_period(self, region: str, period: str, class_rows: list[dict], entry: dict) -> None:
        """Store ``period`` of ``region``: its class-area rows, then the state entry."""
        rows = [{"region": region, "period": period, **r} for r in class_rows]
        self._upsert_csv("class_areas.csv", region, period, rows)
        self._commit(region, "periods", period, entry)

    def record_change(self, region: str, before: str, after: str, polygons, transitions: list[dict],
                      summary: dict, entry: dict) -> None:
        """Store the change ``before -> after`` of ``region``: polygons, table, summary, then the state entry."""
        key = {"region": region, "period_before": before, "period": after}
        self._upsert_polygons(region, after, polygons, key)
        self._upsert_csv("transitions.csv", region, after, [{**key, **r} for r in transitions])
        self._upsert_csv("change_summary.csv", region, after, [{**key, **summary}])
        self._commit(region, "changes", after, entry)

    # ----------------------------------------------------------------- readers

    def table(self, name: str):
        """A history CSV as a DataFrame (empty if absent); period columns stay strings."""
        import pandas as pd

        uri = self.uri("history", name)
        if not storage.exists(uri):
            return pd.DataFrame()
        return pd.read_csv(io.BytesIO(storage.read_bytes(uri)), dtype=_STRING_COLUMNS, keep_default_na=False,
                           na_values=[""])

    def polygons_uri(self, region: str, period: str) -> str:
        """The GeoParquet file of the change polygons of ``region`` up to ``period``."""
        return self.uri("history", "change_polygons", region, f"{period}.parquet")

    def change_polygons(self, region: str | None = None):
        """The committed polygon history (of ``region``, or all) as one GeoDataFrame; None if there is none.

        Loads every selected comparison into memory: for large histories read the files
        (:meth:`polygons_uri`) one at a time, or the directory as a dataset with pyarrow.
        """
        import geopandas as gpd
        import pandas as pd

        regions = self.state()["regions"]
        frames = [gpd.read_parquet(io.BytesIO(storage.read_bytes(self.polygons_uri(name, period))))
                  for name, reg in sorted(regions.items()) if region in (None, name)
                  for period in sorted(reg.get("changes", {}))]
        if not frames:
            return None
        return gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=HISTORY_CRS)

    def read_polygons(self, uri: str, layer: str):
        """A change-polygon file written by ``geoseg change`` (local or ``s3://``)."""
        import geopandas as gpd

        local = storage.local_copy(uri, suffix=".gpkg")
        try:
            return gpd.read_file(local, layer=layer)
        finally:
            if storage.is_remote(uri):
                local.unlink(missing_ok=True)

    # ----------------------------------------------------------------- writers

    def _upsert_csv(self, name: str, region: str, period: str, rows: list[dict]) -> None:
        import pandas as pd

        old = self.table(name)
        new = pd.DataFrame(rows)
        if len(old):
            old = old[~((old["region"] == region) & (old["period"] == period))]
            new = pd.concat([old, new], ignore_index=True)
        sort = [c for c in ("region", "period") if c in new.columns]
        new = new.sort_values(sort, kind="stable", ignore_index=True) if len(new) else new
        storage.write_bytes(self.uri("history", name), new.to_csv(index=False).encode())

    def _upsert_polygons(self, region: str, period: str, polygons, key: dict) -> None:
        import pandas as pd

        new = polygons.to_crs(HISTORY_CRS) if polygons.crs is not None else polygons.set_crs(HISTORY_CRS)
        for i, (k, v) in enumerate(key.items()):
            new.insert(i, k, pd.Series([v] * len(new), dtype=object, index=new.index))
        buf = io.BytesIO()
        new.to_parquet(buf, index=False)
        storage.write_bytes(self.polygons_uri(region, period), buf.getvalue())
