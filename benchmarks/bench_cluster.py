"""Benchmark: one Ray node vs a simulated two-node cluster (same CPUs), and the cost of resuming.

Runs the real CLI as a driver process against clusters built with ``ray.cluster_utils.Cluster``
on this machine:

* ``1 node``:  a head with all N CPUs (driver and actors on one node);
* ``2 nodes``: a head with 0 CPUs (driver only, like a CPU head in production) and two worker
  nodes with N/2 CPUs each, so model actors talk to the driver across raylets/object stores.

For each: tile-stage Mpx/s, end-to-end Mpx/s, and the scheduling overhead per tile:
``(tile-stage wall x actors - sum of the actors' read + predict seconds) / tiles``, the time an
actor spends per tile on anything but work (queueing, transfers, stitching back-pressure).

Then the cost of resuming: the same job with every tile already journaled (an interrupted run
that had finished all tiles) is rerun; the seconds to replay N journaled tiles are reported,
against the tile stage they replace.

    python benchmarks/bench_cluster.py --size 3 --out benchmarks/results_cluster.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_segment import DEFAULT_SCENE, build_mosaic

REPO = Path(__file__).resolve().parents[1]


def run_job(address: str | None, mosaic: Path, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    if address:
        env["RAY_ADDRESS"] = address
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "geoseg.cli", "-q", "segment", str(mosaic), "--output", str(out),
                           "--overwrite", *extra], capture_output=True, text=True, env=env, cwd=REPO)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"job failed:\n{proc.stderr[-3000:]}")
    m = json.loads((out / "manifest.json").read_text())
    m["wall_s"] = wall
    return m


def summarise(label: str, m: dict, actors: int) -> dict:
    t = m["timings_s"]
    px = sum(i["width"] * i["height"] for i in m["inputs"])
    tiles = m["tiles"]["processed"] + m["tiles"]["skipped"] - m["tiles"]["resumed"]
    busy = t.get("worker_read", 0) + t.get("worker_predict", 0)
    overhead = (t["tiles"] * actors - busy) / tiles if tiles else 0.0
    row = {
        "cluster": label, "runtime": m["runtime"], "megapixels": round(px / 1e6, 2), "tiles": tiles,
        "tile_stage_s": t["tiles"], "tile_stage_mpx_s": round(px / 1e6 / t["tiles"], 3),
        "end_to_end_s": round(m["wall_s"], 2), "end_to_end_mpx_s": round(px / 1e6 / m["wall_s"], 3),
        "actor_busy_s": round(busy, 2), "overhead_per_tile_ms": round(1000 * overhead, 1),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=3, help="mosaic of size x size copies of the scene")
    ap.add_argument("--cpus", type=int, default=2, help="total CPUs (= model actors) in both layouts")
    ap.add_argument("--scene", type=Path, default=DEFAULT_SCENE)
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="geoseg-bench-cluster-"))
    mosaic = build_mosaic(args.scene, args.size, work / "mosaic.vrt")
    cfg_path = work / "job.yaml"
    cfg_path.write_text(f"outputs:\n  polygons: false\nruntime:\n  num_workers: {args.cpus}\n")
    common = ["--config", str(cfg_path)]
    rows = []
    layouts = {"1 node": [args.cpus], "2 nodes": [0, args.cpus // 2, args.cpus - args.cpus // 2]}
    for label, cpus in layouts.items():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus[0], "include_dashboard": False})
        for c in cpus[1:]:
            cluster.add_node(num_cpus=c)
        cluster.wait_for_nodes()
        try:
            run_job(cluster.address, mosaic, work / "warmup", common)  # workers' imports, page cache
            rows.append(summarise(label, run_job(cluster.address, mosaic, work / label.replace(" ", ""), common), args.cpus))
        finally:
            cluster.shutdown()

    # resume: a run whose every tile is journaled (as if the driver died just before publishing)
    import geoseg.segment.journal
    from geoseg.config import SegmentConfig
    from geoseg.segment.pipeline import segment

    cfg = SegmentConfig(inputs=[str(mosaic)], output=str(work / "resume"), overwrite=True,
                        outputs={"polygons": False}, runtime={"num_workers": args.cpus})
    clear = geoseg.segment.journal.TileJournal.clear
    geoseg.segment.journal.TileJournal.clear = lambda self: None  # keep the journal of the first run
    t0 = time.perf_counter()
    first = segment(cfg, progress=False).manifest
    first_wall = time.perf_counter() - t0
    geoseg.segment.journal.TileJournal.clear = clear
    t0 = time.perf_counter()
    again = segment(cfg, progress=False).manifest
    again_wall = time.perf_counter() - t0
    n = again["tiles"]["resumed"]
    resume = {
        "journaled_tiles": n, "replay_s": again["timings_s"]["resume"],
        "replay_ms_per_tile": round(1000 * again["timings_s"]["resume"] / max(n, 1), 2),
        "tile_stage_s_replaced": first["timings_s"]["tiles"],
        "first_run_s": round(first_wall, 2), "rerun_s": round(again_wall, 2), "rerun_runtime": again["runtime"],
    }
    print(json.dumps(resume))
    result = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
              "mosaic": f"{args.size}x{args.size} x {args.scene.name}", "layouts": rows, "resume": resume}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
