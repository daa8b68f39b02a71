"""An MLflow tracking server on loopback: runs and the model registry in sqlite, artifacts in S3.

The server proxies artifacts (`--artifacts-destination`): clients, Ray workers included, upload
and download through its HTTP API (`mlflow-artifacts:/` URIs) and need no S3 credentials; the
server itself reaches S3 through MLFLOW_S3_ENDPOINT_URL and the AWS_* keys in `env`.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from cluster.processes import LOOPBACK, Service, free_port, spawn, wait_until


def mlflow_binary() -> str:
    return os.path.join(os.path.dirname(sys.executable), "mlflow")


def mlflow_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """True when the server answers its /health endpoint with OK."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as response:
            return response.status == 200 and response.read().strip() == b"OK"
    except (urllib.error.URLError, OSError):
        return False


def start_mlflow(data_dir: str, artifacts_destination: str, env: dict[str, str],
                 port: int | None = None, timeout_s: float = 90.0, wait: bool = True) -> Service:
    """Start `mlflow server` (one worker: this is a 2-core machine) in its own process group.

    With `wait=False` it returns at once (call `wait_for_mlflow` later), so the caller can
    start other services while MLflow imports (~15 s)."""
    port = port or free_port()
    os.makedirs(data_dir, exist_ok=True)
    database = os.path.join(os.path.abspath(data_dir), "mlflow.db")
    argv = [mlflow_binary(), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{database}",
            "--artifacts-destination", artifacts_destination]
    service = spawn("mlflow", argv, os.path.join(data_dir, "mlflow.log"),
                    f"http://{LOOPBACK}:{port}",
                    env={"MLFLOW_DISABLE_TELEMETRY": "true", **env})
    if wait:
        wait_for_mlflow(service, timeout_s)
    return service


def wait_for_mlflow(service: Service, timeout_s: float = 90.0) -> None:
    try:
        wait_until(lambda: service.alive() and mlflow_healthy(service.url), timeout_s,
                   f"MLflow server (log: {service.log_path})", interval_s=0.5)
    except TimeoutError:
        service.stop()
        raise
