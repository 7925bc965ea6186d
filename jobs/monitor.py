"""Ray job entrypoint for scheduled change monitoring (see ``geoseg/change/monitor.py`` and ``configs/monitor_*.yaml``).

Run it every period (cron, Airflow, a Kubernetes CronJob...); rerunning with no new
imagery does nothing::

    ray job submit --working-dir . -- python jobs/monitor.py --config configs/monitor_pucallpa.yaml
    python jobs/monitor.py --config configs/monitor_pucallpa.yaml --local     # without Ray

Exit codes: 0 every region up to date; 2 bad config; 4 one or more regions failed
(named on stderr; the others finished).

It takes exactly the options of ``geoseg monitor``.
"""

import sys

from geoseg.cli import run_job

if __name__ == "__main__":
    sys.exit(run_job("monitor", sys.argv[1:]))
