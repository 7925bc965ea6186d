"""Deployment properties of infra/ that a cluster would enforce: CUDA, pins, image layers, deadlines,
Pod Security "restricted", requests against the documented node sizes, image references, and the
KubeRay / Kubernetes schemas.

Oracles, each independent of the files checked: the published compatibility facts (PyTorch's release
matrix, Ray's image platforms, NVIDIA's driver table; constants below, sources in infra/README.md),
the Pod Security Standards' "restricted" rules (re-implemented here from the Kubernetes docs), the
KubeRay pod-building rules (KubeRay's pod.go: the autoscaler sidecar and the wait-gcs-ready init
container), the KubeRay ray.io/v1 schemas shipped in tests/system/schemas/ and the Kubernetes
OpenAPI schemas of the kubernetes-validate package.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, Dockerfile, yaml_docs

INFRA = REPO / "infra"
K8S = INFRA / "k8s"
README = (INFRA / "README.md").read_text()
SCHEMAS = Path(__file__).parent / "schemas"

# --- published facts (sources: infra/README.md, "Sources") ------------------------------------------
TORCH_CUDA = {"2.10": {"cu126", "cu128", "cu130"}, "2.11": {"cu126", "cu128", "cu130"},
              "2.12": {"cu126", "cu130", "cu132"}, "2.13": {"cu126", "cu130", "cu132"},
              "2.14": {"cu126", "cu130", "cu132"}}
"""CUDA builds of each PyTorch minor release (pytorch/pytorch RELEASE.md, release compatibility matrix)."""
RAY_IMAGE_PLATFORMS = {"cpu", "cu117", "cu118", "cu121", "cu123", "cu124", "cu125", "cu126", "cu128", "cu129"}
"""Platform tags of rayproject/ray images (ray-project/ray ray-images.yaml); the `-gpu` alias is cu121."""
DRIVER_MIN = {"cu126": "560.35.05", "cu128": "570.124.06", "cu129": "575.57.08", "cu121": "530.30.02"}
"""Minimum Linux driver of the CUDA toolkit in the base image (NVIDIA CUDA release notes, table 3)."""
KUBERAY_INIT = {"cpu": 0.2, "memory": 256 * 2**20}
"""KubeRay's wait-gcs-ready init container in worker pods (its requests, pod.go)."""


# --- small parsers -------------------------------------------------------------------------------------


def quantity(q) -> float:
    """A Kubernetes quantity as a number (cores or bytes)."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q))
    assert m, f"bad quantity {q!r}"
    units = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(m[1]) * units[m[2]]


def node_types() -> dict[str, dict[str, float]]:
    """The README's "Node types" table: role -> vCPU, memory, GPUs and disk (GiB → bytes)."""
    rows = re.findall(r"^\| `(\w[\w-]*)` \| `([\w.]+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", README, re.MULTILINE)
    assert rows, "infra/README.md has no node-type table"
    return {r[0]: {"instance": r[1], "cpu": float(r[2]), "memory": float(r[3]) * 2**30, "gpu": float(r[4]),
                   "disk": float(r[5]) * 2**30} for r in rows}


def allocatable(node: dict[str, float]) -> dict[str, float]:
    """What the README's rule leaves for pods: 90 % of the vCPUs less 0.2, 85 % of the memory less
    0.5 GiB, 85 % of the disk less 30 GiB (kubelet and system reserves, DaemonSets, eviction
    thresholds and the images)."""
    return {"cpu": node["cpu"] * 0.9 - 0.2, "memory": node["memory"] * 0.85 - 0.5 * 2**30,
            "ephemeral-storage": node["disk"] * 0.85 - 30 * 2**30, "nvidia.com/gpu": node["gpu"]}


def ray_clusters() -> list[tuple[str, dict]]:
    """(where, RayCluster spec) of every Ray cluster the manifests create."""
    out = [("raycluster.yaml", yaml_docs(K8S / "raycluster.yaml")[0]["spec"]),
           ("rayjob.yaml", yaml_docs(K8S / "rayjob.yaml")[0]["spec"]["rayClusterSpec"])]
    return [*out, ("cronjob.yaml ConfigMap", monitor_rayjob()["spec"]["rayClusterSpec"])]


def monitor_rayjob() -> dict:
    cm = next(d for d in yaml_docs(K8S / "cronjob.yaml") if d["kind"] == "ConfigMap")
    return yaml.safe_load(cm["data"]["rayjob.yaml"])


