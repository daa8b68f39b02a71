"""jobs.ingest as users run it: a good folder publishes; bad input names the file and publishes
nothing, leaving a previous dataset intact."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import REPO


def folder(root: Path, corrupt: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["instance_id,model_id,print,descriptors"]
    for i in range(6):
        image = np.zeros((40, 100), np.uint8)
        image[10:30, 10 + i * 10:40 + i * 10] = 255
        Image.fromarray(image).save(root / f"p{i}.png")
        rows.append(f"i{i},m{i // 2},p{i}.png,D01")
    if corrupt:
        (root / "p4.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def ingest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.ingest", "--shard-rows", "2", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_folder_ingest_then_corrupt_reingest_keeps_the_old_dataset(tmp_path):
    out = tmp_path / "out"
    good = ingest("--format", "folder", "--src", str(folder(tmp_path / "good")), "--out", str(out))
    assert good.returncode == 0, good.stderr
    manifest = json.loads((out / "references" / "manifest.json").read_text())
    assert manifest["count"] == 6 and len(manifest["shards"]) == 3

    bad = ingest("--format", "folder", "--src", str(folder(tmp_path / "bad", corrupt=True)),
                 "--out", str(out))
    assert bad.returncode == 2
    assert "p4.png" in bad.stderr and "cannot decode" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert json.loads((out / "references" / "manifest.json").read_text()) == manifest
    assert len(list((out / "references" / "shards").iterdir())) == 3  # nothing half-written

    fresh = tmp_path / "fresh"
    assert ingest("--format", "folder", "--src", str(tmp_path / "bad"), "--out",
                  str(fresh)).returncode == 2
    assert not (fresh / "references" / "manifest.json").exists()


def test_missing_label_file_is_named(tmp_path):
    src = tmp_path / "fid"
    (src / "references").mkdir(parents=True)
    (src / "probes").mkdir()
    Image.fromarray(np.zeros((60, 30), np.uint8)).save(src / "references" / "00001.png")
    result = ingest("--format", "fid300", "--src", str(src), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "labels_dev.csv" in result.stderr
