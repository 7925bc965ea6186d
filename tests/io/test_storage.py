"""Storage (geoseg.io.storage) on local paths, and the URI helpers shared with S3.

Oracles: the local file system as pathlib sees it (files, directories, leftovers of atomic writes).
The S3 side runs against a real S3 server in tests/system/test_s3.py.
"""

import pytest

from geoseg.errors import InputError, OutputError
from geoseg.io import storage


def test_uri_helpers():
    assert storage.split_s3("s3://bucket/a/b.tif") == ("bucket", "a/b.tif")
    assert storage.join("s3://bucket/", "/runs/", "r1", "x.tif") == "s3://bucket/runs/r1/x.tif"
    assert storage.join("/data", "runs", "x.tif") == "/data/runs/x.tif"
    assert storage.name("s3://bucket/a/b.tif") == storage.name("/x/b.tif") == "b.tif"
    assert storage.parent("s3://bucket/a/b.tif") == "s3://bucket/a" and storage.parent("/x/y/b.tif") == "/x/y"
    assert storage.is_remote("s3://b/k") and not storage.is_remote("/s3/b/k")
    for bad in ("/data/x.tif", "s3:///no-bucket", "gs://b/k"):
        with pytest.raises(InputError, match="not an s3://bucket/key URI"):
            storage.split_s3(bad)


def test_local_round_trip_list_copy_and_delete(tmp_path):
    uri = storage.join(str(tmp_path), "a", "x.json")
    assert storage.write_bytes(uri, b'{"a": 1}') == uri  # parent directories are created
    assert storage.exists(uri) and storage.read_bytes(uri) == b'{"a": 1}'
    storage.write_bytes(uri, b"{}")  # replaced in place, no temporary file left behind
    assert storage.read_bytes(uri) == b"{}" and sorted(p.name for p in (tmp_path / "a").iterdir()) == ["x.json"]
    storage.upload(tmp_path / "a" / "x.json", storage.join(str(tmp_path), "a", "sub", "y.json"))
    storage.copy(uri, storage.join(str(tmp_path), "a", "z.json"))
    assert storage.listdir(storage.join(str(tmp_path), "a")) == ["x.json", "z.json"]  # files only, sorted
    assert storage.listdir(storage.join(str(tmp_path), "nothing")) == []
    assert storage.download(uri, tmp_path / "dl" / "x.json").read_bytes() == b"{}"
    assert storage.local_copy(uri) == tmp_path / "a" / "x.json" and storage.local_tree(str(tmp_path)) == tmp_path
    storage.delete(uri)
    storage.delete(uri)  # absent: no error
    assert not storage.exists(uri)
    storage.delete_tree(storage.join(str(tmp_path), "a"))
    storage.delete_tree(storage.join(str(tmp_path), "a"))
    assert not (tmp_path / "a").exists()


def test_local_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match=r"missing\.json: cannot read"):
        storage.read_bytes(tmp_path / "missing.json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file/x\.json: cannot write"):
        storage.write_bytes(tmp_path / "file" / "x.json", b"1")  # a file where a directory should be
