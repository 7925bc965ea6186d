"""Create a KubeRay RayJob from a manifest, wait for it to finish, prune old runs.

This is the body of the CronJob in ``infra/k8s/cronjob.yaml``: each scheduled run creates a fresh
RayJob (its own RayCluster: CPU head, GPU workers, deleted when the job ends) and the CronJob's pod
waits for it, so that the CronJob's ``concurrencyPolicy: Forbid`` really covers the Ray job::

    python infra/k8s/submit_rayjob.py /etc/geoseg/rayjob.yaml [--keep 5] [--poll 30]

0. Finished RayJobs of the schedule beyond the newest ``--keep`` are deleted (also after the run, in
   step 4: a submitter that was stopped before its step 4 is made up for by the next one).
1. If a RayJob of the same schedule (label ``geoseg.io/schedule`` of the manifest) is still active,
   for instance because an earlier submitter pod was evicted while its RayJob kept running, nothing
   is created and the exit status is 0.
2. The RayJob is created as ``<metadata.name>-<UTC YYMMDDHHMM>``.
3. Its status is polled until KubeRay reports a terminal ``jobDeploymentStatus`` (``Complete``,
   ``Failed``, ``ValidationFailed``). Exit status 0 when the Ray job ``SUCCEEDED``, else 1.
4. Finished RayJobs of the schedule beyond the newest ``--keep`` are deleted (their RayClusters are
   already gone: ``shutdownAfterJobFinishes``).

It talks to the Kubernetes API with the pod's service account (token and CA mounted by Kubernetes;
the account needs create/get/list/delete on ``rayjobs.ray.io``), so it needs only the standard
library and PyYAML, both in the geoseg image.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

SCHEDULE_LABEL = "geoseg.io/schedule"
MAX_RAYJOB_NAME = 47
"""KubeRay rejects longer RayJob names (53 for the RayCluster minus the 6 characters it appends)."""
TERMINAL = {"Complete", "Failed", "ValidationFailed"}
"""Terminal values of ``status.jobDeploymentStatus``."""
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
GROUP_VERSION = "ray.io/v1"


class Kube:
    """The few calls this script makes, over HTTPS with the in-cluster service account."""

    def __init__(self, namespace: str | None = None, sa_dir: Path = SA_DIR):
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise SystemExit("not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is unset)")
        self.base = f"https://{host}:{port}"
        self.sa_dir = sa_dir
        self.namespace = namespace or (sa_dir / "namespace").read_text().strip()
        self.ctx = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None) -> dict:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        token = (self.sa_dir / "token").read_text().strip()  # re-read: projected tokens rotate
        req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
        req.add_header("Authorization", f"Bearer {token}")
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=60) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ApiError(exc.code, f"{method} {path}: HTTP {exc.code}: {detail}") from exc


class ApiError(RuntimeError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def rayjobs_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/rayjobs"
    return f"{path}/{name}" if name else path


def load_manifest(path: str | Path) -> dict:
    """Read and check the RayJob manifest (one YAML document)."""
    doc = yaml.safe_load(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("kind") != "RayJob" or doc.get("apiVersion") != GROUP_VERSION:
        raise SystemExit(f"{path}: expected one {GROUP_VERSION} RayJob document")
    meta = doc.get("metadata") or {}
    if not meta.get("name"):
        raise SystemExit(f"{path}: metadata.name is required (the run's name is <name>-<YYMMDDHHMM>)")
    if not (meta.get("labels") or {}).get(SCHEDULE_LABEL):
        raise SystemExit(f"{path}: metadata.labels.{SCHEDULE_LABEL} is required (it groups the runs)")
    return doc


def run_name(base: str, now: datetime) -> str:
    """``<base>-<YYMMDDHHMM>`` (UTC); a valid RayJob name or SystemExit."""
    name = f"{base}-{now.astimezone(UTC):%y%m%d%H%M}"
    if len(name) > MAX_RAYJOB_NAME or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        raise SystemExit(f"RayJob name {name!r}: KubeRay needs a DNS-1035 label of at most {MAX_RAYJOB_NAME} "
                         "characters; shorten metadata.name")
    return name


def render(doc: dict, now: datetime) -> dict:
    """The RayJob to create for a run at ``now`` (the manifest is not modified)."""
    out = json.loads(json.dumps(doc))
    meta = out["metadata"]
    meta["name"] = run_name(meta["name"], now)
    for key in ("namespace", "resourceVersion", "uid", "creationTimestamp", "generateName"):
        meta.pop(key, None)
    out.pop("status", None)
    return out


def is_terminal(job: dict) -> bool:
    return (job.get("status") or {}).get("jobDeploymentStatus") in TERMINAL


def succeeded(job: dict) -> bool:
    status = job.get("status") or {}
    return status.get("jobDeploymentStatus") == "Complete" and status.get("jobStatus") == "SUCCEEDED"


def describe(job: dict) -> str:
    s = job.get("status") or {}
    return (f"{job['metadata']['name']}: deployment {s.get('jobDeploymentStatus') or 'New'}, "
            f"job {s.get('jobStatus') or '-'}" + (f" ({s['message']})" if s.get("message") else ""))


def list_runs(kube: Kube, schedule: str) -> list[dict]:
    """RayJobs of ``schedule``, oldest first."""
    items = kube.request("GET", rayjobs_path(kube.namespace), query={"labelSelector": f"{SCHEDULE_LABEL}={schedule}"})
    return sorted(items.get("items", []), key=lambda j: (j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]))


def prune(kube: Kube, schedule: str, keep: int, log: Callable[[str], None]) -> list[str]:
    """Delete finished runs of ``schedule`` beyond the newest ``keep``; return the deleted names."""
    finished = [j for j in list_runs(kube, schedule) if is_terminal(j)]
    doomed = finished[: max(0, len(finished) - keep)]
    for job in doomed:
        name = job["metadata"]["name"]
        try:
            kube.request("DELETE", rayjobs_path(kube.namespace, name))
            log(f"deleted old run {name}")
        except ApiError as exc:
            if exc.status != 404:
                log(f"could not delete old run {name}: {exc}")
    return [j["metadata"]["name"] for j in doomed]


def submit_and_wait(
    kube: Kube,
    doc: dict,
    *,
    keep: int = 5,
    poll_s: float = 30.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda m: print(m, flush=True),
) -> int:
    """Steps 0-4 of the module docstring; returns the exit status."""
    schedule = doc["metadata"]["labels"][SCHEDULE_LABEL]
    prune(kube, schedule, keep, log)
    active = [j for j in list_runs(kube, schedule) if not is_terminal(j)]
    if active:
        log(f"previous run still active, not starting another: {'; '.join(describe(j) for j in active)}")
        return 0
    body = render(doc, now())
    name = body["metadata"]["name"]
    created = kube.request("POST", rayjobs_path(kube.namespace), body=body)
    log(f"created RayJob {kube.namespace}/{created['metadata']['name']}: {doc['spec'].get('entrypoint', '')}")
    last = ""
    while True:
        job = kube.request("GET", rayjobs_path(kube.namespace, name))
        state = describe(job)
        if state != last:
            log(state)
            last = state
        if is_terminal(job):
            break
        sleep(poll_s)
    ok = succeeded(job)
    log(f"{name}: {'succeeded' if ok else 'did not succeed'}; the Ray job's output is in its submitter's log "
        f"(kubectl logs -n {kube.namespace} -l job-name={name}) until KubeRay cleans the run up")
    prune(kube, schedule, keep, log)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", help="RayJob manifest (YAML), e.g. mounted from a ConfigMap")
    parser.add_argument("--keep", type=int, default=5, help="finished runs of this schedule to keep (default 5)")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between status checks (default 30)")
    parser.add_argument("--namespace", help="default: the pod's namespace")
    args = parser.parse_args(argv)
    doc = load_manifest(args.manifest)
    return submit_and_wait(Kube(args.namespace), doc, keep=args.keep, poll_s=args.poll)


if __name__ == "__main__":
    sys.exit(main())
