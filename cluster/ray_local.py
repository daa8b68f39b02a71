"""A local Ray cluster on loopback: a head node (with the dashboard, for the Jobs API) and
optional worker nodes, each a `ray start --block` process stopped by its PID."""

from __future__ import annotations

import os
import sys

from cluster.processes import LOOPBACK, Service, free_port, http_ok, spawn, wait_until

RAY_ENV = {"RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled",
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}


def ray_binary() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


def start_head(log_dir: str, num_cpus: int = 2, object_store_mb: int = 512,
               port: int | None = None, dashboard_port: int | None = None,
               timeout_s: float = 90.0, env: dict[str, str] | None = None) -> Service:
    """Start the head; `Service.url` is the dashboard (Jobs API) address."""
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    argv = [ray_binary(), "start", "--head", "--block", f"--node-ip-address={LOOPBACK}",
            f"--port={port}", f"--dashboard-host={LOOPBACK}", f"--dashboard-port={dashboard_port}",
            f"--num-cpus={num_cpus}", f"--object-store-memory={object_store_mb * 1024 * 1024}",
            "--include-dashboard=true", "--disable-usage-stats"]
    service = spawn("ray-head", argv, os.path.join(log_dir, "ray-head.log"),
                    f"http://{LOOPBACK}:{dashboard_port}", env={**RAY_ENV, **(env or {})})
    try:
        wait_until(lambda: service.alive() and http_ok(f"{service.url}/api/version"), timeout_s,
                   "Ray head (dashboard)")
    except TimeoutError:
        service.stop()
        raise
    service.address = f"{LOOPBACK}:{port}"
    return service
