"""The data layer on local disk and on a real S3 server: manifests, shards, atomicity, errors."""

import json

import pytest

from shoematch.data.dataset import DatasetWriter, open_dataset
from shoematch.data.images import encode_png
from shoematch.data.schema import QUERY_KIND, REFERENCE_KIND, Canvas, validate_records
from shoematch.errors import DatasetError, ImageError, StorageError
from shoematch.storage import open_store
from tests.records import SMALL, query, reference


def write_refs(uri, n, shard_rows=4):
    with DatasetWriter(uri, REFERENCE_KIND, SMALL, "test", {"p": 1}, shard_rows) as writer:
        writer.add(reference(i) for i in range(n))


def test_round_trip_local(tmp_path):
    uri = str(tmp_path / "refs")
    write_refs(uri, 10)
    dataset = open_dataset(uri, REFERENCE_KIND)
    assert len(dataset) == 10 and len(dataset.manifest.shards) == 3
    dataset.verify()
    records = list(dataset.iter_records())
    assert records[3] == reference(3)
    assert dataset.manifest.params == {"p": 1}
    manifest = json.loads((tmp_path / "refs" / "manifest.json").read_text())
    assert manifest["count"] == 10 and manifest["canvas"] == {"height": 16, "width": 32}
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])


def test_shards_are_deterministic(tmp_path):
    write_refs(str(tmp_path / "a"), 9)
    write_refs(str(tmp_path / "b"), 9)
    sha = [[s.sha256 for s in open_dataset(str(tmp_path / d)).manifest.shards] for d in "ab"]
    assert sha[0] == sha[1]


def test_rewrite_replaces_and_failed_rewrite_keeps_old(tmp_path):
    uri = str(tmp_path / "refs")
    write_refs(uri, 6)
    write_refs(uri, 5)
    assert len(open_dataset(uri)) == 5
    assert len(list((tmp_path / "refs" / "shards").iterdir())) == 2  # old shards removed
    bad = reference(99)
    bad["print"] = b"not an image"
    with pytest.raises(ImageError, match="I0099.*print.*cannot decode"):
        with DatasetWriter(uri, REFERENCE_KIND, SMALL, "test", shard_rows=2) as writer:
            writer.add([reference(i) for i in range(4)] + [bad])
    dataset = open_dataset(uri)
    assert len(dataset) == 5
    dataset.verify()
    assert len(list((tmp_path / "refs" / "shards").iterdir())) == 2


def test_interrupted_write_is_invisible(tmp_path):
    uri = str(tmp_path / "refs")
    with pytest.raises(RuntimeError):
        with DatasetWriter(uri, REFERENCE_KIND, SMALL, "test", shard_rows=2) as writer:
            writer.add(reference(i) for i in range(5))
            raise RuntimeError("killed")
    with pytest.raises(DatasetError, match="no manifest.json"):
        open_dataset(uri)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_id": ""}, "field 'model_id' is empty"),
        ({"print": None}, "missing required field 'print'"),
        ({"mask": encode_png(__import__("numpy").zeros((8, 8), "uint8"))}, "not on the canvas"),
        ({"descriptors": ["D99"]}, "unknown descriptor"),
        ({"colour": "red"}, "unknown field"),
    ],
)
def test_validation_names_the_problem(change, message):
    record = {**reference(1), **change}
    with pytest.raises(DatasetError, match=message):
        validate_records(REFERENCE_KIND, [record], SMALL)


def test_duplicate_id_rejected():
    with pytest.raises(DatasetError, match="duplicate instance_id 'I0001'"):
        validate_records(REFERENCE_KIND, [reference(1), reference(1)], SMALL)


def test_queries_and_kind_check(tmp_path):
    uri = str(tmp_path / "q")
    with DatasetWriter(uri, QUERY_KIND, SMALL, "test") as writer:
        writer.add(query(i) for i in range(3))
    assert open_dataset(uri, QUERY_KIND).ids() == ["Q0000", "Q0001", "Q0002"]
    with pytest.raises(DatasetError, match="holds queries, expected references"):
        open_dataset(uri, REFERENCE_KIND)


def test_empty_write_publishes_nothing(tmp_path):
    with pytest.raises(DatasetError, match="no records"):
        with DatasetWriter(str(tmp_path / "e"), QUERY_KIND, Canvas(), "test"):
            pass
    assert not (tmp_path / "e" / "manifest.json").exists()


def test_s3_round_trip(s3):
    uri = s3.uri("datasets", "refs")
    write_refs(uri, 7)
    dataset = open_dataset(uri)
    assert len(dataset) == 7
    dataset.verify()
    assert [r["instance_id"] for r in dataset.iter_records(["instance_id"])][:2] == ["I0000",
                                                                                    "I0001"]
    assert open_store(uri).list("shards") == sorted(open_store(uri).list("shards"))


def test_s3_missing_bucket(s3):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        write_refs("s3://no-such-bucket/refs", 2)


def test_s3_unreachable_endpoint(s3, monkeypatch, tmp_path):
    from cluster.processes import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StorageError, match="cannot reach S3 endpoint"):
        write_refs(s3.uri("unreachable"), 2)


def test_credentials_never_logged(s3, caplog, capsys):
    import os

    write_refs(s3.uri("logged"), 2)
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret not in caplog.text and secret not in capsys.readouterr().err
