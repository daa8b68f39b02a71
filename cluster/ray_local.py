"""A local Ray cluster on loopback: a head node (with the dashboard, for the Jobs API) and
optional worker nodes, each a `ray start --block` process stopped by its PID.

Several nodes (and several clusters) can share one host: every port Ray would otherwise take
from a fixed default (client server 10001, dashboard agent 52365) is picked free, and each node
gets its own temp dir, as it would on its own machine. Ray still binds its gRPC ports (GCS,
raylet, object manager) on all interfaces and reports the host's address, not 127.0.0.1: Ray
rewrites a loopback `--node-ip-address`; only the HTTP endpoints (dashboard) are loopback-only.
"""

from __future__ import annotations

import json
import os
import sys

from cluster.processes import LOOPBACK, Service, free_port, http_ok, spawn, wait_until

RAY_ENV = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}


def ray_binary() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


def node_flags(num_cpus: int, object_store_mb: int, resources: dict[str, float] | None,
               temp_dir: str | None) -> list[str]:
    """Flags every node takes: its own resources, object store cap, free fixed-default ports."""
    flags = [f"--node-ip-address={LOOPBACK}", f"--num-cpus={num_cpus}",
             f"--object-store-memory={object_store_mb * 1024 * 1024}",
             f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
    if resources:
        flags.append(f"--resources={json.dumps(resources)}")
    if temp_dir:
        flags.append(f"--temp-dir={temp_dir}")
    return flags


def start_head(log_dir: str, num_cpus: int = 2, object_store_mb: int = 512,
               port: int | None = None, dashboard_port: int | None = None,
               timeout_s: float = 90.0, env: dict[str, str] | None = None,
               temp_dir: str | None = None, name: str = "ray-head") -> Service:
    """Start the head; `Service.url` is the dashboard (Jobs API), `.address` the GCS."""
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    argv = [ray_binary(), "start", "--head", "--block", f"--port={port}",
            f"--dashboard-host={LOOPBACK}", f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}", "--include-dashboard=true",
            *node_flags(num_cpus, object_store_mb, None, temp_dir)]
    service = spawn(name, argv, os.path.join(log_dir, f"{name}.log"),
                    f"http://{LOOPBACK}:{dashboard_port}", env={**RAY_ENV, **(env or {})})
    service.leader_stops_group = True  # `ray start --block` stops its node's processes
    try:
        wait_until(lambda: service.alive() and http_ok(f"{service.url}/api/version"), timeout_s,
                   "Ray head (dashboard)")
    except TimeoutError:
        service.stop()
        raise
    service.address = f"{LOOPBACK}:{port}"
    return service


def spawn_worker(name: str, head: Service, log_dir: str, num_cpus: int, object_store_mb: int,
                 temp_dir: str, env: dict[str, str] | None = None) -> Service:
    """Start a worker node joining `head`, without waiting: it carries the custom resource
    `{name: 1}`, which is how `status` finds it among the nodes (see `wait_for_worker`)."""
    argv = [ray_binary(), "start", "--block", f"--address={head.address}",
            *node_flags(num_cpus, object_store_mb, {name: 1}, temp_dir)]
    worker = spawn(name, argv, os.path.join(log_dir, f"{name}.log"), head.url,
                   env={**RAY_ENV, **(env or {})})
    worker.leader_stops_group = True  # `ray start --block` stops its node's processes
    return worker


def alive_nodes(dashboard_url: str, timeout_s: float = 10.0) -> list[dict]:
    """The cluster's live nodes (id, head or not, resources), from the dashboard's state API."""
    from ray.util.state import list_nodes

    nodes = list_nodes(address=dashboard_url, filters=[("state", "=", "ALIVE")],
                       timeout=int(timeout_s), raise_on_missing_output=False)
    return [{"node_id": n.node_id, "is_head": bool(n.is_head_node),
             "resources": dict(n.resources_total or {})} for n in nodes]


def node_of(worker: str, nodes: list[dict], exclude: frozenset[str] = frozenset()) -> dict | None:
    """The live node a worker service runs as, found by its custom resource; `exclude` skips
    the node ids of a killed node it replaces (alive to the GCS until heartbeats are missed)."""
    return next((n for n in nodes if worker in n["resources"] and n["node_id"] not in exclude),
                None)


def wait_for_worker(worker: Service, timeout_s: float = 90.0,
                    exclude: frozenset[str] = frozenset()) -> str:
    """Wait until `worker` has registered as a live node (not one in `exclude`); returns its
    Ray node id."""
    found: list[dict] = []

    def registered() -> bool:
        if not worker.alive():
            raise RuntimeError(f"Ray worker node {worker.name} exited; see {worker.log_path}")
        try:
            node = node_of(worker.name, alive_nodes(worker.url, timeout_s=5), exclude)
        except Exception:  # the state API is briefly unavailable while the head settles
            return False
        found[:] = [node] if node else []
        return bool(found)

    wait_until(registered, timeout_s, f"Ray worker node {worker.name}", interval_s=1.0)
    return found[0]["node_id"]
