"""Settings of the Serve application (the `args` of `serve.app:build_app`, or YAML)."""

from __future__ import annotations

from pydantic import Field

from shoematch.config import StrictModel
from shoematch.crisp.runtime import DEFAULT_RUNTIME, Runtime
from shoematch.index.reader import MAX_K

CPU_TARGET_ONGOING = 2  # Serve's own default target


class ServeSettings(StrictModel):
    index: str = Field(description="index root (dir or s3://); its CURRENT version is served")
    slots: int = Field(2, ge=1, description="shard deployments; index shard i → slot i mod slots")
    model: str | None = Field(None, description="query encoder; default: the index's model")
    descriptor_model: str | None = Field(
        None, description="for /v1/descriptors; default: the one the index was built with")
    attribute_model: str | None = Field(
        None, description="for /v1/attributes and /v1/search/photo; default: the index's")
    max_upload_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    max_k: int = Field(MAX_K, ge=1, le=MAX_K,
                       description="the one limit on k; shards hold the same cap")
    max_rerank: int = Field(500, ge=1, description="most models a request may re-rank densely")
    encoder_min_replicas: int = Field(1, ge=1)
    encoder_max_replicas: int = Field(2, ge=1)
    encoder_batch_size: int = Field(8, ge=1)
    encoder_batch_wait_s: float = Field(0.005, ge=0)
    encoder_cpus: float = Field(
        0.25, gt=0, description="Ray CPUs each encoder replica reserves (placement only; its "
                                "threads are encoder_threads): 0.25 lets the second replica fit "
                                "on a 2-CPU node beside two shard slots")
    encoder_gpus: float = Field(0.0, ge=0, le=1, description="each encoder replica's share of "
                                "a GPU (it then runs eagerly there)")
    encoder_threads: int = Field(1, ge=1, description="intra-op threads per encoder replica")
    encoder_runtime: Runtime = Field(
        DEFAULT_RUNTIME, description="how the query encoder runs on CPU: onnx_int8 (ONNX "
                                     "Runtime, int8 convolutions: the fastest measured), onnx "
                                     "(float, exact), eager, channels_last or compile; a GPU "
                                     "replica runs eagerly on the GPU")
    max_inflight: int = Field(
        8, ge=1, description="requests one gateway replica encodes and searches at once; more "
                             "wait up to admission_wait_s, then get 503 with Retry-After")
    admission_wait_s: float = Field(0.5, ge=0, description="longest wait for a free slot")
    request_timeout_s: float = Field(
        45.0, gt=0, description="deadline of an admitted request's encoding and search (503 "
                                "with Retry-After past it)")
    retry_after_s: float = Field(1.0, gt=0, description="Retry-After of every 503")
    shard_cpus: float = Field(0.5, gt=0)
    shard_gpus: float = Field(0.0, ge=0, le=1, description="each shard replica's share of a "
                              "GPU: above 0 its scan and exact pass run there, holding its "
                              "shards' int8 copy and float16 truth in GPU memory")
    gateway_cpus: float = Field(0.25, gt=0)
    labels_cpus: float = Field(0.1, gt=0, description="descriptor/attribute model replica")
    shard_threads: int = Field(1, ge=1, description="threads per shard replica (torch and the "
                               "search kernels)")
    shard_timeout_s: float = Field(30.0, gt=0, description="per-shard answer deadline")
    users_file: str | None = Field(
        None, description="named bearer tokens ('name token' per line) for the workbench; "
                          "default: SHOEMATCH_USERS_FILE")
    db_url: str | None = Field(
        None, description="case database (SQLAlchemy URL); default: SHOEMATCH_DB_URL, else "
                          "an SQLite file under runs/workbench/")
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="uploads declaring more pixels are refused unread")
    token_env: str = Field("SHOEMATCH_API_TOKEN",
                           description="environment variable holding the bearer token, read "
                                       "on the gateway's node (never forwarded); auth is on "
                                       "when it is set")

    def encoder_target_ongoing(self) -> int:
        """Requests per encoder replica before autoscaling adds one.

        On a GPU a batch costs little more than one query (H200: 6.5 ms alone, 1.3 ms a query in
        a batch of 8), so a replica should fill its batch first. On CPU a batch takes its size
        times one query, so queued queries only wait: a second replica on the other core takes
        them (benchmarks/load_test.py --encoder-replicas, docs/scale.md).
        """
        return self.encoder_batch_size if self.encoder_gpus > 0 else CPU_TARGET_ONGOING
