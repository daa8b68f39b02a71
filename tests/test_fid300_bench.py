"""The FID-300 benchmark's data path and dense rows on a tiny folder laid out like FID-300
(references/*.png, probes/*.jpg, labels_dev.csv), made here from synthetic treads."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks.fid300 import calibration_table, evaluate_dense, print_calibration
from benchmarks.fid300_data import load_fid
from benchmarks.fid300_variants import fused_row
from shoematch.dense.matcher import DenseConfig
from shoematch.retrieval.calibration import z_scores


def make_fid_folder(root, count: int = 5) -> None:
    """FID-300 conventions: grey, dark ink on light paper, toe up, 20 px/cm."""
    rng = np.random.default_rng(0)
    (root / "references").mkdir(parents=True)
    (root / "probes").mkdir()
    lines = ["probe_id,reference_id"]
    for number in range(1, count + 1):
        cells = rng.random((24, 10)) > 0.5
        ink = np.kron(cells, np.ones((16, 16)))
        Image.fromarray((255 - 200 * ink).astype(np.uint8)).save(
            root / "references" / f"{number:05d}.png")
        crop = ink[96:320, 16:144]
        noisy = np.clip(255 - 180 * crop + rng.normal(0, 12, crop.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(root / "probes" / f"{number + 10:05d}.jpg",
                                                     quality=90)
        lines.append(f"{number + 10},{number}")
    (root / "labels_dev.csv").write_text("\n".join(lines) + "\n")


def test_dense_rows_on_an_fid_layout_folder(tmp_path) -> None:
    make_fid_folder(tmp_path / "src")
    data = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))
    assert data.px_per_cm == 10.0 and len(data.probes) == 5
    assert len(data.reference_prints) == 5
    row, per_probe, _, gallery = evaluate_dense(data, DenseConfig(block=2, px_per_cm=10.0))
    assert row["hit@1"] == 100.0 and row["top1%"] == 100.0
    assert row["ranks"] == [1] * 5 and len(per_probe) == 5
    assert row["bytes_per_reference"] == int(gallery.maps[0].numel()) * 2
    again = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))  # ingested once, reused
    assert again.refdb == data.refdb


def test_fusing_two_resolutions_ranks_by_summed_per_probe_z_scores(tmp_path) -> None:
    make_fid_folder(tmp_path / "src", count=4)
    data = load_fid(str(tmp_path / "src"), str(tmp_path / "data"))
    _, coarse, *_ = evaluate_dense(data, DenseConfig(block=2, px_per_cm=10.0))
    _, fine, *_ = evaluate_dense(data, DenseConfig(block=2, px_per_cm=13.0))
    row = fused_row(data, [coarse, fine])
    assert row["ranks"] == [1] * 4 and row["hit@1"] == 100.0
    z = z_scores(np.array([[1.0, 2.0, 3.0, -np.inf]]))
    assert np.isneginf(z[0, 3]) and np.allclose(z[0, :3], [-1.2247449, 0.0, 1.2247449])


def test_a_probe_set_the_calibrator_cannot_fit_is_reported_not_fatal(capsys) -> None:
    per_probe = [np.array([3.0, 1.0, 0.5, 0.2]) for _ in range(10)]
    table = calibration_table(per_probe, [1] * 10)  # every probe in its top 10
    assert "both inside and outside the top 10" in table["skipped"]
    print_calibration(table, "m")
    assert "not fitted" in capsys.readouterr().out
