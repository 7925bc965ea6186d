"""Ray job entrypoint for ``geoseg segment``.

Submit against a running cluster (``ray.init()`` connects to ``RAY_ADDRESS`` when set,
else starts a local Ray)::

    ray job submit --working-dir . -- python jobs/segment.py INPUT --output DIR --config configs/default.yaml

It takes exactly the options of ``geoseg segment``.
"""

import sys

from geoseg.cli import main

GLOBAL_FLAGS = {"-v", "-vv", "-q", "-qq", "--verbose", "--quiet"}

if __name__ == "__main__":
    args = sys.argv[1:]
    flags = [a for a in args if a in GLOBAL_FLAGS]  # geoseg's -v/-q go before the subcommand
    sys.exit(main([*flags, "segment", *[a for a in args if a not in GLOBAL_FLAGS]]))
