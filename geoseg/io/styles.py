"""Layer styles for the outputs: QGIS QML, OGC SLD and GDAL raster attribute tables, from class colours and names.

Pure text, no I/O except :func:`write_raster_sidecars`. A class map (or change map) is
described by its :class:`Category` list (pixel value, name, colour); from it come

* :func:`raster_qml` / :func:`raster_sld`: a paletted (unique values) raster style, the
  category names as legend labels;
* :func:`ramp_qml` / :func:`ramp_sld`: a continuous colour ramp (the confidence raster);
* :func:`vector_qml` / :func:`vector_sld`: a categorised polygon style on one attribute;
* :func:`pam_xml`: a GDAL PAM ``.aux.xml`` with the band's category names and a thematic
  raster attribute table (value, count, class name, RGB), which GDAL, QGIS and ArcGIS read;

QGIS loads ``<name>.qml`` next to a raster as its default style; a GeoPackage carries its
styles in a ``layer_styles`` table (:func:`geoseg.vector.writers.write_polygons`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

QGIS_VERSION = "3.22.0-Białowieża"
"""The QGIS version written in QML headers (the oldest tested reader; newer versions read it too)."""

CONFIDENCE_RAMP = ((0, "#d7191c"), (50, "#fdae61"), (75, "#ffffbf"), (90, "#a6d96a"), (100, "#1a9641"))
"""Stops of the confidence ramp (percent, colour): red (unsure) to green (sure)."""


@dataclass(frozen=True, slots=True)
class Category:
    """One value of a categorical raster or attribute: its value, name (legend label) and ``#rrggbb`` colour."""

    value: int
    name: str
    color: str
    count: int | None = None

    @property
    def rgb(self) -> tuple[int, int, int]:
        return rgb(self.color)


def rgb(color: str) -> tuple[int, int, int]:
    """``#rrggbb`` -> ``(r, g, b)``."""
    h = color.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True, slots=True)
class LayerStyle:
    """A named style of one vector layer: QML and SLD text (stored in a GeoPackage's ``layer_styles``)."""

    name: str
    qml: str
    sld: str
    description: str = ""


def categories(classes: Sequence, counts: Sequence[int] | np.ndarray | None = None) -> list[Category]:
    """Categories of model classes (anything with ``id``, ``name``, ``color``), with pixel counts if given."""
    return [Category(c.id, c.name, c.color, int(counts[i]) if counts is not None else None)
            for i, c in enumerate(classes)]


def categories_from_raster(src) -> list[Category]:
    """Categories of an open geoseg class map: its ``class_names``/``class_ids`` tags and colour table.

    Empty when the raster has no ``class_names`` tag. Values without a colour get grey.
    """
    tags = src.tags()
    names = [n for n in tags.get("class_names", "").split(",") if n]
    if not names:
        return []
    ids = [int(i) for i in tags["class_ids"].split(",")] if tags.get("class_ids") else list(range(len(names)))
    try:
        cmap = src.colormap(1)
    except ValueError:  # no colour table
        cmap = {}
    out = []
    for value, name in zip(ids, names):
        r, g, b, *_ = cmap.get(value, (128, 128, 128, 255))
        out.append(Category(value, name, f"#{r:02x}{g:02x}{b:02x}"))
    return out


# --------------------------------------------------------------------------- QGIS QML


def _qml(body: str, categories_attr: str = "AllStyleCategories") -> str:
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            f'<qgis version={quoteattr(QGIS_VERSION)} styleCategories="{categories_attr}">\n{body}</qgis>\n')


def _raster_pipe(renderer: str) -> str:
    return ("  <pipe>\n" + renderer
            + '    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>\n'
            + '    <huesaturation saturation="0" grayscaleMode="0" colorizeOn="0" colorizeStrength="100"'
              ' colorizeRed="255" colorizeGreen="128" colorizeBlue="128"/>\n'
            + '    <rasterresampler maxOversampling="2"/>\n  </pipe>\n  <blendMode>0</blendMode>\n')


def raster_qml(cats: Sequence[Category], band: int = 1) -> str:
    """A QGIS paletted (unique values) renderer: each category's colour, its name as the legend label."""
    entries = "".join(f'        <paletteEntry value="{c.value}" color="{c.color.lower()}" alpha="255" '
                      f"label={quoteattr(c.name)}/>\n" for c in cats)
    renderer = (f'    <rasterrenderer type="paletted" band="{band}" opacity="1" alphaBand="-1" nodataColor="">\n'
                "      <rasterTransparency/>\n"
                f"      <colorPalette>\n{entries}      </colorPalette>\n"
                "    </rasterrenderer>\n")
    return _qml(_raster_pipe(renderer))


