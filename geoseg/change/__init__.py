"""Change over time: dates on one grid, change detection with guards, transitions, monitoring and its history.

:func:`~geoseg.change.detect.detect_change` compares two dates;
:func:`~geoseg.change.monitor.run_monitor` keeps a history store of regions and periods.
"""

from geoseg import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "detect_change": "detect", "ChangeResult": "detect", "common_grid": "align", "AlignedReader": "align",
    "Patches": "patches", "Legend": "transitions", "run_monitor": "monitor", "HistoryStore": "history",
})
