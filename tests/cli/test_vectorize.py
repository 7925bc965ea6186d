"""`geoseg vectorize`: any class-map GeoTIFF to polygons, with MMU and reprojection."""

from click.testing import CliRunner

from geoseg.cli import main


def test_vectorize_cli_on_another_tools_class_map(tmp_path):
    """`geoseg vectorize` works on any class-map GeoTIFF, here the NLCD-derived labels, with MMU and reprojection."""
    import geopandas as gpd

    from tests.helpers import ZION_LABELS

    out = tmp_path / "labels.parquet"
    r = CliRunner().invoke(main, ["vectorize", str(ZION_LABELS), "--output", str(out), "--mmu-ha", "0.5",
                                  "--crs", "EPSG:4326", "--block-size", "128"])
    assert r.exit_code == 0, r.output
    gdf = gpd.read_parquet(out)
    assert gdf.crs.to_epsg() == 4326 and gdf.geometry.is_valid.all()
    assert gdf.area_ha.min() >= 0.5 - 1e-9
    r = CliRunner().invoke(main, ["vectorize", str(ZION_LABELS), "--output", str(out)])
    assert r.exit_code == 2 and "overwrite" in r.output
