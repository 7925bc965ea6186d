"""Benchmark: two versions of geoseg side by side, alternating runs of `geoseg segment` on the same mosaics.

This machine is noisy (the same command varies by about 10 % between runs), so a change is measured
against the version before it in one session, runs alternating (ABBA order). Each version is a checkout
(e.g. ``git worktree add /tmp/old HEAD~1``); the command runs with that checkout as its working
directory, so ``python -m geoseg.cli`` imports that version. Per run: wall seconds, the tile stage and
what came after the last tile (from the manifest), CPU seconds (user + sys) of the process, peak RSS
of its process tree, the vectorizer thread's and the COG chains' seconds.

    git worktree add /tmp/old HEAD~1
    python benchmarks/ab_versions.py --old /tmp/old --new . --sizes 6 16 --repeat 6 2 --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

import bench_segment
from bench_segment import DEFAULT_SCENE, build_mosaic, run_with_peak_rss


def run_once(tree: Path, vrt: Path, out: Path, extra: list[str]) -> dict:
    """One `geoseg segment` run of the checkout ``tree``: its figures."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    cmd = [sys.executable, "-m", "geoseg.cli", "-q", "segment", str(vrt), "--output", str(out), "--overwrite",
           "--tile-size", "512", "--halo", "32", "--batch-size", "4", *extra]
    bench_segment.REPO = tree  # run_with_peak_rss runs in REPO: `python -m` imports geoseg from there
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, peak, done = run_with_peak_rss(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{tree}: segment failed:\n{done.stderr[-3000:]}")
    t = json.loads((out / "manifest.json").read_text())["timings_s"]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": round(wall, 2), "tiles": round(t["tiles"], 2), "after": round(t["after_tiles"], 2),
            "share": round(t["after_tiles"] / wall, 3), "rss": round(peak / 2**20), "cpu": round(cpu, 1),
            "vec": round(t.get("vectorize", 0.0), 2), "cog": round(t.get("cog", 0.0), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="checkout of the version before")
    ap.add_argument("--new", type=Path, required=True, help="checkout of the version measured")
    ap.add_argument("--sizes", type=int, nargs="+", default=[6], help="mosaic factors k (k x k Zion crops)")
    ap.add_argument("--repeat", type=int, nargs="+", default=[4], help="runs of each version, per size")
    ap.add_argument("--config", type=Path, help="a config for both (e.g. outputs: {polygons: false})")
    ap.add_argument("--work", type=Path, default=Path("/tmp/geoseg-ab"))
    ap.add_argument("--out", type=Path, help="write the runs as JSON here")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    extra = ["--config", str(args.config.resolve())] if args.config else []
    repeats = args.repeat * len(args.sizes) if len(args.repeat) == 1 else args.repeat
    runs = []
    for k, n in zip(args.sizes, repeats):
        vrt = build_mosaic(DEFAULT_SCENE, k, args.work / f"mosaic_{k}x{k}.vrt")
        for r in range(n):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]  # ABBA: drifts hit both alike
            for name in order:
                row = {"k": k, "tree": name, **run_once(trees[name], vrt, args.work / f"out_{name}_{k}", extra)}
                runs.append(row)
                print(json.dumps(row), flush=True)
        for name in trees:
            mine = [x for x in runs if x["k"] == k and x["tree"] == name]
            print(f"{k}x{k} {name}: median wall {statistics.median(x['wall'] for x in mine):.2f} s, after the last "
                  f"tile {statistics.median(x['share'] for x in mine):.1%}, CPU {statistics.median(x['cpu'] for x in mine):.1f} s")
    if args.out:
        args.out.write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
