"""The whole local stack on one machine: an S3 server, an MLflow tracking server storing its
artifacts in S3, and a Ray cluster of a head and N worker nodes — each a process group stopped
by the PID recorded in a JSON state file, so `status` and `down` work from any process.

Resources: the head gets few CPUs and no custom resources; every worker node gets
`worker_cpus` CPUs and the custom resource `{name: 1}`. With `worker_cpus=2` and a training job
asking for more than one CPU per DDP worker (`ray.cpus_per_worker=1.5`), no node but a worker
node can hold a training worker and no worker node can hold two: a 2-worker job spans 2 nodes.

Every node inherits the S3 endpoint and keys and MLFLOW_TRACKING_URI, as nodes of a real cluster
would from their instance profile or a Kubernetes Secret; the state file holds no secret.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field

from cluster.mlflow_server import mlflow_healthy, start_mlflow, wait_for_mlflow
from cluster.processes import Service, http_ok, kill_group, stop_pids
from cluster.ray_local import alive_nodes, node_of, spawn_worker, start_head, wait_for_worker
from cluster.s3 import ensure_bucket, start_s3

STATE_FILE = "cluster.json"
DEFAULT_STATE_DIR = "runs/cluster"
# For a loopback-only development server; real deployments set AWS_* themselves.
DEFAULT_ACCESS_KEY = "shoematch-local"
DEFAULT_SECRET_KEY = "shoematch-local-secret"
WORKER_PREFIX = "worker_"


@dataclass
class ClusterState:
    """What `up` started, where it answers and logs; saved as `state_dir/cluster.json`."""

    state_dir: str
    bucket: str
    default_credentials: bool
    temp_root: str  # short: Ray's socket paths under it must stay below 107 characters
    head_cpus: int
    worker_cpus: int
    object_store_mb: int
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def s3_endpoint(self) -> str:
        return self.services["s3"].url

    @property
    def mlflow_url(self) -> str:
        return self.services["mlflow"].url

    @property
    def dashboard_url(self) -> str:
        """The Jobs API (`JobSubmissionClient`, `ray job submit --address`)."""
        return self.services["head"].url

    @property
    def ray_address(self) -> str:
        """The GCS address, for `ray.init(address=...)` and RAY_ADDRESS."""
        return self.services["head"].address

    @property
    def workers(self) -> list[str]:
        return sorted(n for n in self.services if n.startswith(WORKER_PREFIX))

    def credentials(self) -> tuple[str, str]:
        """The S3 keys the server enforces: the defaults, or the caller's AWS_* variables."""
        if self.default_credentials:
            return DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
        return os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]

    def env(self, with_keys: bool = False) -> dict[str, str]:
        """Variables that point clients (jobs, mlflow, boto3, pyarrow, ray) at this cluster."""
        variables = {"RAY_ADDRESS": self.ray_address, "RAY_API_SERVER_ADDRESS": self.dashboard_url,
                     "MLFLOW_TRACKING_URI": self.mlflow_url, "AWS_ENDPOINT_URL": self.s3_endpoint,
                     "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                     "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1")}
        if with_keys:
            variables["AWS_ACCESS_KEY_ID"], variables["AWS_SECRET_ACCESS_KEY"] = self.credentials()
        return variables

    def save(self) -> None:
        path = os.path.join(self.state_dir, STATE_FILE)
        with open(path + ".tmp", "w") as out:
            json.dump(asdict(self), out, indent=2)
        os.replace(path + ".tmp", path)

    @classmethod
    def load(cls, state_dir: str) -> ClusterState | None:
        path = os.path.join(state_dir, STATE_FILE)
        if not os.path.exists(path):
            return None
        with open(path) as source:
            raw = json.load(source)
        raw["services"] = {k: Service(**v) for k, v in raw["services"].items()}
        return cls(**raw)


def find_state_dir(explicit: str | None) -> str:
    """`--state-dir` when given; else the default, or the one other `runs/*/cluster` holding a
    state (the demo keeps its stack in `runs/demo/cluster`)."""
    if explicit:
        return explicit
    found = [d for d in [DEFAULT_STATE_DIR, *sorted(glob.glob("runs/*/cluster"))]
             if os.path.exists(os.path.join(d, STATE_FILE))]
    return found[0] if found else DEFAULT_STATE_DIR


def serve_urls(dashboard_url: str, timeout_s: float = 3.0) -> list[str]:
    """`name: url (status)` of each Serve application, from the dashboard's Serve API."""
    try:
        with urllib.request.urlopen(f"{dashboard_url}/api/serve/applications/",
                                    timeout=timeout_s) as response:
            details = json.load(response)
    except (OSError, ValueError):
        return []
    http = details.get("http_options") or {}
    base = f"http://{http.get('host', '127.0.0.1')}:{http.get('port', 8000)}"
    return [f"{name}: {base}{(app.get('route_prefix') or '/').rstrip('/')}/ "
            f"({app.get('status', '?')})"
            for name, app in (details.get("applications") or {}).items()]


@dataclass
class Health:
    """One `status` reading: each service's health and the live Ray nodes."""

    services: dict[str, bool]
    nodes: list[dict]

    @property
    def healthy(self) -> bool:
        return bool(self.services) and all(self.services.values())


def service_env(state: ClusterState) -> dict[str, str]:
    """The servers' and Ray nodes' environment: S3 endpoint and keys, (once it runs) the MLflow
    server, and this Python first on PATH, so job entrypoints `python -m jobs.X` run in it."""
    access, secret = state.credentials()
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    env = {"PATH": path, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret,
           "AWS_ENDPOINT_URL": state.s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": state.s3_endpoint,
           "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    if "mlflow" in state.services:
        env["MLFLOW_TRACKING_URI"] = state.mlflow_url
    return env


def temp_root_for(state_dir: str) -> str:
    digest = hashlib.sha1(os.path.abspath(state_dir).encode()).hexdigest()[:8]
    return os.path.join(tempfile.gettempdir(), f"ray-{digest}")


def bring_up(state_dir: str = DEFAULT_STATE_DIR, workers: int = 2, head_cpus: int = 1,
             worker_cpus: int = 2, object_store_mb: int = 400, bucket: str = "shoematch",
             timeout_s: float = 120.0) -> ClusterState:
    """Start S3 (+ bucket), MLflow and a Ray head with `workers` worker nodes on loopback.

    Idempotent: a state file whose services are all healthy is reused (adding worker nodes if
    fewer than `workers` run); an unhealthy one is stopped first. Whatever fails to start is
    stopped again before the error propagates."""
    state_dir = os.path.abspath(state_dir)
    existing = ClusterState.load(state_dir)
    if existing is not None:
        if check(existing).healthy:
            for _ in range(len(existing.workers), workers):
                add_worker(existing, timeout_s=timeout_s)
            return existing
        tear_down(existing)
    os.makedirs(state_dir, exist_ok=True)
    state = ClusterState(state_dir, bucket, "AWS_ACCESS_KEY_ID" not in os.environ,
                         temp_root_for(state_dir), head_cpus, worker_cpus, object_store_mb)
    try:
        start_services(state, workers, timeout_s)
    except BaseException:
        tear_down(state)
        raise
    return state


def start_services(state: ClusterState, workers: int, timeout_s: float) -> None:
    """S3 first (MLflow and the nodes need its URL), then MLflow and Ray side by side."""
    access, secret = state.credentials()
    keys = {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret}
    state.services["s3"] = start_s3(os.path.join(state.state_dir, "s3"), env=keys,
                                    timeout_s=timeout_s)
    state.save()
    ensure_bucket(state.s3_endpoint, state.bucket, access, secret, timeout_s)
    state.services["mlflow"] = start_mlflow(os.path.join(state.state_dir, "mlflow"),
                                            f"s3://{state.bucket}/mlflow",
                                            service_env(state), wait=False)
    state.save()
    os.makedirs(state.temp_root, exist_ok=True)
    logs = os.path.join(state.state_dir, "logs")
    state.services["head"] = start_head(
        logs, num_cpus=state.head_cpus, object_store_mb=state.object_store_mb,
        timeout_s=timeout_s, env=service_env(state), name="head",
        temp_dir=tempfile.mkdtemp(prefix="head-", dir=state.temp_root))
    state.save()
    started = [start_worker(state) for _ in range(workers)]
    wait_for_mlflow(state.services["mlflow"], timeout_s)
    for worker in started:
        wait_for_worker(worker, timeout_s)


def start_worker(state: ClusterState, name: str | None = None) -> Service:
    """Spawn a worker node (the next free name, or `name` to replace a dead one); no wait."""
    if name is None:
        taken = {int(n[len(WORKER_PREFIX):]) for n in state.workers}
        name = f"{WORKER_PREFIX}{next(i for i in range(1, len(taken) + 2) if i not in taken)}"
    elif name in state.services and state.services[name].alive():
        raise RuntimeError(f"worker node {name} is still running (pid {state.services[name].pid})")
    worker = spawn_worker(name, state.services["head"], os.path.join(state.state_dir, "logs"),
                          state.worker_cpus, state.object_store_mb,
                          tempfile.mkdtemp(prefix=f"{name}-", dir=state.temp_root),
                          env=service_env(state))
    state.services[name] = worker
    state.save()
    return worker


def add_worker(state: ClusterState, name: str | None = None, timeout_s: float = 120.0) -> str:
    """Start a worker node and wait until it has joined; returns its Ray node id. Passing the
    name of a killed node replaces it, as an autoscaler replaces a lost machine."""
    earlier = frozenset(n["node_id"] for n in alive_nodes(state.dashboard_url)
                        if name and name in n["resources"])
    return wait_for_worker(start_worker(state, name), timeout_s, earlier)


def kill_worker(state: ClusterState, name: str) -> None:
    """Crash a worker node: SIGKILL its process group (raylet, agents; its Ray workers exit
    when their raylet dies). The node stays in the state file, dead, until replaced."""
    kill_group(state.services[name].pid)


def check(state: ClusterState) -> Health:
    """Each service's PID alive and its endpoint answering (Ray workers: registered as a live
    node); all checks bounded by a few seconds."""
    s3, mlflow, head = (state.services.get(name) for name in ("s3", "mlflow", "head"))
    services = {"s3": bool(s3 and s3.alive() and http_ok(s3.url, 2.0)),
                "mlflow": bool(mlflow and mlflow.alive() and mlflow_healthy(mlflow.url)),
                "head": bool(head and head.alive() and http_ok(f"{head.url}/api/version", 2.0))}
    nodes: list[dict] = []
    if services["head"]:
        try:
            nodes = alive_nodes(head.url, timeout_s=10)
        except Exception:  # an unreachable state API makes the workers unknown, not an error
            services["head"] = False
    for name in state.workers:
        worker = state.services[name]
        services[name] = worker.alive() and node_of(name, nodes) is not None
    return Health(services, nodes)


def format_status(state: ClusterState, health: Health) -> str:
    lines = [f"state: {state.state_dir}"]
    for name, service in state.services.items():
        mark = "healthy" if health.services.get(name) else "DOWN"
        where = {"head": f"{service.url}  gcs {service.address}"}.get(
            name, service.url if name in ("s3", "mlflow") else "ray worker node")
        lines.append(f"{name:10} pid {service.pid:<7} {mark:8} {where}  log {service.log_path}")
    lines.append(f"ray nodes alive: {len(health.nodes)}")
    for node in sorted(health.nodes, key=lambda n: (not n["is_head"], sorted(n["resources"]))):
        role = "head" if node["is_head"] else next(
            (r for r in node["resources"] if r.startswith(WORKER_PREFIX)), "worker")
        resources = ", ".join(f"{k}={describe(k, v)}" for k, v in sorted(node["resources"].items())
                              if not k.startswith("node:"))
        lines.append(f"  {node['node_id'][:12]}  {role:10} {resources}")
    if "mlflow" in state.services:
        lines.append(f"MLflow UI:      {state.mlflow_url}")
    if health.services.get("head"):
        lines.append(f"Ray dashboard:  {state.dashboard_url}")
        apps = serve_urls(state.dashboard_url)
        lines.extend(f"Serve app {app}" for app in apps)
        if not apps:
            lines.append("Serve:          no application running")
    return "\n".join(lines)


def describe(resource: str, amount: float) -> str:
    if resource in ("memory", "object_store_memory"):
        return f"{amount / 2**30:.1f}GiB"
    return f"{amount:g}"


def tear_down(state: ClusterState, timeout_s: float = 15.0) -> None:
    """Stop every service by PID (process group: SIGTERM — a Ray node's to its leader alone —
    SIGKILL after `timeout_s`), all at once, and remove the state file."""
    services = state.services.values()
    stop_pids([service.pid for service in services], timeout_s,
              leaders_only={service.pid for service in services if service.leader_stops_group})
    path = os.path.join(state.state_dir, STATE_FILE)
    if os.path.exists(path):
        os.remove(path)

