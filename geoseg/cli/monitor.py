"""``geoseg monitor``: scheduled change monitoring of regions into a history store."""

from __future__ import annotations

import click

from geoseg.cli import options


@click.command("monitor")
@options.config("Monitor YAML, e.g. configs/monitor_pucallpa.yaml.", required=True)
@click.option("--output-root", help="Override `output_root` (directory or s3:// prefix).")
@options.sink
@options.local
@click.pass_context
def command(ctx, config_path, output_root, sink, local):
    """Scheduled change monitoring: segment each region's new periods, compare, append to the history store.

    Idempotent: periods already in the history are not redone (no model work). With --sink (or `sink:`), each
    region's history is also loaded into PostGIS, each region and period once. Exit codes: 0 every region up
    to date; 2 bad config or unreachable sink; 4 one or more regions failed (named; the others finished).
    """
    from geoseg.change.monitor import MonitorConfig, format_result, run_monitor
    from geoseg.errors import MonitorError

    cfg = options.load_config(config_path, MonitorConfig,
                              {"output_root": output_root, "sink": sink, "segment.runtime.local": local})
    results = run_monitor(cfg, progress=ctx.obj["progress"])
    for r in results:
        click.echo(format_result(r))
    failed = [r.name for r in results if r.error]
    if failed:
        raise MonitorError(f"{len(failed)} of {len(results)} region(s) failed: {', '.join(failed)} "
                           "(the others finished; see the messages above)")
