"""Band names as sensors and catalogues spell them, mapped to geoseg's names (``blue green red nir swir1 swir2``).

A file's band descriptions are matched first as they are (case-insensitive). Where a model
band is not among them, these aliases are tried:

- Sentinel-2 (MSI): ``B02``/``B2`` blue, ``B03`` green, ``B04`` red, ``B08`` nir (``B8A``, the narrow
  NIR, when there is no ``B08``), ``B11`` swir1, ``B12`` swir2;
- Landsat Collection 2 surface reflectance, whose numbering differs by sensor: TM/ETM+ (Landsat
  4, 5, 7) ``SR_B1`` blue .. ``SR_B4`` nir, ``SR_B5`` swir1, ``SR_B7`` swir2; OLI (Landsat 8, 9)
  ``SR_B2`` blue .. ``SR_B5`` nir, ``SR_B6`` swir1, ``SR_B7`` swir2. The sensor comes from the
  file's metadata (``SPACECRAFT_ID``, ``SENSOR_ID``, ``platform``...) or, without it, from the
  bands present (``SR_B6`` exists only for OLI); otherwise the mapping is ambiguous and not used;
- STAC ``eo:bands`` common names: ``nir08`` (nir when there is no ``nir``), ``swir16`` swir1,
  ``swir22`` swir2 (``blue``, ``green``, ``red``, ``nir`` are already geoseg's names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SENTINEL2 = {"b02": "blue", "b03": "green", "b04": "red", "b08": "nir", "b11": "swir1", "b12": "swir2",
             "b8a": "nir08"}
LANDSAT_TM = {"sr_b1": "blue", "sr_b2": "green", "sr_b3": "red", "sr_b4": "nir", "sr_b5": "swir1", "sr_b7": "swir2"}
LANDSAT_OLI = {"sr_b1": "coastal", "sr_b2": "blue", "sr_b3": "green", "sr_b4": "red", "sr_b5": "nir",
               "sr_b6": "swir1", "sr_b7": "swir2"}
STAC_COMMON = {"swir16": "swir1", "swir22": "swir2", "nir08": "nir08"}
FALLBACKS = {"nir": "nir08"}
"""A geoseg band -> the alias that stands in for it when the file lacks it (Sentinel-2 B8A, STAC nir08)."""

SENSOR_TAGS = ("SPACECRAFT_ID", "SPACECRAFT_NAME", "SENSOR_ID", "SENSOR", "PLATFORM", "platform", "instruments",
               "MISSION", "mission")


@dataclass(frozen=True, slots=True)
class BandMapping:
    """How a file's bands were named: ``lookup`` lowercase name -> 1-based index, and which alias table was used."""

    lookup: Mapping[str, int]
    scheme: str | None  # "Sentinel-2", "Landsat TM/ETM+ (Collection 2)", ... or None: descriptions as they are
    aliased: Mapping[str, str]  # geoseg name -> the file's band it was read from

    def describe(self) -> str:
        pairs = ", ".join(f"{src}->{dst}" for dst, src in self.aliased.items())
        return f"{self.scheme} band names ({pairs})" if self.scheme else "the file's band descriptions"


def sensor_from_tags(tags: Mapping[str, str]) -> str | None:
    """``"oli"``, ``"tm"`` (TM/ETM+) or ``"msi"`` (Sentinel-2) from a raster's metadata tags, else None."""
    text = " ".join(str(tags[k]) for k in SENSOR_TAGS if k in tags).lower()
    if re.search(r"landsat[-_ ]?0?[89]\b|\boli\b|oli_tirs", text):
        return "oli"
    if re.search(r"landsat[-_ ]?0?[457]\b|\btm\b|\betm\+?\b", text):
        return "tm"
    if re.search(r"sentinel[-_ ]?2|\bmsi\b", text):
        return "msi"
    return None


def _normalise_s2(name: str) -> str:
    m = re.fullmatch(r"b0?(\d{1,2}|8a)", name)
    return f"b{int(m[1]):02d}" if m and m[1] != "8a" else name


def band_lookup(names: Sequence[str], tags: Mapping[str, str] | None = None) -> BandMapping:
    """Lowercase band name -> 1-based index for ``names`` (a file's descriptions), aliases included."""
    lower = [n.lower() for n in names]
    lookup = {n: i + 1 for i, n in enumerate(lower)}
    sensor = sensor_from_tags(tags or {})
    table: dict[str, str] = {}
    scheme = None
    s2 = [_normalise_s2(n) for n in lower]
    if any(n in SENTINEL2 for n in s2) and sensor in (None, "msi"):
        table, scheme = {n: SENTINEL2[k] for n, k in zip(lower, s2) if k in SENTINEL2}, "Sentinel-2"
    elif any(n.startswith("sr_b") for n in lower):
        oli = sensor == "oli" or (sensor is None and "sr_b6" in lower)
        tm = sensor == "tm" or (sensor is None and "sr_b6" not in lower and "sr_b1" in lower and "sr_b7" in lower)
        if oli or tm:
            src = LANDSAT_OLI if oli else LANDSAT_TM
            table = {n: src[n] for n in lower if n in src}
            scheme = "Landsat OLI (Collection 2)" if oli else "Landsat TM/ETM+ (Collection 2)"
    elif any(n in STAC_COMMON for n in lower):
        table, scheme = {n: STAC_COMMON[n] for n in lower if n in STAC_COMMON}, "STAC common"
    aliased: dict[str, str] = {}
    for src_name, dst in table.items():
        if dst not in lookup:
            lookup[dst] = lookup[src_name]
            aliased[dst] = names[lower.index(src_name)]
    for dst, alt in FALLBACKS.items():
        if dst not in lookup and alt in lookup:
            lookup[dst] = lookup[alt]
            aliased[dst] = aliased.get(alt, names[lookup[alt] - 1])
    return BandMapping(lookup, scheme if aliased else None, aliased)


def ambiguity_hint(names: Sequence[str], tags: Mapping[str, str] | None = None) -> str:
    """Why no alias table applied to Landsat ``SR_B*`` names, for the error message; '' otherwise."""
    lower = [n.lower() for n in names]
    if any(n.startswith("sr_b") for n in lower) and band_lookup(names, tags).scheme is None:
        return (" The SR_B* numbering differs between Landsat TM/ETM+ and OLI and the file does not say which "
                "sensor it is (no SPACECRAFT_ID or SENSOR_ID tag, no SR_B6 band): pass --bands as 1-based indexes.")
    return ""
