"""The Serve application builder: `serve run serve.app:build_app index=… slots=2`, the
`serve/config.yaml` deploy config, and `python -m jobs.serve_index` all come through here."""

from __future__ import annotations

import os

from fastapi import FastAPI
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.config import BackpressureConfig

from serve.api import build_api
from serve.encoder import QueryEncoder
from serve.gateway import Gateway
from serve.labels import LabelModels
from serve.settings import ServeSettings
from serve.shard import IndexShard

# Where storage and MLflow are: settings, not secrets. Keys and the API token are never
# forwarded (a runtime env is visible in the dashboard and the Serve config): every replica
# reads them from its node's environment (or AWS config / instance profile), as a real
# cluster's nodes get them from a Kubernetes Secret or an IAM role. The same holds for the
# workbench's user tokens (SHOEMATCH_USERS) and a case-database URL that may carry a password
# (SHOEMATCH_DB_URL) and the audit key (SHOEMATCH_AUDIT_KEY); the users file and the audit key
# file are only paths, the audit anchor only a location.
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
                 "MLFLOW_TRACKING_URI", "SHOEMATCH_USERS_FILE", "SHOEMATCH_AUDIT_ANCHOR",
                 "SHOEMATCH_AUDIT_KEY_FILE")


def deployment_of(decorated: object) -> Deployment:
    """A class under `@serve.deployment` as what it is at run time, a `Deployment` (type
    checkers do not apply class decorators, so they still see the class)."""
    assert isinstance(decorated, Deployment), decorated
    return decorated


class GatewayReplica(Gateway):
    """A gateway as a Serve replica: Serve calls `__serve_build_asgi_app__` after the
    constructor (`serve.ingress()` with no app), so each replica builds its own FastAPI app."""

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_api(self)


# The gateway answers overload itself (`Admission`: 503, the API's error body, Retry-After), so
# it takes many requests at once; Serve's own queue limit is only the backstop behind it (its
# 503 carries Retry-After too, but Serve's plain-text body).
GatewayDeployment = serve.deployment(
    name="Gateway", max_ongoing_requests=256, max_queued_requests=512,
    backpressure_config=BackpressureConfig(status_code=503, retry_after_s=1),
)(serve.ingress()(GatewayReplica))


def _env() -> dict:
    """The deploying process's storage and MLflow locations, for every replica."""
    env_vars = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    return {"env_vars": env_vars} if env_vars else {}


def build_app(args: dict) -> Application:
    settings = ServeSettings.model_validate(args)
    body = settings.model_dump()
    runtime_env = _env()
    encoder = deployment_of(QueryEncoder).options(
        autoscaling_config={"min_replicas": settings.encoder_min_replicas,
                            "max_replicas": settings.encoder_max_replicas,
                            "target_ongoing_requests": settings.encoder_target_ongoing()},
        ray_actor_options={"num_cpus": settings.encoder_cpus, "num_gpus": settings.encoder_gpus,
                           "runtime_env": runtime_env},
    ).bind(settings.encoder_threads, settings.encoder_batch_size, settings.encoder_batch_wait_s,
           settings.encoder_runtime)
    shards = [deployment_of(IndexShard).options(
        name=f"IndexShard{slot}",
        ray_actor_options={"num_cpus": settings.shard_cpus, "num_gpus": settings.shard_gpus,
                           "runtime_env": runtime_env},
    ).bind(body, slot) for slot in range(settings.slots)]
    labels = deployment_of(LabelModels).options(
        ray_actor_options={"num_cpus": settings.labels_cpus, "runtime_env": runtime_env},
    ).bind()
    return GatewayDeployment.options(
        ray_actor_options={"num_cpus": settings.gateway_cpus, "runtime_env": runtime_env},
    ).bind(encoder, shards, labels, body)