def ramp_qml(stops: Sequence[tuple[float, str]] = CONFIDENCE_RAMP, band: int = 1, unit: str = " %") -> str:
    """A QGIS single-band pseudocolour renderer: an interpolated ramp through ``stops`` (value, colour)."""
    lo, hi = stops[0][0], stops[-1][0]
    items = "".join(f'          <item value="{v:g}" color="{c.lower()}" alpha="255" label="{v:g}{unit}"/>\n'
                    for v, c in stops)
    renderer = (f'    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="1" alphaBand="-1" '
                f'classificationMin="{lo:g}" classificationMax="{hi:g}" nodataColor="">\n'
                "      <rasterTransparency/>\n"
                '      <minMaxOrigin><limits>None</limits><extent>WholeRaster</extent>'
                "<statAccuracy>Estimated</statAccuracy></minMaxOrigin>\n"
                "      <rastershader>\n"
                f'        <colorrampshader colorRampType="INTERPOLATED" classificationMode="2" clip="0" '
                f'minimumValue="{lo:g}" maximumValue="{hi:g}" labelPrecision="0">\n'
                f"{items}        </colorrampshader>\n      </rastershader>\n    </rasterrenderer>\n")
    return _qml(_raster_pipe(renderer))


def _fill_layer(c: Category, outline: str = "#4d4d4d") -> str:
    props = {"color": "{},{},{},255".format(*c.rgb), "style": "solid",
             "outline_color": "{},{},{},255".format(*rgb(outline)), "outline_style": "solid", "outline_width": "0.1", "outline_width_unit": "MM",
             "joinstyle": "bevel"}
    options = "".join(f'              <Option type="QString" name="{k}" value="{v}"/>\n' for k, v in props.items())
    legacy = "".join(f'            <prop k="{k}" v="{v}"/>\n' for k, v in props.items())
    return ('          <layer class="SimpleFill" enabled="1" locked="0" pass="0">\n'
            f'            <Option type="Map">\n{options}            </Option>\n{legacy}          </layer>\n')


def vector_qml(attribute: str, cats: Sequence[Category]) -> str:
    """A QGIS categorised polygon renderer on ``attribute``: one fill per category, its name as the label."""
    rows = "".join(f'      <category render="true" value="{c.value}" symbol="{i}" label={quoteattr(c.name)}/>\n'
                   for i, c in enumerate(cats))
    symbols = "".join(f'      <symbol type="fill" name="{i}" alpha="1" clip_to_extent="1" force_rhr="0">\n'
                      f"{_fill_layer(c)}      </symbol>\n" for i, c in enumerate(cats))
    body = (f'  <renderer-v2 type="categorizedSymbol" attr={quoteattr(attribute)} symbollevels="0" '
            'enableorderby="0" forceraster="0">\n'
            f"    <categories>\n{rows}    </categories>\n    <symbols>\n{symbols}    </symbols>\n"
            "  </renderer-v2>\n  <blendMode>0</blendMode>\n  <featureBlendMode>0</featureBlendMode>\n"
            "  <layerOpacity>1</layerOpacity>\n")
    return _qml(body)


# --------------------------------------------------------------------------- OGC SLD 1.0


def _sld(layer: str, title: str, rules: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<StyledLayerDescriptor version="1.0.0" xmlns="http://www.opengis.net/sld" '
            'xmlns:ogc="http://www.opengis.net/ogc" xmlns:xlink="http://www.w3.org/1999/xlink" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.opengis.net/sld '
            'http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd">\n'
            f"  <NamedLayer>\n    <Name>{escape(layer)}</Name>\n    <UserStyle>\n      <Title>{escape(title)}</Title>\n"
            f"      <FeatureTypeStyle>\n{rules}      </FeatureTypeStyle>\n    </UserStyle>\n  </NamedLayer>\n"
            "</StyledLayerDescriptor>\n")


def raster_sld(layer: str, cats: Sequence[Category], title: str = "classes") -> str:
    """An SLD RasterSymbolizer with a ``values`` colour map: one entry (colour, label) per category."""
    entries = "".join(f'            <ColorMapEntry color="{c.color.lower()}" quantity="{c.value}" '
                      f"label={quoteattr(c.name)} opacity=\"1\"/>\n" for c in cats)
    rule = ("        <Rule>\n          <RasterSymbolizer>\n            <Opacity>1</Opacity>\n"
            f'            <ColorMap type="values">\n{entries}            </ColorMap>\n'
            "          </RasterSymbolizer>\n        </Rule>\n")
    return _sld(layer, title, rule)


