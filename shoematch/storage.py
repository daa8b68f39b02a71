"""One storage abstraction over local directories and `s3://bucket/prefix` locations.

File I/O goes through a pyarrow FileSystem (what Parquet and Ray Data also use); boto3 does the
S3 pre-flight check (endpoint reachable, bucket present) with short time-outs so an unreachable
store fails in seconds with a clear message before anything is written. Credentials come only
from the environment or the standard AWS config and are never logged. The endpoint comes from
`AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (unset: AWS itself).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from shoematch.errors import StorageError

S3_CONNECT_TIMEOUT_S = 3.0
S3_REQUEST_TIMEOUT_S = 30.0


def s3_endpoint() -> str | None:
    """The S3 endpoint URL from the environment (None: the AWS default)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


@dataclass(frozen=True)
class Store:
    """A root location; every path argument is relative to it, '/'-separated."""

    uri: str

    @cached_property
    def _parsed(self) -> tuple[str, str]:
        if is_s3(self.uri):
            parsed = urlparse(self.uri)
            if not parsed.netloc:
                raise StorageError(f"{self.uri}: an s3:// location needs a bucket name")
            return parsed.netloc, parsed.path.strip("/")
        return "", os.path.abspath(os.path.expanduser(self.uri))

    @property
    def bucket(self) -> str:
        return self._parsed[0]

    @property
    def root(self) -> str:
        """The root as a path inside `fs` (bucket/prefix for S3, absolute path locally)."""
        bucket, key = self._parsed
        return posixpath.join(bucket, key) if bucket else key

    @cached_property
    def fs(self) -> pafs.FileSystem:
        if not is_s3(self.uri):
            return pafs.LocalFileSystem()
        endpoint = s3_endpoint()
        kwargs: dict = {
            "region": s3_region(),
            "connect_timeout": S3_CONNECT_TIMEOUT_S,
            "request_timeout": S3_REQUEST_TIMEOUT_S,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        }
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs["endpoint_override"] = parsed.netloc or endpoint
            kwargs["scheme"] = parsed.scheme or "https"
        return pafs.S3FileSystem(**kwargs)

    def path(self, *parts: str) -> str:
        """Path inside `fs` of a relative location."""
        return posixpath.join(self.root, *parts) if parts else self.root

    def child_uri(self, *parts: str) -> str:
        return posixpath.join(self.uri.rstrip("/"), *parts)

    def child(self, *parts: str) -> Store:
        return Store(self.child_uri(*parts))

    def check(self) -> None:
        """Fail fast, naming the location, if it cannot be reached (S3: endpoint and bucket)."""
        if not is_s3(self.uri):
            parent = self.root
            while not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if not os.access(parent, os.W_OK):
                raise StorageError(f"{self.uri}: directory {parent} is not writable")
            return
        import boto3
        import botocore.config
        import botocore.exceptions

        client = boto3.client(
            "s3",
            endpoint_url=s3_endpoint(),
            region_name=s3_region(),
            config=botocore.config.Config(
                connect_timeout=S3_CONNECT_TIMEOUT_S,
                read_timeout=S3_REQUEST_TIMEOUT_S,
                retries={"max_attempts": 2, "mode": "standard"},
            ),
        )
        where = f"S3 endpoint {s3_endpoint() or 'AWS default'}"
        try:
            client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.EndpointConnectionError as exc:
            raise StorageError(f"{self.uri}: cannot reach {where} ({exc})") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise StorageError(
                f"{self.uri}: no AWS credentials found (set AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY or an AWS profile)"
            ) from exc
        except botocore.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            if code in ("404", "NoSuchBucket"):
                raise StorageError(f"{self.uri}: bucket {self.bucket!r} does not exist") from exc
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageError(f"{self.uri}: access denied to bucket {self.bucket!r}") from exc
            raise StorageError(f"{self.uri}: {where} answered {code}") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(f"{self.uri}: {where} failed ({exc})") from exc

    def _wrap(self, action: str, rel: str, exc: Exception) -> StorageError:
        return StorageError(f"{self.child_uri(rel)}: cannot {action} ({exc})")

    def exists(self, rel: str) -> bool:
        try:
            return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("check existence", rel, exc) from exc

    def read_bytes(self, rel: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.path(rel)) as stream:
                return stream.read()
        except FileNotFoundError as exc:
            raise StorageError(f"{self.child_uri(rel)}: not found") from exc
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("read", rel, exc) from exc

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a whole object so readers see either the old or the new content, never half.

        S3 PUTs are atomic per object; locally we write a temporary file and rename it.
        """
        target = self.path(rel)
        try:
            if is_s3(self.uri):
                with self.fs.open_output_stream(target) as stream:
                    stream.write(data)
                return
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("write", rel, exc) from exc

    def list(self, rel: str = "") -> list[str]:
        """Names (not paths) of the entries directly under `rel`; empty if it does not exist."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("list", rel, exc) from exc
        return sorted(posixpath.basename(info.path) for info in infos)

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("delete", rel, exc) from exc

    def delete_dir(self, rel: str) -> None:
        try:
            self.fs.delete_dir(self.path(rel))
        except FileNotFoundError:
            return
        except (OSError, pa.ArrowException) as exc:
            raise self._wrap("delete", rel, exc) from exc


def open_store(uri: str) -> Store:
    """The Store for a local directory or an s3://bucket/prefix URI."""
    if not uri:
        raise StorageError("empty storage location")
    return Store(uri)


def new_write_id() -> str:
    """A short unique id that keeps files of concurrent or interrupted writes apart."""
    return uuid.uuid4().hex[:12]
