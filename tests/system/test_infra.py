"""Deployment files under infra/: parsed, checked against each other and against the repository.

Nothing is built or deployed here (no Docker or Kubernetes on the test machines). The checks are
what can go wrong without either: a manifest naming another image or Ray version than the
Dockerfile builds, an entrypoint or config path that does not exist (or is not copied into the
image), a config that does not validate, a head that would take model actors, a worker group
without GPUs, a malformed schedule, a launcher config Ray rejects.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import re
import shlex
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from geoseg.config import SegmentConfig, load_yaml
from geoseg.errors import ConfigError
from tests.helpers import REPO, Dockerfile, dockerignore_patterns, dockerignored, in_image, valid_cron, yaml_docs

ROOT = REPO
INFRA = ROOT / "infra"
DOCKERFILE = INFRA / "Dockerfile"
DOCKERIGNORE = INFRA / "Dockerfile.dockerignore"
K8S = INFRA / "k8s"
AWS_CLUSTER = INFRA / "aws" / "cluster.yaml"
SUBMITTER = K8S / "submit_rayjob.py"

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
IMAGE_RE = re.compile(rf"ghcr\.io/geoseg/geoseg(?::{re.escape(VERSION)}-[0-9a-f]{{12}}|@sha256:[0-9a-f]{{64}})")
"""The image every manifest runs: the Dockerfile's published name, tagged ``<project version>-<commit>``
(a tag per build) or named by digest; ``infra/set_image.py`` points the files at a new build."""


def the_image() -> str:
    """The one image the deployment files name (``infra/set_image.py`` finds it the same way)."""
    found = set_image_module().images(set_image_module().deployment_files(INFRA))
    assert len(found) == 1, f"the deployment files name {sorted(found)}, not one image"
    (image,) = found
    assert IMAGE_RE.fullmatch(image), f"{image}: not ghcr.io/geoseg/geoseg:{VERSION}-<12-hex commit> or @sha256:<digest>"
    return image


def set_image_module():
    spec = importlib.util.spec_from_file_location("set_image", INFRA / "set_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

SEGMENT_ENTRYPOINT = "python jobs/segment.py --config configs/cluster_s3.yaml"
MONITOR_ENTRYPOINT = "python jobs/monitor.py --config configs/monitor_pucallpa.yaml"
"""Both are entrypoint prefixes: options may follow (the CronJob's RayJob adds --output-root)."""


# ---------------------------------------------------------------------------------------------
# Checks (the parsers of Dockerfile, .dockerignore and cron are in tests.helpers)
# ---------------------------------------------------------------------------------------------


def entrypoint_parts(entrypoint: str) -> tuple[str, str, dict[str, str]]:
    """(script, config, {--option: value}) of ``python SCRIPT --config CONFIG [--option value]...``."""
    argv = shlex.split(entrypoint)
    assert argv[0] in ("python", "python3"), f"entrypoint {entrypoint!r} does not start with python"
    assert len(argv) > 1 and argv[1].endswith(".py"), f"entrypoint {entrypoint!r} names no script"
    assert "--config" in argv, f"entrypoint {entrypoint!r} has no --config"
    opts = {a: b for a, b in itertools.pairwise(argv[2:]) if a.startswith("--") and not b.startswith("--")}
    return argv[1], argv[argv.index("--config") + 1], opts


def monitor_config_model():
    from geoseg.config import MonitorConfig  # jobs/monitor.py's config

    return MonitorConfig


def entrypoint_config(entrypoint: str):
    """The config the entrypoint's job would run with (CLI overrides applied), validated by its model."""
    script, config, opts = entrypoint_parts(entrypoint)
    if script == "jobs/segment.py":
        return load_yaml(ROOT / config, SegmentConfig, {"output": opts.get("--output")})
    if script == "jobs/monitor.py":
        return load_yaml(ROOT / config, monitor_config_model(), {"output_root": opts.get("--output-root")})
    raise AssertionError(f"{entrypoint!r}: unknown job script (add its config model to tests/system/test_infra.py)")


def check_local_paths_in_image(paths: list[str], layout: set[str], what: str) -> None:
    """Local files a job reads on every node must be in the repository and in the image."""
    for p in paths:
        if p is None or "://" in p or p.startswith("/vsi"):
            continue
        pattern = p.replace("{period}", "*")
        assert any(ROOT.glob(pattern)) if any(c in pattern for c in "*?[") else (ROOT / p).exists(), (
            f"{what}: {p} matches no file in the repository")
        assert in_image(layout, p), f"{what}: {p} is read on the cluster but not copied into the image"


def check_entrypoint(entrypoint: str, layout: set[str]) -> None:
    """Script and config exist in the repository and in the image; the config validates; whatever the
    job reads locally is in the image; its outputs outlive the job's cluster (s3://)."""
    script, config, _opts = entrypoint_parts(entrypoint)
    for rel in (script, config):
        assert not rel.startswith("/"), f"{rel}: use a path relative to the image WORKDIR"
        assert (ROOT / rel).is_file(), f"{rel} (named by entrypoint {entrypoint!r}) is not in the repository"
        assert in_image(layout, rel), f"{rel} is not copied into the image by infra/Dockerfile"
    cfg = entrypoint_config(entrypoint)  # raises ConfigError naming a bad key
    if isinstance(cfg, SegmentConfig):
        assert cfg.output and cfg.output.startswith("s3://"), f"{entrypoint!r}: output must be s3:// on a cluster"
        check_local_paths_in_image([*cfg.inputs, cfg.aoi, cfg.model], layout, entrypoint)
    else:
        assert cfg.output_root.startswith("s3://"), (
            f"{entrypoint!r}: output_root {cfg.output_root!r} is lost with the RayJob's cluster; pass an s3:// --output-root")
        check_local_paths_in_image([r.imagery for r in cfg.regions] + [r.aoi for r in cfg.regions]
                                   + [cfg.segment.aoi, cfg.segment.model], layout, entrypoint)


def pod_specs(obj: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) of every pod template in a RayCluster spec."""
    out = [("headGroupSpec", obj["headGroupSpec"]["template"]["spec"])]
    for g in obj.get("workerGroupSpecs") or []:
        out.append((f"workerGroupSpecs[{g.get('groupName')}]", g["template"]["spec"]))
    return out


def quantity(v) -> float:
    return float(str(v))


def check_ray_cluster_spec(spec: dict, where: str, dockerfile: Dockerfile, service_accounts: set[str],
                           fixed_size: bool) -> None:
    """A CPU head that takes no model actors, GPU worker groups, this project's image and Ray."""
    assert spec.get("rayVersion") == dockerfile.args["RAY_VERSION"], (
        f"{where}: rayVersion {spec.get('rayVersion')!r} != the image's Ray {dockerfile.args['RAY_VERSION']}")
    head = spec["headGroupSpec"]
    params = head.get("rayStartParams")
    assert isinstance(params, dict), f"{where}: headGroupSpec.rayStartParams missing"
    assert params.get("num-cpus") == "0", f"{where}: the head must start with num-cpus \"0\" (no actors there)"
    for group in [head, *spec.get("workerGroupSpecs", [])]:
        for k, v in (group.get("rayStartParams") or {}).items():
            assert isinstance(v, str), f"{where}: rayStartParams.{k} must be a string (KubeRay map[string]string)"
    groups = spec.get("workerGroupSpecs") or []
    assert groups, f"{where}: no workerGroupSpecs"
    names = [g.get("groupName") for g in groups]
    assert len(set(names)) == len(names) and all(names), f"{where}: group names must be set and unique: {names}"
    gpu_groups = 0
    for g in groups:
        lo, n, hi = g.get("minReplicas", 0), g.get("replicas", 0), g.get("maxReplicas", 0)
        assert 0 <= lo <= n <= hi, f"{where}: group {g['groupName']}: need minReplicas <= replicas <= maxReplicas"
        if fixed_size:
            assert lo == n == hi, f"{where}: group {g['groupName']} must have a fixed size (no autoscaling)"
        for c in g["template"]["spec"]["containers"]:
            limits = (c.get("resources") or {}).get("limits") or {}
            requests = (c.get("resources") or {}).get("requests") or {}
            if "nvidia.com/gpu" in limits:
                assert quantity(limits["nvidia.com/gpu"]) >= 1, f"{where}: {g['groupName']}: nvidia.com/gpu < 1"
                if "nvidia.com/gpu" in requests:
                    assert quantity(requests["nvidia.com/gpu"]) == quantity(limits["nvidia.com/gpu"]), (
                        f"{where}: {g['groupName']}: GPU requests must equal limits")
                gpu_groups += 1
                assert lo >= 1, (f"{where}: GPU group {g['groupName']} may scale to 0: `device: auto` counts the "
                                 "GPUs present when a job starts, so keep minReplicas >= 1")
    assert gpu_groups, f"{where}: no worker group with nvidia.com/gpu in resources.limits"
    for pod_where, pod in pod_specs(spec):
        sa = pod.get("serviceAccountName")
        assert sa in service_accounts, f"{where}.{pod_where}: serviceAccountName {sa!r} is not defined in infra/k8s"
        for c in pod["containers"]:
            assert c["image"] == the_image(), f"{where}.{pod_where}: image {c['image']!r} != {the_image()}"
            assert c.get("workingDir", dockerfile.workdir) == dockerfile.workdir, (
                f"{where}.{pod_where}: workingDir differs from the image WORKDIR the entrypoints are relative to")
            limits = (c.get("resources") or {}).get("limits") or {}
            if pod_where == "headGroupSpec":
                assert "nvidia.com/gpu" not in limits, f"{where}: the head must be a CPU node"
            mounts = {m["mountPath"] for m in c.get("volumeMounts") or []}
            for env in c.get("env") or []:
                if env["name"] == "GEOSEG_SCRATCH":
                    assert env["value"] in mounts, f"{where}.{pod_where}: GEOSEG_SCRATCH {env['value']} is not a volume"
            volumes = {v["name"] for v in pod.get("volumes") or []}
            for m in c.get("volumeMounts") or []:
                assert m["name"] in volumes, f"{where}.{pod_where}: volumeMount {m['name']} has no volume"


def check_rayjob(doc: dict, where: str, entrypoint: str, dockerfile: Dockerfile, service_accounts: set[str],
                 check_paths: bool = True) -> None:
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob", where
    name = doc["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 47, f"{where}: bad RayJob name {name!r}"
    spec = doc["spec"]
    assert spec["entrypoint"].startswith(entrypoint), f"{where}: entrypoint {spec['entrypoint']!r} is not {entrypoint!r}..."
    if check_paths:
        check_entrypoint(spec["entrypoint"], dockerfile.image_layout())
    assert spec.get("shutdownAfterJobFinishes") is True, f"{where}: the cluster must be deleted when the job ends"
    assert isinstance(spec.get("ttlSecondsAfterFinished"), int) and spec["ttlSecondsAfterFinished"] >= 0, where
    assert "clusterSelector" not in spec, f"{where}: the RayJob must bring its own cluster (rayClusterSpec)"
    cluster = spec["rayClusterSpec"]
    assert not cluster.get("enableInTreeAutoscaling"), (
        f"{where}: no autoscaling in a RayJob cluster: the job sizes its actor pool from the GPUs present at start")
    check_ray_cluster_spec(cluster, where, dockerfile, service_accounts, fixed_size=True)


def collect(obj, key: str) -> list:
    """Every value stored under ``key`` anywhere in a parsed YAML tree (ConfigMap strings included)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(collect(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(collect(v, key))
    elif isinstance(obj, str) and "\n" in obj and "apiVersion:" in obj:
        out.extend(collect(yaml.safe_load(obj), key))
    return out


def load_submitter():
    spec = importlib.util.spec_from_file_location("submit_rayjob", SUBMITTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def k8s() -> dict[str, list[dict]]:
    return {p.name: yaml_docs(p) for p in sorted(K8S.glob("*.yaml"))}


@pytest.fixture(scope="module")
def service_accounts(k8s) -> set[str]:
    return {d["metadata"]["name"] for docs in k8s.values() for d in docs if d["kind"] == "ServiceAccount"}


def one(docs: list[dict], kind: str) -> dict:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def test_dockerfile_base_is_ray_gpu_image_of_a_supported_ray_and_python(dockerfile):
    ray_version = dockerfile.args["RAY_VERSION"]
    py = dockerfile.args["PYTHON_TAG"]
    assert dockerfile.base == f"rayproject/ray:{ray_version}-{py}-{dockerfile.args['CUDA_TAG']}"
    # Ray pinned in the image satisfies the project's requirement; so does its Python.
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    ray_req = next(Requirement(r) for r in PYPROJECT["project"]["dependencies"] if Requirement(r).name == "ray")
    assert Version(ray_version) in ray_req.specifier, f"image Ray {ray_version} does not satisfy {ray_req}"
    m = re.fullmatch(r"py(\d)(\d+)", py)
    assert m and Version(f"{m[1]}.{m[2]}") in SpecifierSet(PYPROJECT["project"]["requires-python"])


def test_dockerfile_installs_cuda_torch_binary_geo_wheels_and_pins_ray(dockerfile):
    runs = [a for i, a in dockerfile.instructions if i == "RUN"]
    torch_index = dockerfile.expand(dockerfile.args["TORCH_INDEX_URL"])
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/(cu\d+|cpu)", torch_index), torch_index
    assert any("--index-url" in r and "torch==" in r for r in runs), "torch is not installed from the CUDA index"
    deps = [r for r in runs if re.search(r"pip install .*-c /home/ray/constraints.txt -r /home/ray/requirements.txt", r)]
    assert len(deps) == 1, "expected one `pip install ... -c constraints -r requirements` of the dependencies"
    assert re.search(r"--only-binary=\S*rasterio", deps[0]), "rasterio must come as a wheel (bundled GDAL)"
    constraints = " ".join(r for r in runs if "/home/ray/constraints.txt" in r and "echo" in r)
    assert 'ray==${RAY_VERSION}' in constraints, "the project install must keep Ray at RAY_VERSION"
    # the project's files are copied before they are installed, README.md included (pyproject's readme)
    install = [r for r in runs if re.search(r"pip install --no-deps \.(\s|$)", r)]
    assert len(install) == 1, "expected one `pip install --no-deps .` of the project"
    order = [(i, a) for i, a in dockerfile.instructions if i in ("COPY", "RUN")]
    install_at = next(n for n, (i, a) in enumerate(order) if i == "RUN" and a == install[0])
    copied_before = {s.rstrip("/") for i, a in order[:install_at] if i == "COPY"
                     for s in shlex.split(a)[:-1] if not s.startswith("--")}
    assert {"pyproject.toml", PYPROJECT["project"]["readme"], "geoseg"} <= copied_before


def test_dockerfile_copies_existing_paths_that_the_dockerignore_keeps(dockerfile):
    patterns = dockerignore_patterns(DOCKERIGNORE)
    copies = dockerfile.copies()
    assert copies
    for sources, _dest in copies:
        for src in sources:
            path = ROOT / src
            assert path.exists(), f"COPY {src}: no such path in the repository"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if "__pycache__" in rel or rel.endswith(".pyc") or ".egg-info" in rel:
                    continue
                assert not dockerignored(patterns, rel), f"{rel} is copied by the Dockerfile but excluded by {DOCKERIGNORE.name}"
    # and the ignore file does keep junk and unrelated trees out of the build context
    for rel in ("out/demo/x.tif", "tests/cli/test_segment.py", ".git/HEAD", "geoseg/__pycache__/x.pyc", "benchmarks/x.py"):
        assert dockerignored(patterns, rel), f"{rel} would be sent to the Docker build"


def test_dockerfile_labels_and_build_command_name_the_published_image(dockerfile):
    assert dockerfile.labels.get("org.opencontainers.image.version") == VERSION
    build = f"docker build -f infra/Dockerfile -t ghcr.io/geoseg/geoseg:{VERSION}-$(git rev-parse --short=12 HEAD) ."
    assert build in DOCKERFILE.read_text()
    assert build in (INFRA / "README.md").read_text()


def test_dockerignore_matcher_follows_docker_rules():
    pats = ["*", "!geoseg", "**/__pycache__", "!data/sample"]
    assert not dockerignored(pats, "geoseg/model/weights/x/model.json")
    assert dockerignored(pats, "geoseg/__pycache__/a.pyc")
    assert dockerignored(pats, "data/other/a.tif")
    assert not dockerignored(pats, "data/sample/a.tif")
    assert dockerignored(pats, "pyproject.toml")


# ---------------------------------------------------------------------------------------------
# Configs named by the infrastructure
# ---------------------------------------------------------------------------------------------


def test_cluster_s3_config_is_a_valid_s3_cluster_run():
    cfg = load_yaml(ROOT / "configs" / "cluster_s3.yaml", SegmentConfig)
    assert cfg.inputs and all(i.startswith("s3://") for i in cfg.inputs)
    stems = [i.rsplit("/", 1)[-1].rsplit(".", 1)[0] for i in cfg.inputs]
    assert len(set(stems)) == len(stems), "outputs are named by stem: input file names must differ"
    assert cfg.output and cfg.output.startswith("s3://")
    assert cfg.runtime.address is None, "the job must connect to RAY_ADDRESS (set by KubeRay / ray job submit)"
    assert cfg.device == "auto" and not cfg.runtime.local


def test_every_config_named_by_infra_exists_and_validates(dockerfile, k8s):
    layout = dockerfile.image_layout()
    entrypoints = [e for docs in k8s.values() for e in collect(docs, "entrypoint")]
    assert any(e.startswith(SEGMENT_ENTRYPOINT) for e in entrypoints), entrypoints
    assert any(e.startswith(MONITOR_ENTRYPOINT) for e in entrypoints), entrypoints
    for e in entrypoints:
        check_entrypoint(e, layout)
    # configs named anywhere else in infra/ (commands in the README and in comments)
    named = set()
    for p in [*INFRA.rglob("*.yaml"), INFRA / "README.md", DOCKERFILE]:
        named |= set(re.findall(r"configs/[\w.\-]+\.ya?ml", p.read_text()))
    assert named
    for rel in sorted(named):
        path = ROOT / rel
        assert path.is_file(), f"{rel} is named in infra/ but does not exist"
        assert in_image(layout, rel), f"{rel} is named in infra/ but not copied into the image"
        if rel.startswith("configs/monitor_"):
            load_yaml(path, monitor_config_model())
        elif not rel.startswith("configs/train_"):
            load_yaml(path, SegmentConfig)


# ---------------------------------------------------------------------------------------------
# KubeRay and Kubernetes manifests
# ---------------------------------------------------------------------------------------------


def test_k8s_manifests_have_the_expected_objects(k8s):
    assert set(k8s) >= {"raycluster.yaml", "rayjob.yaml", "cronjob.yaml", "serviceaccount.yaml"}
    for name, docs in k8s.items():
        for d in docs:
            assert d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"), f"{name}: {d}"
    assert one(k8s["raycluster.yaml"], "RayCluster")["apiVersion"] == "ray.io/v1"
    assert one(k8s["rayjob.yaml"], "RayJob")["apiVersion"] == "ray.io/v1"
    assert one(k8s["cronjob.yaml"], "CronJob")["apiVersion"] == "batch/v1"


def test_one_image_and_one_ray_version_everywhere(k8s, dockerfile):
    trees = [docs for docs in k8s.values()] + [yaml.safe_load(AWS_CLUSTER.read_text())]
    images = {i for t in trees for i in collect(t, "image")}
    images |= {i for t in trees for k in ("head_image", "worker_image") for i in collect(t, k)}
    assert images == {the_image()}, f"manifests name {images}; expected one image, ghcr.io/geoseg/geoseg:<version>-<commit>"
    versions = {v for t in trees for v in collect(t, "rayVersion")}
    assert versions == {dockerfile.args["RAY_VERSION"]}, versions


def test_raycluster_cpu_head_and_autoscaled_gpu_workers(k8s, dockerfile, service_accounts):
    rc = one(k8s["raycluster.yaml"], "RayCluster")
    assert len(rc["metadata"]["name"]) <= 53
    assert rc["spec"].get("enableInTreeAutoscaling") is True
    check_ray_cluster_spec(rc["spec"], "raycluster.yaml", dockerfile, service_accounts, fixed_size=False)
    gpu = rc["spec"]["workerGroupSpecs"][0]
    assert gpu["maxReplicas"] > gpu["minReplicas"], "an interactive cluster should be able to grow"


def test_rayjob_runs_segment_entrypoint_on_its_own_gpu_cluster(k8s, dockerfile, service_accounts):
    check_rayjob(one(k8s["rayjob.yaml"], "RayJob"), "rayjob.yaml", SEGMENT_ENTRYPOINT, dockerfile, service_accounts)


def test_checks_fail_on_broken_manifests(k8s, dockerfile, service_accounts):
    """The structural checks are not vacuous: each breakage below is caught."""
    good = one(k8s["rayjob.yaml"], "RayJob")

    def broken(edit):
        doc = copy.deepcopy(good)
        edit(doc)
        with pytest.raises((AssertionError, ConfigError)):
            check_rayjob(doc, "broken", "python jobs/", dockerfile, service_accounts)

    workers = lambda d: d["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    container = lambda d: workers(d)["template"]["spec"]["containers"][0]
    broken(lambda d: d["spec"].update(entrypoint="python jobs/no_such_job.py --config configs/cluster_s3.yaml"))
    broken(lambda d: d["spec"].update(entrypoint="python jobs/segment.py --config configs/no_such.yaml"))
    broken(lambda d: d["spec"].update(entrypoint="python jobs/segment.py --config configs/train_default.yaml"))
    broken(lambda d: d["spec"].update(entrypoint="python jobs/segment.py --config configs/default.yaml"))  # local output
    broken(lambda d: d["spec"].update(entrypoint="python jobs/monitor.py --config configs/monitor_pucallpa.yaml"))
    broken(lambda d: container(d).update(image="rayproject/ray:2.60.0-py311-cu126"))
    broken(lambda d: container(d)["resources"]["limits"].pop("nvidia.com/gpu"))
    broken(lambda d: d["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update({"num-cpus": "1"}))
    broken(lambda d: d["spec"]["rayClusterSpec"].update(rayVersion="2.9.0"))
    broken(lambda d: workers(d).update(maxReplicas=4))
    broken(lambda d: d["spec"].update(shutdownAfterJobFinishes=False))
    broken(lambda d: workers(d)["template"]["spec"].update(serviceAccountName="nobody"))


def cron_rayjob(docs: list[dict]) -> tuple[dict, dict, str, dict]:
    """(CronJob pod spec, its container, the manifest path it is given, the RayJob in the ConfigMap)."""
    cron = one(docs, "CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    argv = container.get("command", []) + container.get("args", [])
    manifest_path = argv[2]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for m in container.get("volumeMounts") or []:
        mount = m["mountPath"].rstrip("/")
        if manifest_path.startswith(mount + "/"):
            cm_name = volumes[m["name"]]["configMap"]["name"]
            key = manifest_path[len(mount) + 1:]
            break
    else:
        pytest.fail(f"{manifest_path} is not on a volume mounted in the CronJob's container")
    cm = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name]
    assert cm, f"ConfigMap {cm_name} is not defined in cronjob.yaml"
    assert key in cm[0]["data"], f"ConfigMap {cm_name} has no key {key}"
    return pod, container, manifest_path, yaml.safe_load(cm[0]["data"][key])


def test_cronjob_creates_a_monitoring_rayjob_and_waits_for_it(k8s, dockerfile, service_accounts, tmp_path):
    docs = k8s["cronjob.yaml"]
    spec = one(docs, "CronJob")["spec"]
    assert valid_cron(spec["schedule"]), spec["schedule"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert isinstance(spec.get("startingDeadlineSeconds"), int)
    job = spec["jobTemplate"]["spec"]
    pod, container, _manifest_path, rayjob = cron_rayjob(docs)
    assert pod["restartPolicy"] in ("Never", "OnFailure")
    assert container["image"] == the_image()
    argv = container.get("command", []) + container.get("args", [])
    submitter = SUBMITTER.relative_to(ROOT).as_posix()
    assert argv[:2] == ["python", submitter], argv
    assert in_image(dockerfile.image_layout(), submitter), f"{submitter} is not copied into the image"
    # the RayJob it submits: structure here, entrypoint paths in the next test
    check_rayjob(rayjob, "cronjob.yaml ConfigMap", MONITOR_ENTRYPOINT, dockerfile, service_accounts, check_paths=False)
    assert job.get("activeDeadlineSeconds", 0) >= rayjob["spec"].get("activeDeadlineSeconds", 0), (
        "the submitter pod must outlive the RayJob it waits for")
    # the submitter accepts that manifest, and its run names stay valid RayJob names
    sub = load_submitter()
    path = tmp_path / "rayjob.yaml"
    path.write_text(yaml.safe_dump(rayjob))
    doc = sub.load_manifest(path)
    assert sub.run_name(doc["metadata"]["name"], datetime(2099, 12, 31, 23, 59, tzinfo=UTC))
    # its service account may create, read, list and delete RayJobs, and nothing else
    sa = pod["serviceAccountName"]
    assert sa in service_accounts
    binding = next(d for d in docs if d["kind"] == "RoleBinding"
                   and any(s["kind"] == "ServiceAccount" and s["name"] == sa for s in d["subjects"]))
    role = next(d for d in docs if d["kind"] == binding["roleRef"]["kind"]
                and d["metadata"]["name"] == binding["roleRef"]["name"])
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert granted == {("ray.io", "rayjobs", v) for v in ("create", "get", "list", "delete")}, granted


def test_monitoring_entrypoint_and_config_exist(k8s, dockerfile):
    """jobs/monitor.py and configs/monitor_pucallpa.yaml: in the repository and the image, the config
    valid, its imagery and AOIs in the image, its history store on S3."""
    _pod, _container, _path, rayjob = cron_rayjob(k8s["cronjob.yaml"])
    assert rayjob["spec"]["entrypoint"].startswith(MONITOR_ENTRYPOINT)
    check_entrypoint(rayjob["spec"]["entrypoint"], dockerfile.image_layout())


@pytest.mark.parametrize("expr,ok", [
    ("0 6 * * 1", True), ("*/15 0-23/2 1,15 jan-jun mon-fri", True), ("@weekly", True), ("0 0 1 1 7", True),
    ("61 * * * *", False), ("0 6 * *", False), ("0 24 * * *", False), ("0 6 0 * *", False),
    ("0 6 * 13 *", False), ("*/0 * * * *", False), ("5-1 * * * *", False), ("0 6 * * funday", False),
])
def test_cron_validator(expr, ok):
    assert valid_cron(expr) is ok


# ---------------------------------------------------------------------------------------------
# The CronJob's submitter (infra/k8s/submit_rayjob.py), against a fake API server
# ---------------------------------------------------------------------------------------------


class FakeKube:
    namespace = "geo"

    def __init__(self, existing=(), statuses=()):
        self.jobs = {j["metadata"]["name"]: j for j in existing}
        self.statuses = list(statuses)  # successive status of the created job, one per GET
        self.calls = []

    def request(self, method, path, body=None, query=None):
        self.calls.append((method, path))
        base = "/apis/ray.io/v1/namespaces/geo/rayjobs"
        assert path.startswith(base)
        name = path[len(base) + 1:] or None
        if method == "GET" and name is None:
            label = query["labelSelector"].split("=", 1)
            items = [j for j in self.jobs.values() if j["metadata"].get("labels", {}).get(label[0]) == label[1]]
            return {"items": items}
        if method == "POST":
            obj = copy.deepcopy(body)
            obj["metadata"]["creationTimestamp"] = "2099-01-01T00:00:00Z"
            self.jobs[obj["metadata"]["name"]] = obj
            return obj
        if method == "GET":
            job = self.jobs[name]
            if self.statuses:
                job["status"] = self.statuses.pop(0)
            return job
        if method == "DELETE":
            del self.jobs[name]
            return {}
        raise AssertionError(method)


def _manifest():
    return {"apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": "geoseg-monitor", "labels": {"geoseg.io/schedule": "monitor-x"}},
            "spec": {"entrypoint": MONITOR_ENTRYPOINT}}


def _run(name, ts, deployment, job_status=None):
    return {"metadata": {"name": name, "creationTimestamp": ts, "labels": {"geoseg.io/schedule": "monitor-x"}},
            "status": {"jobDeploymentStatus": deployment, "jobStatus": job_status}}


NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def test_submitter_creates_waits_and_reports_success():
    sub = load_submitter()
    kube = FakeKube(statuses=[{"jobDeploymentStatus": "Initializing"}, {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"},
                              {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    doc = _manifest()
    logs = []
    rc = sub.submit_and_wait(kube, doc, now=lambda: NOW, sleep=lambda s: None, log=logs.append)
    assert rc == 0
    assert "geoseg-monitor-2611260300" in kube.jobs
    created = kube.jobs["geoseg-monitor-2611260300"]
    assert created["metadata"]["labels"]["geoseg.io/schedule"] == "monitor-x"
    assert created["spec"]["entrypoint"] == MONITOR_ENTRYPOINT
    assert doc["metadata"]["name"] == "geoseg-monitor", "the manifest must not be modified"
    assert [m for m, _ in kube.calls].count("POST") == 1


def test_submitter_reports_failure():
    sub = load_submitter()
    for final in ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED"},
                  {"jobDeploymentStatus": "ValidationFailed"},
                  {"jobDeploymentStatus": "Complete", "jobStatus": "STOPPED"}):
        kube = FakeKube(statuses=[final])
        assert sub.submit_and_wait(kube, _manifest(), now=lambda: NOW, sleep=lambda s: None, log=lambda m: None) == 1


def test_submitter_starts_nothing_while_a_run_is_active():
    sub = load_submitter()
    kube = FakeKube(existing=[_run("geoseg-monitor-2611190600", "2026-11-19T06:00:00Z", "Running", "RUNNING")])
    logs = []
    assert sub.submit_and_wait(kube, _manifest(), now=lambda: NOW, sleep=lambda s: None, log=logs.append) == 0
    assert "POST" not in [m for m, _ in kube.calls]
    assert "still active" in logs[0]


def test_submitter_prunes_before_its_run_when_a_previous_submitter_was_stopped():
    """A submitter killed while waiting never reaches its pruning step; the next one prunes first,
    even when it then starts nothing because a run is still active."""
    sub = load_submitter()
    old = [_run(f"geoseg-monitor-26110{d}0600", f"2026-11-0{d}T06:00:00Z", "Complete", "SUCCEEDED") for d in range(1, 9)]
    active = _run("geoseg-monitor-2611190600", "2026-11-19T06:00:00Z", "Running", "RUNNING")
    kube = FakeKube(existing=[*old, active])
    assert sub.submit_and_wait(kube, _manifest(), keep=5, now=lambda: NOW, sleep=lambda s: None, log=lambda m: None) == 0
    assert "POST" not in [m for m, _ in kube.calls]
    assert sorted(kube.jobs) == ["geoseg-monitor-2611040600", "geoseg-monitor-2611050600", "geoseg-monitor-2611060600",
                                 "geoseg-monitor-2611070600", "geoseg-monitor-2611080600", "geoseg-monitor-2611190600"]


def test_submitter_keeps_the_newest_finished_runs():
    sub = load_submitter()
    old = [_run(f"geoseg-monitor-26110{d}0600", f"2026-11-0{d}T06:00:00Z", "Complete", "SUCCEEDED") for d in range(1, 8)]
    other = _run("other-1", "2026-01-01T00:00:00Z", "Complete", "SUCCEEDED")
    other["metadata"]["labels"] = {"geoseg.io/schedule": "another"}
    kube = FakeKube(existing=[*old, other], statuses=[{"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}])
    assert sub.submit_and_wait(kube, _manifest(), keep=5, now=lambda: NOW, sleep=lambda s: None, log=lambda m: None) == 0
    kept = sorted(n for n in kube.jobs if n.startswith("geoseg-monitor"))
    assert kept == ["geoseg-monitor-2611040600", "geoseg-monitor-2611050600", "geoseg-monitor-2611060600",
                    "geoseg-monitor-2611070600", "geoseg-monitor-2611260300"]
    assert "other-1" in kube.jobs, "runs of other schedules are never touched"


def test_submitter_rejects_bad_manifests_and_names(tmp_path):
    sub = load_submitter()
    with pytest.raises(SystemExit):
        sub.run_name("x" * 40, NOW)
    with pytest.raises(SystemExit):
        sub.run_name("Geoseg_Monitor", NOW)
    bad = _manifest()
    del bad["metadata"]["labels"]
    p = tmp_path / "rayjob.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit):
        sub.load_manifest(p)
    p.write_text(yaml.safe_dump({**_manifest(), "kind": "RayCluster"}))
    with pytest.raises(SystemExit):
        sub.load_manifest(p)


# ---------------------------------------------------------------------------------------------
# Ray cluster launcher (AWS)
# ---------------------------------------------------------------------------------------------


def _ray_schema() -> dict:
    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def test_aws_cluster_config_validates_against_rays_schema():
    jsonschema = pytest.importorskip("jsonschema")
    config = yaml.safe_load(AWS_CLUSTER.read_text())
    jsonschema.validate(config, _ray_schema())
    # and Ray's own preparation (defaults merged, node types checked), as `ray up` does before any AWS call
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(config)))


def test_aws_cluster_cpu_head_and_gpu_spot_workers_on_the_project_image():
    c = yaml.safe_load(AWS_CLUSTER.read_text())
    assert c["provider"]["type"] == "aws"
    region = c["provider"]["region"]
    zones = c["provider"].get("availability_zone", "").split(",")
    assert all(z.strip().startswith(region) for z in zones if z), zones
    types = c["available_node_types"]
    head = types[c["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "the head must advertise no CPUs (no model actors there)"
    assert not re.match(r"[gp]\d", head["node_config"]["InstanceType"]), "the head should be a CPU instance"
    gpu = {k: t for k, t in types.items() if k != c["head_node_type"] and re.match(r"[gp]\d", t["node_config"]["InstanceType"])}
    assert gpu, "no GPU worker type (g*/p* instance)"
    for name, t in gpu.items():
        assert t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot", f"{name}: not spot"
        assert t.get("min_workers", 0) >= 1, f"{name}: keep one GPU worker (device: auto counts GPUs at job start)"
        assert t.get("max_workers", 0) >= t["min_workers"]
    assert c["max_workers"] >= sum(t.get("min_workers", 0) for t in gpu.values())
    for name, t in types.items():
        nc = t["node_config"]
        assert "IamInstanceProfile" in nc, f"{name}: no IAM instance profile (S3 access)"
        assert nc.get("ImageId"), f"{name}: no ImageId (Ray's built-in default AMI is outdated)"
    docker = c["docker"]
    assert docker["image"] == the_image()
    assert "--gpus all" in docker.get("worker_run_options", [])
    assert "--gpus all" not in docker.get("run_options", []) + docker.get("head_run_options", []), (
        "--gpus all on the CPU head would fail to start its container")
    assert f"--env AWS_REGION={region}" in docker.get("run_options", [])
    assert any("--num-cpus=0" in cmd for cmd in c["head_start_ray_commands"])


# ---------------------------------------------------------------------------------------------
# Documentation
# ---------------------------------------------------------------------------------------------


def test_infra_readme_covers_every_file():
    readme = (INFRA / "README.md").read_text()
    files = [p for p in INFRA.rglob("*") if p.is_file() and p.name != "README.md" and "__pycache__" not in p.parts]
    for p in files:
        rel = p.relative_to(ROOT).as_posix()
        assert rel in readme, f"infra/README.md does not mention {rel}"
    for cmd in ("docker build -f infra/Dockerfile", "kubectl apply", "ray up infra/aws/cluster.yaml", "ray job submit"):
        assert cmd in readme, f"infra/README.md does not show `{cmd}`"
