"""Options shared by the commands: list parsing, and one default for the window size everywhere."""

from __future__ import annotations

from geoseg.cli import main, options
from geoseg.config import BLOCK_SIZE, ChangeConfig, MonitorConfig, OutputConfig


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
