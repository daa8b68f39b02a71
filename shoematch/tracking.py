"""MLflow in one place: tracking set-up, run lookup/resume, and registering encoders.

Paths in a `sqlite:///relative.db` URI are made absolute against the current directory, so
Ray workers (which run elsewhere) log to the same store as the driver.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Any

from shoematch.log import get_logger

log = get_logger(__name__)
RUN_NAME_TAG = "shoematch.run_name"
CONTENT_TAG = "shoematch.content_sha256"


def absolute_tracking_uri(uri: str) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = os.path.abspath(uri[len(prefix):])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return prefix + path
    if "://" not in uri:
        os.makedirs(os.path.abspath(uri), exist_ok=True)
        return os.path.abspath(uri)
    return uri


def configure(tracking_uri: str, experiment: str) -> str:
    """Point MLflow at the store and experiment; returns the absolute tracking URI."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = absolute_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = None
        if uri.startswith("sqlite:///"):
            artifacts = "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]),
                                                 "mlartifacts")
        mlflow.create_experiment(experiment, artifact_location=artifacts)
    mlflow.set_experiment(experiment)
    return uri


def find_or_create_run(run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    """The MLflow run for a Ray run name: resubmitting the same run continues its MLflow run."""
    import mlflow

    existing = mlflow.search_runs(filter_string=f"tags.`{RUN_NAME_TAG}` = '{run_name}'",
                                  output_format="list", max_results=1)
    if existing:
        log.info("continuing MLflow run %s", existing[0].info.run_id)
        return existing[0].info.run_id
    with mlflow.start_run(run_name=run_name, tags={RUN_NAME_TAG: run_name, **tags}) as run:
        for start in range(0, len(params), 100):
            chunk = dict(list(params.items())[start:start + 100])
            mlflow.log_params({k: str(v)[:500] for k, v in chunk.items()})
        return run.info.run_id


def git_commit() -> str:
    """The commit of the code that runs (or 'unknown' outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("SHOEMATCH_GIT_COMMIT", "unknown")


def log_and_register(run_id: str, local_dir: str, artifact_path: str,
                     registered_model: str | None) -> str | None:
    """Log a saved model directory to the run and register it; returns the model URI.

    Uses a plain model version whose source is the logged artifact directory, so loading needs
    only our (weights, config) files, never unpickled code. Registering the same content from
    the same run again (a finished run re-submitted) returns the existing version.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    client.log_artifacts(run_id, local_dir, artifact_path=artifact_path)
    source = f"{client.get_run(run_id).info.artifact_uri}/{artifact_path}"
    if not registered_model:
        return f"runs:/{run_id}/{artifact_path}"
    try:
        client.create_registered_model(registered_model)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise  # already registered is fine: we add a version
    digest = directory_digest(local_dir)
    same = [v for v in client.search_model_versions(f"name='{registered_model}'")
            if v.run_id == run_id and v.tags.get(CONTENT_TAG) == digest]
    version = same[0] if same else client.create_model_version(
        registered_model, source=source, run_id=run_id, tags={CONTENT_TAG: digest})
    client.set_registered_model_alias(registered_model, "current", version.version)
    return f"models:/{registered_model}/{version.version}"


def directory_digest(directory: str) -> str:
    """sha256 over the relative paths and bytes of every file below `directory`."""
    digest = hashlib.sha256()
    for root, _dirs, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, directory).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()
