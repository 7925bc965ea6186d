"""Point every deployment file at one image: ``python infra/set_image.py IMAGE``.

The manifests (``infra/k8s/*.yaml``, the RayJob inside the CronJob's ConfigMap included) and the cluster
launcher config (``infra/aws/cluster.yaml``) all name the same image. Each build gets a tag of its own
(``<version>-<12-character commit>``, see infra/Dockerfile) or is named by digest, and the pods pull
``IfNotPresent``, which is right only for references that never move. After pushing a build::

    python infra/set_image.py ghcr.io/geoseg/geoseg:0.1.0-$(git rev-parse --short=12 HEAD)
    python infra/set_image.py ghcr.io/geoseg/geoseg@sha256:<digest>      # or by digest

The image the files name now is replaced literally wherever it occurs (comments and formatting are
kept). Exit status 2, and nothing written, if the files do not agree on one image to start with or
IMAGE is not an immutable reference (a mutable tag like ``latest`` or ``0.1.0`` would leave nodes on
whatever they pulled first).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

INFRA = Path(__file__).resolve().parent
IMMUTABLE = re.compile(r"[a-z0-9.\-/:]+(?::\d+\.\d+\.\d+[\w.]*-[0-9a-f]{12}|@sha256:[0-9a-f]{64})")
"""``<repository>:<semver>-<12 hex digits of a commit>`` or ``<repository>@sha256:<digest>``."""
IMAGE_LINE = re.compile(r"^\s*-?\s*image:\s*['\"]?([^\s'\"#]+)", re.MULTILINE)


def deployment_files(infra: Path = INFRA) -> list[Path]:
    return [*sorted((infra / "k8s").glob("*.yaml")), infra / "aws" / "cluster.yaml"]


def images(paths: list[Path]) -> set[str]:
    """Every ``image:`` value in the files (ConfigMap literals included: they are lines of the file too)."""
    return {m.group(1) for p in paths for m in IMAGE_LINE.finditer(p.read_text())}


def set_image(new: str, paths: list[Path]) -> str:
    """Replace the one image the files name with ``new``; return the old one."""
    if not IMMUTABLE.fullmatch(new):
        raise ValueError(f"{new}: not an immutable reference; use <repository>:<version>-<12-hex commit> "
                         "or <repository>@sha256:<digest>")
    found = images(paths)
    if len(found) != 1:
        raise ValueError(f"the deployment files name {sorted(found)}, not one image; fix them by hand first")
    (old,) = found
    for p in paths:
        text = p.read_text()
        if old in text:
            p.write_text(text.replace(old, new))
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="e.g. ghcr.io/geoseg/geoseg:0.1.0-<commit> or ...@sha256:<digest>")
    args = parser.parse_args(argv)
    try:
        old = set_image(args.image, deployment_files())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{old} -> {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
