"""Input expansion (geoseg.io.inputs): malformed STAC documents are input errors naming the file.

(STAC item collections on S3 and relative hrefs: tests/system/test_s3.py.)
"""

import json

import pytest


@pytest.mark.parametrize("doc, match", [
    ([{"type": "Feature"}], "not a STAC Item"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "assets": {"a": {"href": "x.tif"}}}]}, "no STAC"),
    ({"type": "Feature", "id": "a/b", "assets": {"a": {"href": "x.tif"}}}, "path separator"),
    ({"type": "Feature", "id": "a", "assets": {"a": {"type": "image/tiff"}}}, "has no href"),
])
def test_malformed_stac_is_an_input_error_naming_the_file(tmp_path, doc, match):
    from geoseg.errors import InputError
    from geoseg.io.inputs import expand_inputs

    path = tmp_path / "items.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match):
        expand_inputs([str(path)])
