"""Ray job entrypoint for ``geoseg segment``.

Submit against a running cluster (``ray.init()`` connects to ``RAY_ADDRESS`` when set,
else starts a local Ray)::

    ray job submit --working-dir . -- python jobs/segment.py INPUT --output DIR --config configs/default.yaml

It takes exactly the options of ``geoseg segment``.
"""

import sys

from geoseg.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("segment", sys.argv[1:]))
