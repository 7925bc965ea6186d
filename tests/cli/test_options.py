"""Options shared by the commands: list parsing, and one default for the window size everywhere."""

from __future__ import annotations

from geoseg.cli import main, options
from geoseg.config import BLOCK_SIZE, ChangeConfig, MonitorConfig, OutputConfig, SegmentConfig


def test_split_list():
    assert options.split_list(" nir, red ,,green") == ["nir", "red", "green"]
    assert options.split_list("") is None and options.split_list(None) is None and options.split_list(" , ") is None


def test_one_block_size_and_one_set_of_change_guards():
    defaults = {name: {p.name: p.default for p in cmd.params} for name, cmd in main.commands.items()}
    assert defaults["vectorize"]["block_size"] == defaults["change"]["block_size"] == BLOCK_SIZE
    assert OutputConfig().vectorize_block == ChangeConfig().block_size == BLOCK_SIZE
    assert MonitorConfig.model_fields["block_size"].default == BLOCK_SIZE
    guards = ChangeConfig()
    assert defaults["change"]["min_confidence"] == guards.min_confidence
    assert defaults["change"]["mmu_ha"] == guards.mmu_ha and defaults["change"]["grid"] == guards.grid
    monitor = MonitorConfig.model_fields["guards"].default_factory()
    assert (monitor.min_confidence, monitor.mmu_ha) == (guards.min_confidence, guards.mmu_ha)


def test_every_override_of_every_command_has_a_flag_to_name_in_errors():
    """The keys the commands override (``options.load_config``) are all in ``options.FLAGS``, and each flag exists."""
    import ast
    import inspect

    from geoseg.cli import change, evaluate, monitor, segment, train

    for module in (segment, evaluate, change, monitor, train):
        tree = ast.parse(inspect.getsource(module))
        flags = {o for p in module.command.params for o in p.opts} | {"INPUTS"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys) and node.keys:
                keys = [k.value for k in node.keys]
                if any(k in options.FLAGS for k in keys):
                    for k in keys:
                        assert k in options.FLAGS, f"{module.__name__}: override {k!r} has no flag in options.FLAGS"
                        assert options.FLAGS[k] in flags, f"{module.__name__}: {options.FLAGS[k]} is not an option"


def test_a_bad_sink_given_by_flag_is_named_by_the_flag(tmp_path):
    import pytest

    from geoseg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^--sink 'mysql://u:\*\*\*@h/db': not a PostgreSQL URL"):
        options.load_config(None, SegmentConfig, {"inputs": ["x.tif"], "sink": "mysql://u:pw@h/db"})
