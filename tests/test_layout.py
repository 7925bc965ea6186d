"""The shape of the code: layers, no import circles, Ray in one place, types, lint, generated docs, module sizes,
and a test for every module. These are checks a reviewer would otherwise do by hand."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import geoseg
from tests.helpers import REPO

MODULES = sorted(m.name for m in pkgutil.walk_packages(geoseg.__path__, "geoseg.") if not m.name.endswith("__main__"))
MAX_LINES = 450


def test_import_contracts_hold():
    """import-linter (contracts in pyproject.toml): layers import downward only, Ray only under runtime/."""
    # in a subprocess: import-linter reconfigures logging, which would hide later tests' log records
    code = f"import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename={str(REPO / 'pyproject.toml')!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_import_cycles_between_modules():
    import grimp

    graph = grimp.build_graph("geoseg")
    for m in graph.modules:
        for other in graph.find_modules_directly_imported_by(m):
            if other.startswith("geoseg") and other != m:
                assert not graph.chain_exists(importer=other, imported=m, as_packages=False), f"{m} <-> {other}"


def test_mypy_is_clean():
    from mypy import api

    out, err, status = api.run(["--config-file", str(REPO / "pyproject.toml"), str(REPO / "geoseg")])
    assert status == 0, out + err


def test_ruff_is_clean():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "geoseg", "tests", "benchmarks", "jobs", "tools"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_configuration_docs_are_generated_from_the_field_descriptions():
    done = subprocess.run([sys.executable, "tools/gen_config_docs.py", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", MODULES)
def test_module_is_small_and_says_what_it_is(name):
    mod = importlib.import_module(name)
    path = mod.__file__
    text = open(path).read()
    assert text.count("\n") <= MAX_LINES, f"{path}: {text.count(chr(10))} lines; split it by concern"
    assert ast.get_docstring(ast.parse(text)), f"{path}: no module docstring"
    if path.endswith("__init__.py"):
        assert hasattr(mod, "__all__"), f"{name} exports no __all__"
        for public in mod.__all__:
            assert getattr(mod, public) is not None


def test_every_module_has_a_test():
    """A module is tested when a test imports it, or a test file mirrors it (``geoseg/a/b.py`` ->
    ``tests/a/test_b.py``, TorchGeo style: e.g. the CLI commands, tested through ``geoseg.cli.main``)."""
    imported: set[str] = set()
    for f in (REPO / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("geoseg"):
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names if a.name.startswith("geoseg"))
    def mirrored(m: str) -> bool:
        parts = m.split(".")[1:]
        return (REPO / "tests" / Path(*parts[:-1], f"test_{parts[-1]}.py")).is_file()

    untested = [m for m in MODULES if m not in imported and not mirrored(m)
                and not importlib.import_module(m).__file__.endswith("__init__.py")]
    assert not untested, f"modules with no test: {untested}"


def test_importing_the_package_pulls_in_neither_ray_nor_torch():
    code = ("import sys, geoseg, geoseg.io, geoseg.model, geoseg.vector, geoseg.segment, geoseg.change, geoseg.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'torch'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
