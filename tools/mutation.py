"""Mutation testing of geoseg's core modules with mutmut 3, one module at a time, against its own tests only.

Not part of CI (it takes minutes per module). Install the tool with ``pip install -e '.[mutation]'``, then::

    python tools/mutation.py                      # every module in [tool.geoseg-mutation.modules]
    python tools/mutation.py tiling mmu           # some of them
    python tools/mutation.py journal --sample 40  # at most 40 mutants, drawn at random (seeded)

Configuration lives in ``pyproject.toml``: ``[tool.mutmut]`` holds mutmut's own settings and
``[tool.geoseg-mutation]`` names the core modules, the tests that aim at each, and how many mutants
to draw per module (``sample``; 0 = all). For each module the working tree (git-tracked and
untracked, not ignored, files) is copied to ``WORKDIR/<module>/`` (default
``$TMPDIR/geoseg-mutation``), its ``[tool.mutmut]`` is narrowed to that module and those tests, and
mutmut runs there under ``nice``: once to generate the mutants and map each function to the tests
that call it, then on the drawn mutants (each runs only the tests that reach its function).

Writes ``WORKDIR/summary.json`` (per module: mutants, drawn, killed, survived, no tests, kill rate)
and ``WORKDIR/<module>.survivors.md`` (each survivor's diff, to judge). ``docs/testing.md`` records
the latest numbers and the survivors judged equivalent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTED = {"killed", "timeout", "caught by type check"}


def settings() -> tuple[dict, dict]:
    """``([tool.mutmut], [tool.geoseg-mutation])`` of the repository's pyproject.toml."""
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    return tool["mutmut"], tool["geoseg-mutation"]


def toml_section(name: str, values: dict) -> str:
    """A TOML table of strings, numbers, booleans and lists of strings (JSON spells them the same way)."""
    lines = [f"[{name}]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def copy_tree(dest: Path) -> None:
    """The working tree (tracked and untracked files git does not ignore) copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    if dest.exists():
        shutil.rmtree(dest)
    for f in filter(None, files):
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def narrowed_pyproject(dest: Path, mutmut: dict, module: dict) -> None:
    """Rewrite ``dest/pyproject.toml``'s ``[tool.mutmut]`` for one module and its tests."""
    text = (dest / "pyproject.toml").read_text()
    start = text.index("[tool.mutmut]")
    end = text.find("\n[", start + 1)
    rest = text[end + 1 :] if end >= 0 else ""
    narrowed = {**mutmut, "only_mutate": [module["path"]], "pytest_add_cli_args_test_selection": module["tests"]}
    (dest / "pyproject.toml").write_text(text[:start] + toml_section("tool.mutmut", narrowed) + "\n" + rest)


def mutmut(dest: Path, args: list[str], log: Path, jobs: int) -> int:
    """Run ``mutmut ARGS`` in ``dest`` under nice; output appended to ``log``."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": ""}
    cmd = ["nice", "-n", "10", sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *args]
    with open(log, "a") as out:
        return subprocess.run(cmd, cwd=dest, env=env, stdout=out, stderr=subprocess.STDOUT).returncode


def exit_codes(dest: Path, path: str) -> dict[str, int | None]:
    """mutmut's recorded exit code of every mutant of ``path``."""
    meta = dest / "mutants" / (path + ".meta")
    return json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}


def show(dest: Path, name: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=dest, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ""})
    return "\n".join(ln for ln in done.stdout.splitlines() if ln[:1] in "+-" and ln[:3] not in ("---", "+++"))


def run_module(name: str, module: dict, mutmut_cfg: dict, workdir: Path, sample: int, seed: int, jobs: int) -> dict:
    from mutmut.stats import status_by_exit_code

    dest = workdir / name
    log = workdir / f"{name}.log"
    log.unlink(missing_ok=True)
    t0 = time.monotonic()
    copy_tree(dest)
    narrowed_pyproject(dest, mutmut_cfg, module)
    mutmut(dest, ["geoseg-mutation-generate-only"], log, jobs)  # generates, maps tests; matches no mutant
    names = sorted(exit_codes(dest, module["path"]))
    if not names:
        raise SystemExit(f"{name}: mutmut generated no mutants (see {log})")
    drawn = sorted(random.Random(seed).sample(names, sample)) if 0 < sample < len(names) else names
    mutmut(dest, drawn, log, jobs)
    codes = exit_codes(dest, module["path"])
    status = {n: status_by_exit_code[codes.get(n)] for n in drawn}
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    survivors = [n for n, s in status.items() if s not in DETECTED]
    with open(workdir / f"{name}.survivors.md", "w") as f:
        for n in survivors:
            f.write(f"## {n} ({status[n]})\n\n```diff\n{show(dest, n)}\n```\n\n")
    detected = sum(counts.get(s, 0) for s in DETECTED)
    return {"path": module["path"], "tests": module["tests"], "mutants": len(names), "drawn": len(drawn),
            "detected": detected, "statuses": counts, "kill_rate": round(detected / len(drawn), 3),
            "survivors": survivors, "seconds": round(time.monotonic() - t0)}


def main(argv: list[str] | None = None) -> int:
    mutmut_cfg, cfg = settings()
    modules = cfg["modules"]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="*", help=f"modules to test (default: all): {', '.join(modules)}")
    p.add_argument("--sample", type=int, default=None, help="mutants drawn per module (0: all; default from pyproject)")
    p.add_argument("--seed", type=int, default=cfg.get("seed", 0))
    p.add_argument("--jobs", type=int, default=cfg.get("jobs", 2), help="mutants tested at once")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "geoseg-mutation")
    args = p.parse_args(argv)
    unknown = sorted(set(args.modules) - set(modules))
    if unknown:
        p.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(modules)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    summary_path = args.workdir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    for name in args.modules or list(modules):
        module = modules[name]
        sample = args.sample if args.sample is not None else module.get("sample", cfg.get("sample", 0))
        res = run_module(name, module, mutmut_cfg, args.workdir, sample, args.seed, args.jobs)
        summary[name] = res
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{name:12s} {res['detected']:4d}/{res['drawn']:<4d} killed ({res['kill_rate']:.0%}) of {res['mutants']} "
              f"mutants, {len(res['survivors'])} survivors, {res['seconds']} s", flush=True)
    print(f"summary: {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
