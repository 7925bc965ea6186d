"""The one place that starts or joins Ray, and what the driver tells the workers about S3.

:func:`connect` joins the cluster at ``address`` (or ``$RAY_ADDRESS``) or starts a local
Ray instance; :class:`RaySession` does it lazily, at the first model run, and shuts down
only what it started.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING")
"""Where S3 is (not who may read it): passed from the driver to the model actors, which read
``s3://`` rasters themselves. Ray workers on other nodes inherit their raylet's environment,
not the driver's; credentials are not forwarded (nodes get theirs from the AWS chain)."""


def connect(address: str | None = None) -> bool:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``) or start a local Ray; no-op if Ray is up.

    Returns True when this call initialised Ray (the caller then owns it and shuts it down).
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = False
    # A Ray this process starts for itself keeps Ray's default (token authentication, a token generated
    # on first use), but Ray announces that default on every ray.init(): not a message for our users.
    auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = auth_log.level
    if not address:
        auth_log.setLevel(logging.ERROR)
    try:
        ray.init(**kwargs)
    finally:
        auth_log.setLevel(level)
    return True


def shutdown() -> None:
    """Disconnect from (or stop the local) Ray."""
    import ray

    ray.shutdown()


class RaySession:
    """Connects once, on the first :meth:`ensure` (never for a run with nothing to compute); :meth:`close`
    shuts down only a Ray this session started. ``local``: never connect (in-process runs)."""

    def __init__(self, address: str | None = None, local: bool = False):
        self.address = address
        self.local = local
        self.owned = False

    def ensure(self) -> None:
        if not self.local and not self.owned:
            self.owned = connect(self.address)

    def close(self) -> None:
        if self.owned:
            shutdown()
            self.owned = False


def worker_env() -> dict[str, str]:
    """The :data:`FORWARDED_ENV` variables set in this process."""
    return {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}


def local_node_cpus() -> int:
    """CPUs of the Ray node this process (the driver) runs on; 0 for a head started with ``--num-cpus 0``."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    for node in ray.nodes():
        if node.get("NodeID") == node_id and node.get("Alive", True):
            return int(node.get("Resources", {}).get("CPU", 0))
    return 0


def autoscaler_present() -> bool:
    """Whether an autoscaler that can add nodes watches the connected cluster.

    Ray 2.x runs a monitor on every head; without an autoscaling config (``ray.init()``, ``ray start --head``)
    it uses the read-only provider, which only mirrors the running nodes: their node types are named
    ``node_<node id>``. A monitor with a config (``ray up``, a cluster launcher) names real node types; KubeRay's
    autoscaler v2 marks itself in the GCS. No status at all: no autoscaler.
    """
    import json

    import ray
    from ray._private import ray_constants
    from ray.experimental.internal_kv import _internal_kv_get

    try:
        raylet: Any = ray._raylet  # the GCS keys are not in Ray's type stubs
        v2 = _internal_kv_get(raylet.GCS_AUTOSCALER_V2_ENABLED_KEY, namespace=raylet.GCS_AUTOSCALER_STATE_NAMESPACE)
        if v2 == b"1":
            return True
        raw = _internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS)
    except Exception as exc:  # an older or newer Ray without these keys: assume none
        log.debug("autoscaler status unreadable: %s", exc)
        return False
    return _config_has_node_types(json.loads(raw)) if raw else False


def _config_has_node_types(status: dict) -> bool:
    """True when the monitor's status names node types of a config (not only read-only ``node_<id>`` mirrors)."""
    mapping = (status.get("autoscaler_report") or {}).get("node_type_mapping") or {}
    return any(node_type != f"node_{node_id}" for node_id, node_type in mapping.items())