def cronjob() -> dict:
    return next(d for d in yaml_docs(K8S / "cronjob.yaml") if d["kind"] == "CronJob")


def kuberay_pods(spec: dict) -> list[tuple[str, dict]]:
    """(role, pod spec as KubeRay builds it): the autoscaler sidecar joins the head (resources and
    securityContext from autoscalerOptions), workers get the wait-gcs-ready init container (the Ray
    container's securityContext, fixed requests)."""
    head = copy.deepcopy(spec["headGroupSpec"]["template"]["spec"])
    if spec.get("enableInTreeAutoscaling"):
        opts = spec.get("autoscalerOptions") or {}
        head["containers"].append({
            "name": "autoscaler", "image": opts.get("image", head["containers"][0]["image"]),
            "resources": opts.get("resources", {"requests": {"cpu": "500m", "memory": "512Mi"}}),
            "securityContext": opts.get("securityContext"), "volumeMounts": opts.get("volumeMounts", [])})
    pods = [("head", head)]
    for group in spec.get("workerGroupSpecs") or []:
        pod = copy.deepcopy(group["template"]["spec"])
        ray = pod["containers"][0]
        pod.setdefault("initContainers", []).append({
            "name": "wait-gcs-ready", "image": ray["image"], "securityContext": copy.deepcopy(ray.get("securityContext")),
            "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}}, "volumeMounts": ray.get("volumeMounts", [])})
        pods.append(("gpu-worker" if "nvidia.com/gpu" in ray["resources"].get("limits", {}) else "worker", pod))
    return pods


def all_pods() -> list[tuple[str, str, dict]]:
    """(where, node role, pod spec) of every pod the manifests make, KubeRay's additions included."""
    out = [(f"{where} {role}", role, pod) for where, spec in ray_clusters() for role, pod in kuberay_pods(spec)]
    return [*out, ("cronjob.yaml submitter", "system", cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"])]


# --- Pod Security Standards, "restricted" ----------------------------------------------------------------

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}


def pss_restricted_violations(pod: dict) -> list[str]:
    """The rules of the Pod Security Standards' "restricted" profile (baseline included) that ``pod``
    breaks; empty when it is admitted (kubernetes.io/docs/concepts/security/pod-security-standards)."""
    bad = []
    psc = pod.get("securityContext") or {}
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(k):
            bad.append(f"{k} is true")
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            bad.append(f"volume {v['name']}: {sorted(kinds - ALLOWED_VOLUMES)} not allowed")
    if (psc.get("seccompProfile") or {}).get("type") not in (None, "RuntimeDefault", "Localhost"):
        bad.append("pod seccompProfile must be RuntimeDefault or Localhost")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    for c in [*(pod.get("initContainers") or []), *pod["containers"], *(pod.get("ephemeralContainers") or [])]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile RuntimeDefault or Localhost required (pod or container)")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{name}: hostPort")
    return bad


@pytest.mark.parametrize("where,role,pod", all_pods(), ids=lambda x: x if isinstance(x, str) else "")
def test_pods_pass_the_restricted_pod_security_standard(where, role, pod):
    assert pss_restricted_violations(pod) == [], where


def test_restricted_checker_catches_each_violation():
    good = kuberay_pods(ray_clusters()[0][1])[1][1]
    assert pss_restricted_violations(good) == []
    edits = [
        lambda p: p["securityContext"].pop("seccompProfile"),
        lambda p: p["securityContext"].pop("runAsNonRoot"),
        lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
        lambda p: p["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(drop=[]),
        lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
        lambda p: p["initContainers"][0].update(securityContext={}),
        lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        lambda p: p["containers"][0]["securityContext"].update(runAsUser=0),
        lambda p: p.update(hostNetwork=True),
    ]
    for edit in edits:
        pod = copy.deepcopy(good)
        edit(pod)
        assert pss_restricted_violations(pod), edit


@pytest.mark.parametrize("where,role,pod", all_pods(), ids=lambda x: x if isinstance(x, str) else "")
def test_what_ray_writes_is_mounted_and_the_root_filesystem_is_read_only(where, role, pod):
    dockerfile = Dockerfile(INFRA / "Dockerfile")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    user = dockerfile.user
    assert pod["securityContext"].get("runAsUser") == int(user.split(":")[0]), f"{where}: runAsUser != image USER {user}"
    for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
        assert (c.get("securityContext") or {}).get("readOnlyRootFilesystem") is True, f"{where} {c['name']}"
        if c["name"] == "submit":
            continue  # the submitter only reads its manifest and talks to the API server
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts") or []}
        assert "/tmp" in mounts and "emptyDir" in mounts["/tmp"], f"{where} {c['name']}: /tmp (Ray's /tmp/ray) is not a volume"
        env = {e["name"]: e.get("value") for e in c.get("env") or []}
        scratch = env.get("GEOSEG_SCRATCH", dockerfile.env["GEOSEG_SCRATCH"])
        assert any(scratch == m or scratch.startswith(m.rstrip("/") + "/") for m in mounts), f"{where}: {scratch} not on a volume"
        if c["name"].startswith("ray-"):
            shm = mounts.get("/dev/shm", {}).get("emptyDir") or {}
            assert shm.get("medium") == "Memory", f"{where} {c['name']}: /dev/shm must be a memory volume (object store)"
            limit = quantity(c["resources"]["limits"]["memory"])
            assert quantity(shm["sizeLimit"]) <= 0.5 * limit, f"{where}: /dev/shm counts against the memory limit"


@pytest.mark.parametrize("where,role,pod", all_pods(), ids=lambda x: x if isinstance(x, str) else "")
def test_requests_fit_the_documented_node_type(where, role, pod):
    nodes = node_types()
    smallest = min(nodes.values(), key=lambda n: (n["cpu"], n["memory"]))
    free = allocatable(smallest if role == "system" else nodes[role])
    containers = pod["containers"]
    need = {}
    for key in ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu"):
        total = sum(quantity((c.get("resources") or {}).get("requests", {}).get(key, 0)) for c in containers)
        init = max([quantity((c.get("resources") or {}).get("requests", {}).get(key, 0)) for c in pod.get("initContainers") or []] or [0])
        need[key] = max(total, init)
        assert need[key] <= free[key] + 1e-9, f"{where}: {key} request {need[key]:.4g} > {free[key]:.4g} left on {role}"
    for c in containers:
        req = (c.get("resources") or {}).get("requests") or {}
        assert {"cpu", "memory", "ephemeral-storage"} <= set(req), f"{where} {c['name']}: requests {sorted(req)}"
    # ephemeral-storage requests cover the disk-backed emptyDirs' size limits
    disk = sum(quantity(v["emptyDir"]["sizeLimit"]) for v in pod.get("volumes") or []
               if "emptyDir" in v and v["emptyDir"].get("medium") != "Memory" and "sizeLimit" in v["emptyDir"])
    assert need["ephemeral-storage"] >= disk, f"{where}: ephemeral-storage requests {need['ephemeral-storage']} < emptyDir limits {disk}"
    # Ray containers: Guaranteed QoS (requests == limits for CPU and memory)
    for c in containers:
        if c["name"].startswith("ray-"):
            r, lim = c["resources"]["requests"], c["resources"]["limits"]
            assert all(quantity(r[k]) == quantity(lim[k]) for k in ("cpu", "memory")), f"{where} {c['name']}"


def test_node_rule_matches_kuberay_and_known_allocatable():
    """The allocatable rule is conservative for the documented instances: EKS reports about 3.92 CPU
    and 14.4 GiB allocatable on a g5.xlarge and 7.91 CPU / 29.8 GiB on an m6i.2xlarge."""
    nodes = node_types()
    assert {"head", "gpu-worker"} <= set(nodes)
    g5, m6 = allocatable(nodes["gpu-worker"]), allocatable(nodes["head"])
    assert g5["cpu"] < 3.92 and g5["memory"] < 14.4 * 2**30
    assert m6["cpu"] < 7.91 and m6["memory"] < 29.8 * 2**30
    # the old sizes (4 CPU / 16 GiB head on a 4 vCPU / 16 GiB node) would not fit
    assert allocatable({"cpu": 4, "memory": 16 * 2**30, "gpu": 1, "disk": 100 * 2**30})["cpu"] < 4


# --- CUDA, pins, layers, user --------------------------------------------------------------------------


def test_one_cuda_in_base_image_torch_index_and_documented_driver():
    d = Dockerfile(INFRA / "Dockerfile")
    tag = d.args["CUDA_TAG"]
    torch_minor = ".".join(d.args["TORCH_VERSION"].split(".")[:2])
    assert tag in RAY_IMAGE_PLATFORMS, f"Ray publishes no -{tag} image"
    assert tag in TORCH_CUDA[torch_minor], f"PyTorch {torch_minor} has no {tag} build"
    assert d.base == f"rayproject/ray:{d.args['RAY_VERSION']}-{d.args['PYTHON_TAG']}-{tag}"
    assert d.expand(d.args["TORCH_INDEX_URL"]) == f"https://download.pytorch.org/whl/{tag}"
    assert "-gpu" not in d.base, "the -gpu alias is CUDA 12.1, whatever torch is built for"
    cuda = f"{tag[2:-1]}.{tag[-1]}"
    assert re.search(rf"CUDA {re.escape(cuda)}\b.*driver\D+{re.escape(DRIVER_MIN[tag])}", README, re.S), (
        f"infra/README.md does not document driver >= {DRIVER_MIN[tag]} for CUDA {cuda}")
    # the build itself asserts the same agreement (base CUDA_VERSION, torch.version.cuda)
    runs = " ".join(a for i, a in d.instructions if i == "RUN")
    assert "torch.version.cuda" in runs and "CUDA_VERSION" in runs


def test_versions_are_pinned_build_arguments():
    d = Dockerfile(INFRA / "Dockerfile")
    for arg in ("RAY_VERSION", "TORCH_VERSION", "TORCHVISION_VERSION"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", d.args.get(arg, "")), f"{arg} is not pinned to an exact version"
    runs = [a for i, a in d.instructions if i == "RUN"]
    torch_install = next(r for r in runs if "--index-url" in r)
    assert '"torch==${TORCH_VERSION}"' in torch_install and '"torchvision==${TORCHVISION_VERSION}"' in torch_install
    # torchvision 0.N pairs with torch 2.(N-15)
    assert int(d.args["TORCHVISION_VERSION"].split(".")[1]) - 15 == int(d.args["TORCH_VERSION"].split(".")[1])


def test_dependencies_are_installed_before_any_code_is_copied():
    d = Dockerfile(INFRA / "Dockerfile")
    steps = [(i, a) for i, a in d.instructions if i in ("COPY", "RUN")]
    deps_at = next(n for n, (i, a) in enumerate(steps) if i == "RUN" and "-r /home/ray/requirements.txt" in a)
    copied = [s for i, a in steps[:deps_at] if i == "COPY" for s in a.split()[:-1] if not s.startswith("--")]
    assert copied == ["pyproject.toml"], f"copied before the dependency layer: {copied}"
    later = [a for i, a in steps[deps_at + 1:] if i == "RUN" and "pip install" in a]
    assert later and all("--no-deps" in a for a in later), "installs after the dependency layer must not resolve dependencies"


def test_image_runs_as_numeric_non_root_user_without_sudo():
    d = Dockerfile(INFRA / "Dockerfile")
    assert re.fullmatch(r"[1-9]\d*:\d+", d.user), f"final USER {d.user!r} must be a numeric non-root uid:gid"
    runs = " ".join(a for i, a in d.instructions if i == "RUN")
    assert "purge" in runs and "sudo" in runs and "/etc/sudoers" in runs and "! command -v sudo" in runs


# --- deadlines, autoscaler, image references ------------------------------------------------------------

START_UP_MARGIN_S = 1800
"""Time the submitter needs beyond the RayJob's attempts: a retry's cluster start and the pruning."""


def test_submitter_outlives_every_attempt_of_the_rayjob():
    job = cronjob()["spec"]["jobTemplate"]["spec"]
    rj = monitor_rayjob()["spec"]
    attempts = rj.get("backoffLimit", 0) + 1
    assert job["activeDeadlineSeconds"] >= attempts * rj["activeDeadlineSeconds"] + START_UP_MARGIN_S, (
        "KubeRay restarts activeDeadlineSeconds on every attempt: the submitter must outlive all of them")
    assert job.get("backoffLimit") == 0, "a second submitter would find the RayJob active and exit 0"
    for where, doc in (("rayjob.yaml", yaml_docs(K8S / "rayjob.yaml")[0]), ("cronjob.yaml", monitor_rayjob())):
        assert doc["spec"]["activeDeadlineSeconds"] > 0 and doc["spec"]["backoffLimit"] >= 0, where


def test_autoscaler_version_is_explicit_and_kuberay_minimum_documented():
    for where, spec in ray_clusters():
        if not spec.get("enableInTreeAutoscaling"):
            continue
        assert (spec.get("autoscalerOptions") or {}).get("version") == "v2", f"{where}: set autoscalerOptions.version: v2"
        env = {e["name"] for c in spec["headGroupSpec"]["template"]["spec"]["containers"] for e in c.get("env") or []}
        assert "RAY_enable_autoscaler_v2" not in env, f"{where}: KubeRay rejects the env var together with the field"
    assert "KubeRay operator (v1.4.0 or later" in README


def test_image_references_are_immutable_and_pulled_if_not_present():
    refs = []
    for where, spec in ray_clusters():
        for _role, pod in kuberay_pods(spec):
            refs += [(where, c) for c in [*(pod.get("initContainers") or []), *pod["containers"]] if c["name"] != "autoscaler"]
        if spec.get("enableInTreeAutoscaling"):
            assert spec["autoscalerOptions"].get("imagePullPolicy") == "IfNotPresent", where
    refs += [("cronjob.yaml", c) for c in cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]]
    pattern = re.compile(r"[\w.\-/]+(:\d+\.\d+\.\d+-[0-9a-f]{12}|@sha256:[0-9a-f]{64})")
    for where, c in refs:
        assert pattern.fullmatch(c["image"]), f"{where} {c['name']}: {c['image']} is a tag that can be reused"
        if c["name"] != "wait-gcs-ready":
            assert c.get("imagePullPolicy") == "IfNotPresent", f"{where} {c['name']}: pull policy must be explicit"


def _set_image():
    import importlib.util

    spec = importlib.util.spec_from_file_location("set_image", INFRA / "set_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_image_repoints_every_file_and_refuses_mutable_tags(tmp_path):
    mod = _set_image()
    copy_of = tmp_path / "infra"
    shutil.copytree(INFRA, copy_of, ignore=shutil.ignore_patterns("__pycache__"))
    files = mod.deployment_files(copy_of)
    before = {p.name: yaml_docs(p) for p in files}
    (old,) = mod.images(files)
    new = "registry.example.com/geo/geoseg@sha256:" + "ab" * 32
    assert mod.set_image(new, files) == old
    assert mod.images(files) == {new}
    # the files are the same but for the image, the ConfigMap's RayJob included
    for p in files:
        expected = json.loads(json.dumps(before[p.name]).replace(old, new))
        assert yaml_docs(p) == expected, p.name
    assert new in next(d for d in yaml_docs(copy_of / "k8s" / "cronjob.yaml") if d["kind"] == "ConfigMap")["data"]["rayjob.yaml"]
    for mutable in ("ghcr.io/geoseg/geoseg:latest", "ghcr.io/geoseg/geoseg:0.1.0"):
        with pytest.raises(ValueError):
            mod.set_image(mutable, files)


# --- schemas: KubeRay ray.io/v1 and Kubernetes ------------------------------------------------------------

K8S_VERSIONS = ("1.30", "1.33", "1.37")


def kuberay_validator(kind: str, k8s_version: str):
    import jsonschema
    from referencing import Registry, Resource

    defs = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{k8s_version}.0-local-strict" / "_definitions.json"
    core = json.loads(defs.read_text())
    registry = Registry().with_resource(core["$id"], Resource.from_contents(core))
    schema = json.loads((SCHEMAS / f"{kind.lower()}-v1.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def kuberay_objects() -> list[tuple[str, dict]]:
    return [("raycluster.yaml", yaml_docs(K8S / "raycluster.yaml")[0]), ("rayjob.yaml", yaml_docs(K8S / "rayjob.yaml")[0]),
            ("cronjob.yaml ConfigMap", monitor_rayjob())]


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_ray_resources_validate_against_the_kuberay_schemas(k8s_version):
    pytest.importorskip("kubernetes_validate")
    for where, doc in kuberay_objects():
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in kuberay_validator(doc["kind"], k8s_version).iter_errors(doc)]
        assert errors == [], f"{where} (Kubernetes {k8s_version}): {errors[:5]}"


def test_kuberay_schemas_reject_unknown_fields_and_bad_values():
    pytest.importorskip("kubernetes_validate")
    rc = yaml_docs(K8S / "raycluster.yaml")[0]
    rj = yaml_docs(K8S / "rayjob.yaml")[0]
    edits = [
        (rc, lambda d: d["spec"].update(autoscalerVersion="v2")),                       # misplaced field
        (rc, lambda d: d["spec"]["autoscalerOptions"].update(version="v3")),             # bad enum
        (rc, lambda d: d["spec"]["workerGroupSpecs"][0].update(minReplica=1)),           # typo
        (rc, lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(resource={})),
        (rc, lambda d: d["spec"]["headGroupSpec"]["template"]["spec"]["securityContext"].update(readOnlyRootFilesystem=True)),
        (rj, lambda d: d["spec"].update(activeDeadline=60)),
        (rj, lambda d: d["spec"].update(backoffLimit="1")),
        (rj, lambda d: d["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("groupName")),
    ]
    for doc, edit in edits:
        bad = copy.deepcopy(doc)
        edit(bad)
        assert list(kuberay_validator(bad["kind"], "1.33").iter_errors(bad)), edit


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_kubernetes_objects_validate_strictly(k8s_version):
    kv = pytest.importorskip("kubernetes_validate")
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_docs(path):
            if doc["apiVersion"].startswith("ray.io/"):
                continue
            kv.validate(doc, k8s_version, strict=True)
    bad = copy.deepcopy(cronjob())
    bad["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, k8s_version, strict=True)


# --- the image, built and run (needs a container runtime and the base image) -------------------------------


@pytest.mark.slow
def test_cpu_image_builds_and_runs_the_demo_as_the_pods_would(tmp_path):
    """Build the CPU variant with podman and run the demo under the pods' security settings
    (uid 1000, read-only root, no capabilities, no new privileges, /tmp as the only writable place)."""
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("no container runtime: install podman (infra/README.md, 'Building the image here')")
    base = "docker.io/rayproject/ray:{}-{}-cpu".format(*(Dockerfile(INFRA / "Dockerfile").args[k] for k in ("RAY_VERSION", "PYTHON_TAG")))
    opts = ["--runtime", "runc"] if shutil.which("runc") else []
    have = subprocess.run([podman, *opts, "image", "exists", base]).returncode == 0
    if not have and subprocess.run([podman, *opts, "pull", base], capture_output=True, timeout=600).returncode:
        pytest.skip(f"the base image {base} cannot be pulled here (no registry but PyPI, Debian and npm is "
                    "reachable); infra/README.md, 'Building the image here'")
    limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]
    tag = "localhost/geoseg:cpu-test"
    subprocess.run([podman, *opts, "build", *limits, "--network", "host", "-f", "infra/Dockerfile",
                    "--build-arg", "CUDA_TAG=cpu", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, "."], cwd=REPO, check=True, timeout=3600)
    run = subprocess.run([podman, *opts, "run", "--rm", *limits, "--read-only", "--tmpfs", "/tmp", "--user", "1000:100",
                          "--cap-drop", "ALL", "--security-opt", "no-new-privileges", tag, "bash", "-c",
                          "! command -v sudo && geoseg segment --config configs/default.yaml --output /tmp/demo && "
                          "test -s /tmp/demo/manifest.json"], capture_output=True, text=True, timeout=1800,
                         )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@pytest.mark.parametrize("tag,torch_cuda,base_cuda,ok", [
    ("cu126", "12.6", "12.6.3", True), ("cpu", None, "", True), ("cu126", "13.0", "12.6.3", False),
    ("cu126", "12.6", "12.1.1", False), ("cu130", "13.0", "12.6.3", False), ("cpu", "12.6", "", False),
    ("cu126", None, "12.6.3", False)])
def test_the_builds_cuda_check_rejects_any_mismatch(tmp_path, tag, torch_cuda, base_cuda, ok):
    """The Dockerfile's own check, run as the build runs it, against a stand-in torch module."""
    import sys

    d = Dockerfile(INFRA / "Dockerfile")
    run = next(a for i, a in d.instructions if i == "RUN" and "torch.version.cuda" in a)
    check = run[run.index("python -c"):].replace("${CUDA_TAG}", tag).replace("python -c", f"{sys.executable} -c", 1)
    (tmp_path / "torch.py").write_text(f"__version__ = '2.14.1'\nclass version:\n    cuda = {torch_cuda!r}\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": os.environ.get("PATH", "")} | ({"CUDA_VERSION": base_cuda} if base_cuda else {})
    done = subprocess.run(["bash", "-c", check], env=env, capture_output=True, text=True)
    assert (done.returncode == 0) is ok, done.stderr[-500:]