def ramp_sld(layer: str, stops: Sequence[tuple[float, str]] = CONFIDENCE_RAMP, title: str = "confidence",
             unit: str = " %") -> str:
    """An SLD RasterSymbolizer with a ``ramp`` colour map through ``stops``."""
    entries = "".join(f'            <ColorMapEntry color="{c.lower()}" quantity="{v:g}" label="{v:g}{unit}" '
                      'opacity="1"/>\n' for v, c in stops)
    rule = ("        <Rule>\n          <RasterSymbolizer>\n            <Opacity>1</Opacity>\n"
            f'            <ColorMap type="ramp">\n{entries}            </ColorMap>\n'
            "          </RasterSymbolizer>\n        </Rule>\n")
    return _sld(layer, title, rule)


def vector_sld(layer: str, attribute: str, cats: Sequence[Category], title: str = "classes") -> str:
    """An SLD with one rule per category: ``attribute = value`` filled with the category's colour."""
    rules = "".join(
        f"        <Rule>\n          <Name>{escape(c.name)}</Name>\n          <Title>{escape(c.name)}</Title>\n"
        "          <ogc:Filter>\n            <ogc:PropertyIsEqualTo>\n"
        f"              <ogc:PropertyName>{escape(attribute)}</ogc:PropertyName>\n"
        f"              <ogc:Literal>{c.value}</ogc:Literal>\n            </ogc:PropertyIsEqualTo>\n"
        "          </ogc:Filter>\n          <PolygonSymbolizer>\n"
        f'            <Fill><CssParameter name="fill">{c.color.lower()}</CssParameter></Fill>\n'
        '            <Stroke><CssParameter name="stroke">#4d4d4d</CssParameter>'
        '<CssParameter name="stroke-width">0.3</CssParameter></Stroke>\n'
        "          </PolygonSymbolizer>\n        </Rule>\n" for c in cats)
    return _sld(layer, title, rules)


def polygon_style(cats: Sequence[Category], layer: str, attribute: str = "class_id",
                  name: str = "geoseg classes") -> LayerStyle:
    """The default style of a polygon layer categorised on ``attribute`` (QML and SLD)."""
    return LayerStyle(name, vector_qml(attribute, cats), vector_sld(layer, attribute, cats, title=name),
                      f"{attribute}: " + ", ".join(f"{c.value} {c.name}" for c in cats))


# --------------------------------------------------------------------------- GDAL PAM (.aux.xml)

_RAT_FIELDS = (("Value", 0, 5), ("Count", 0, 1), ("Class_Name", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8))
"""Raster attribute table columns: (name, GDAL field type 0 int / 2 string, GDAL usage: 5 MinMax, 1 PixelCount,
2 Name, 6/7/8 Red/Green/Blue)."""


def pam_xml(cats: Sequence[Category], band: int = 1) -> str:
    """A GDAL PAM document: the band's category names (indexed by value) and a thematic raster attribute table."""
    by_value = {c.value: c.name for c in cats}
    names = "".join(f"      <Category>{escape(by_value.get(v, ''))}</Category>\n"
                    for v in range(max(by_value) + 1))
    fields = "".join(f'      <FieldDefn index="{i}">\n        <Name>{n}</Name>\n        <Type>{t}</Type>\n'
                     f"        <Usage>{u}</Usage>\n      </FieldDefn>\n" for i, (n, t, u) in enumerate(_RAT_FIELDS))
    rows = "".join(f'      <Row index="{i}">\n' + "".join(
        f"        <F>{escape(str(v))}</F>\n" for v in (c.value, c.count or 0, c.name, *c.rgb)) + "      </Row>\n"
        for i, c in enumerate(cats))
    return (f'<PAMDataset>\n  <PAMRasterBand band="{band}">\n    <CategoryNames>\n{names}    </CategoryNames>\n'
            f'    <GDALRasterAttributeTable tableType="thematic">\n{fields}{rows}    </GDALRasterAttributeTable>\n'
            "  </PAMRasterBand>\n</PAMDataset>\n")


def sidecar_names(raster_name: str, pam: bool = True) -> dict[str, str]:
    """Sidecar file names of a raster ``x.tif``: ``qml`` ``x.qml``, ``sld`` ``x.sld``, ``pam`` ``x.tif.aux.xml``."""
    stem = raster_name.rsplit(".", 1)[0]
    names = {"qml": f"{stem}.qml", "sld": f"{stem}.sld"}
    if pam:
        names["pam"] = f"{raster_name}.aux.xml"
    return names


def write_raster_sidecars(raster: Path, qml: str, sld: str, pam: str | None = None) -> list[str]:
    """Write the style sidecars of ``raster`` next to it (:func:`sidecar_names`); returns their file names."""
    names = sidecar_names(raster.name, pam is not None)
    for kind, text in (("qml", qml), ("sld", sld), ("pam", pam)):
        if text is not None:
            (raster.parent / names[kind]).write_text(text, encoding="utf-8")
    return list(names.values())
