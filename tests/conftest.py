"""Real local services for the tests: an S3 server and a Ray head on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]
FID300 = REPO.parent / "shared" / "data" / "fid300"
TEST_BUCKET = "shoematch-test"
# The API token lives in the Ray nodes' environment, as a real node's would (from a Secret):
# Serve replicas read it there; it never travels in a runtime env or the Serve config.
NODE_TOKEN_ENV, NODE_TOKEN = "SHOEMATCH_TEST_API_TOKEN", "test-token-123"


@dataclass
class S3:
    endpoint: str
    bucket: str

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """SeaweedFS on loopback with a test bucket; AWS_* variables point every client at it."""
    import boto3

    from cluster.s3 import start_s3

    saved = {k: os.environ.get(k) for k in
             ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="shoematch-test-key",
                      AWS_SECRET_ACCESS_KEY="shoematch-test-secret", AWS_REGION="us-east-1")
    service = start_s3(str(tmp_path_factory.mktemp("s3")))
    os.environ["AWS_ENDPOINT_URL"] = service.url
    try:
        client = boto3.client("s3")
        deadline = time.monotonic() + 20
        while True:
            try:
                client.create_bucket(Bucket=TEST_BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield S3(service.url, TEST_BUCKET)
    finally:
        service.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory):
    """A `ray start --head` on loopback; yields the Service (url = dashboard / Jobs API).

    Its own temp dir, because a job's driver finds its cluster through the head's temp dir
    (`ray_current_cluster`): in the shared default `/tmp/ray`, jobs of test sessions running
    side by side on one machine connect to whichever cluster started last."""
    import shutil
    import tempfile

    from cluster.ray_local import start_head

    temp_dir = tempfile.mkdtemp(prefix="ray-t-", dir="/tmp")  # short: socket paths < 107
    service = start_head(str(tmp_path_factory.mktemp("ray")), env={NODE_TOKEN_ENV: NODE_TOKEN},
                         temp_dir=temp_dir)
    try:
        yield service
    finally:
        # A head that has run jobs can take 15 s to stop gracefully; its temp dir goes anyway.
        service.stop(timeout_s=3.0)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on loopback; yields its SQLAlchemy URL."""
    import shutil

    from tests.postgres import start_postgres, stop_postgres

    service, root = start_postgres()
    try:
        yield service.url
    finally:
        stop_postgres(service)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fid300_dir() -> Path:
    if not (FID300 / "references").is_dir():
        pytest.skip("../shared/data/fid300 is not present")
    return FID300


@pytest.fixture(scope="session")
def tiny_refs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tests' synthetic data: `references` (16 models × 2 instances) and `queries` (8) on a
    64×128 canvas, generated once per session by `jobs.synth --local`."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("tiny-refs")
    result = subprocess.run(
        [sys.executable, "-m", "jobs.synth", "--out", str(out), "--models", "16",
         "--instances", "2", "--queries", "8", "--seed", "11", "--height", "64", "--width",
         "128", "--local"], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return str(out)


@pytest.fixture(scope="session")
def random_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised (seeded) small CriSp encoder saved as a model directory."""
    import torch

    from shoematch.crisp.model import CrispEncoder, CrispEncoderConfig
    from shoematch.crisp.store import save_encoder

    torch.manual_seed(0)
    config = CrispEncoderConfig(arch="resnet18", embed_dim=16)
    out = tmp_path_factory.mktemp("encoder")
    save_encoder(str(out), CrispEncoder(**config.model_dump()), config, {"note": "random"})
    return str(out)


@pytest.fixture(scope="session")
def tiny_index(tiny_refs, random_encoder, tmp_path_factory) -> str:
    """`tiny_refs` indexed with `random_encoder` in 2 shards (in process, no Ray)."""
    import subprocess
    import sys

    root = str(tmp_path_factory.mktemp("tiny-index") / "index")
    result = subprocess.run([sys.executable, "-m", "jobs.reindex", "--model", random_encoder,
                             "--refdb", f"{tiny_refs}/references", "--out", root, "--shards",
                             "2", "--local"], cwd=REPO, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr
    return root
