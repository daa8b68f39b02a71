"""Readers of real data: small trees in each source's exact layout, plus the real FID-300 folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoematch.data.images import decode_image
from shoematch.data.readers import READERS, read_crisp, read_fid300, read_folder
from shoematch.data.readers.placement import fit, place_centred, sole_mask, toe_up_to_toe_right
from shoematch.data.schema import Canvas, validate_records
from shoematch.errors import ConfigError, DatasetError, ImageError

SMALL = Canvas(16, 32)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _dark_print(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark-ink print on light paper (stripes inside a central rectangle) and its mask."""
    grey = np.full((height, width), 230, np.uint8)
    mask = np.zeros((height, width), np.uint8)
    top, left = height // 4, width // 4
    mask[top:-top, left:-left] = 255
    grey[top:-top, left:-left][:, ::2] = 20
    return grey, mask


def _grey(record: dict, field: str) -> np.ndarray:
    return decode_image(record[field], field)


# --- CriSp ----------------------------------------------------------------------------------

CRISP_INSTANCES = {"train": ["dp_sh_S1_0", "dp_sh_S1_1", "dp_sh_S2_0"], "reference": ["rf_x_S3_a"]}


def _crisp_tree(root: Path) -> Path:
    for split, stems in CRISP_INSTANCES.items():
        for stem in stems:
            grey, mask = _dark_print(40, 80)  # not on the canvas: the reader resizes
            _save(root / split / "print" / f"{stem}.png", grey)
            _save(root / split / "mask" / f"{stem}.png", mask)
            _save(root / split / "depth" / f"{stem}.png",
                  np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (40, 1)))
            if split == "train":
                _save(root / split / "image" / f"{stem}.jpg", np.zeros((40, 80, 3), np.uint8))
    fid = root / "val_FID"
    fid.mkdir(parents=True)
    np.save(fid / "labels.npy", np.array({"000001": "S1_S2", "000012": "S3"}), allow_pickle=True)
    np.save(fid / "labels_crime_scene_to_reference_map.npy",
            np.array([["00005", "1"], ["00007", "12"]], dtype=object), allow_pickle=True)
    grey, mask = _dark_print(16, 32)
    _save(fid / "print" / "00005.png", grey)
    _save(fid / "mask" / "00005.png", mask)
    _save(fid / "print" / "00007.jpg", grey)  # no mask: the whole print is visible
    case = root / "val_ShoeCase"
    case.mkdir()
    np.save(case / "make_models.npy", np.array(["Nike", "Nike Air Max"]), allow_pickle=True)
    (case / "make_model_mapping").mkdir()
    np.save(case / "make_model_mapping" / "nike_similar.npy", np.array(["S3"]), allow_pickle=True)
    np.save(case / "make_model_mapping" / "nike_air_max_similar.npy", np.array(["S2", "S1"]),
            allow_pickle=True)
    _save(case / "dust" / "nike_air_max_001.png", grey)
    _save(case / "blood" / "nike_002.png", grey)
    return root


def test_crisp_references(tmp_path: Path) -> None:
    out = read_crisp(str(_crisp_tree(tmp_path)), SMALL)
    assert (out.reference_count, out.query_count) == (4, 4)
    records = list(out.references)
    assert validate_records("references", records, SMALL) == 4
    by_id = {r["instance_id"]: r for r in records}
    assert set(by_id) == {s for stems in CRISP_INSTANCES.values() for s in stems}
    first = by_id["dp_sh_S1_0"]
    assert (first["model_id"], first["pattern_id"], first["split"]) == ("S1", "S1", "train")
    assert first["source"] == "crisp" and first["photo"] is not None
    reference = by_id["rf_x_S3_a"]
    assert (reference["model_id"], reference["split"], reference["photo"]) == ("S3", "reference",
                                                                               None)
    # Dark ink on light paper was turned into 255 = ink: bright stripes, dark background.
    ink, mask = _grey(first, "print"), _grey(first, "mask")
    assert set(np.unique(mask)) == {0, 255}
    assert ink[mask == 0].mean() < 50 < ink[mask == 255].mean()
    assert out.params["invert_print"] == "auto"


def test_crisp_invert_print_can_be_forced(tmp_path: Path) -> None:
    out = read_crisp(str(_crisp_tree(tmp_path)), SMALL, invert_print=False)
    record = next(iter(out.references))
    ink, mask = _grey(record, "print"), _grey(record, "mask")
    assert ink[mask == 0].mean() > 200  # kept as it was: light paper


def test_crisp_queries(tmp_path: Path) -> None:
    out = read_crisp(str(_crisp_tree(tmp_path)), SMALL)
    queries = {q["query_id"]: q for q in out.queries}
    assert validate_records("queries", queries.values(), SMALL) == 4
    fid = queries["FID-00005"]
    assert (fid["targets"], fid["category"], fid["seen"], fid["split"]) == (["S1", "S2"], "fid",
                                                                            False, "val")
    assert (_grey(fid, "mask") == 0).any()
    assert queries["FID-00007"]["targets"] == ["S3"]
    assert (_grey(queries["FID-00007"], "mask") == 255).all()
    dust = queries["ShoeCase-dust-nike_air_max_001"]  # the longest make-model prefix wins
    assert (dust["targets"], dust["category"], dust["split"]) == (["S1", "S2"], "dust", "test")
    assert queries["ShoeCase-blood-nike_002"]["targets"] == ["S3"]


def test_crisp_shoecase_keyed_layout(tmp_path: Path) -> None:
    """CriSp's released loader: (N, 2) [key, make-model] and category/print/ + category/mask/."""
    case = tmp_path / "val_ShoeCase"
    case.mkdir()
    np.save(case / "make_models.npy", np.array([["k7", "Vans Old Skool"]]), allow_pickle=True)
    (case / "make_model_mapping").mkdir()
    np.save(case / "make_model_mapping" / "vans_old_skool_similar.npy", np.array(["V1"]),
            allow_pickle=True)
    grey, mask = _dark_print(16, 32)
    _save(case / "dust" / "print" / "001_k7_left.png", grey)
    _save(case / "dust" / "mask" / "001_k7_left.png", mask)
    out = read_crisp(str(tmp_path), SMALL)
    assert out.references is None and out.query_count == 1
    query = next(out.queries)
    assert query["targets"] == ["V1"] and (_grey(query, "mask") == 0).any()


def test_crisp_errors_name_the_file(tmp_path: Path) -> None:
    root = _crisp_tree(tmp_path)
    (root / "val_FID" / "labels.npy").unlink()
    with pytest.raises(DatasetError, match="labels.npy"):
        read_crisp(str(root), SMALL)
    root = _crisp_tree(tmp_path / "b")
    (root / "train" / "mask" / "dp_sh_S2_0.png").unlink()
    with pytest.raises(DatasetError, match=r"mask/dp_sh_S2_0"):
        read_crisp(str(root), SMALL)
    root = _crisp_tree(tmp_path / "c")
    bad = root / "train" / "print" / "dp_sh_S1_1.png"
    bad.write_bytes(b"not a png")
    out = read_crisp(str(root), SMALL)  # listing succeeds; decoding names the file
    with pytest.raises(ImageError, match=str(bad)):
        list(out.references)
    root = _crisp_tree(tmp_path / "d")
    for path in (root / "reference" / "mask").iterdir():
        path.unlink()
    (root / "reference" / "mask").rmdir()
    with pytest.raises(DatasetError, match=r"reference/mask: folder not found"):
        read_crisp(str(root), SMALL)
    with pytest.raises(DatasetError, match="no CriSp folder"):
        read_crisp(str(tmp_path / "empty"), SMALL)


# --- FID-300 --------------------------------------------------------------------------------

def _fid_tree(root: Path, labels: bool = True) -> Path:
    sole = np.full((60, 20), 255, np.uint8)  # upright, white paper, toe at the top
    sole[2:30, 2:18] = 0  # wide forefoot (top)
    sole[30:58, 6:14] = 0  # narrow heel (bottom)
    _save(root / "references" / "00001.png", sole)
    _save(root / "references" / "00002.png", sole)
    _save(root / "probes" / "00001.jpg", np.full((24, 10), 255, np.uint8))
    _save(root / "probes" / "00003.jpg", np.full((900, 10), 255, np.uint8))  # unlabelled
    if labels:
        (root / "labels_dev.csv").write_text("probe_id,reference_id\n1,2\n")
    return root


def test_fid300_small_tree(tmp_path: Path) -> None:
    out = read_fid300(str(_fid_tree(tmp_path)), scale=1.0)
    assert (out.reference_count, out.query_count) == (2, 1)
    assert out.params["px_per_cm"] == 20.0 and out.params["placement"] == "centred"
    assert out.params["unlabelled_probes_left_out"] == 1
    references = list(out.references)
    assert validate_records("references", references, out.canvas) == 2
    reference = references[0]
    assert reference["model_id"] == reference["instance_id"] == "FID-R00001"
    assert reference["depth"] is None and reference["photo"] is None
    ink = _grey(reference, "print") > 128
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert np.ptp(cols) > np.ptp(rows)  # lies horizontally
    assert ink[:, cols.max()].sum() > ink[:, cols.min()].sum()  # the wide forefoot is right
    assert (_grey(reference, "mask")[ink] == 255).all()
    query = next(out.queries)
    assert (query["query_id"], query["targets"]) == ("FID-P00001", ["FID-R00002"])
    mask = _grey(query, "mask")
    assert (mask == 255).sum() == 24 * 10  # the probe's own area on the canvas


def test_fid300_errors(tmp_path: Path) -> None:
    root = _fid_tree(tmp_path, labels=False)
    with pytest.raises(DatasetError, match="labels_dev.csv"):
        read_fid300(str(root))
    (root / "labels_dev.csv").write_text("probe_id,reference_id\n1,9\n")
    with pytest.raises(DatasetError, match="reference 9"):
        read_fid300(str(root))
    with pytest.raises(ConfigError):
        read_fid300(str(root), scale=0)


def test_fid300_reports_cropping(tmp_path: Path) -> None:
    root = _fid_tree(tmp_path)
    (root / "labels_dev.csv").write_text("probe_id,reference_id\n1,2\n3,1\n")
    out = read_fid300(str(root), scale=1.0)
    assert out.params["cropped_probes"] == 1  # 900 px long > 384 px canvas
    assert all(_grey(q, "mask").shape == (192, 384) for q in out.queries)


def test_fid300_real_folder(fid300_dir: Path) -> None:
    start = time.perf_counter()
    out = read_fid300(str(fid300_dir))
    assert (out.reference_count, out.query_count) == (1175, 100)
    assert out.params["cropped_references"] == out.params["cropped_probes"] == 0
    references = list(out.references)
    queries = list(out.queries)
    assert time.perf_counter() - start < 30
    model_ids = {r["model_id"] for r in references}
    assert len(model_ids) == 1175
    assert all(q["targets"] and set(q["targets"]) <= model_ids for q in queries)
    assert validate_records("references", references[::50], out.canvas) == 24
    assert validate_records("queries", queries, out.canvas) == 100
    # Toe right: for most soles the widest cross-section lies in the right (forefoot) half.
    forefoot_right = []
    for record in references:
        mask = _grey(record, "mask") > 0
        cols = np.flatnonzero(mask.any(0))
        widths = mask.sum(0)
        middle = (cols[0] + cols[-1]) // 2
        forefoot_right.append(widths[middle:].max() > widths[:middle].max())
    assert np.mean(forefoot_right) > 0.7


# --- generic folder -------------------------------------------------------------------------

def _folder_tree(root: Path, rows: str | None = None, queries: str | None = None) -> Path:
    grey, mask = _dark_print(16, 32)
    _save(root / "img" / "a.png", 255 - grey)  # 255 = ink, as the folder reader expects
    _save(root / "img" / "a_mask.png", mask)
    _save(root / "img" / "a_depth.png", np.full((16, 32), 90, np.uint8))
    _save(root / "img" / "square.png", np.full((10, 10), 200, np.uint8))
    _save(root / "img" / "photo.jpg", np.zeros((16, 32, 3), np.uint8))
    (root / "manifest.csv").write_text(rows or (
        "instance_id,model_id,pattern_id,print,depth,mask,photo,descriptors,split,attr_brand\n"
        "a,M1,P1,img/a.png,img/a_depth.png,img/a_mask.png,img/photo.jpg,D01; D14,train,acme\n"
        "b,M2,,img/square.png,,,,,,\n"))
    if queries is not None:
        (root / "queries.csv").write_text(queries)
    return root


def test_folder_references_and_queries(tmp_path: Path) -> None:
    root = _folder_tree(tmp_path, queries=(
        "query_id,print,mask,targets,category,seen\n"
        "q1,img/a.png,img/a_mask.png,M1;M2,blood,true\n"
        "q2,img/square.png,,M2,,\n"))
    out = read_folder(str(root), SMALL)
    assert (out.reference_count, out.query_count) == (2, 2)
    assert out.params["resize"] == "fit"
    a, b = list(out.references)
    assert validate_records("references", [a, b], SMALL) == 2
    assert (a["pattern_id"], a["descriptors"], a["split"]) == ("P1", ["D01", "D14"], "train")
    assert a["attributes"] == {"brand": "acme"} and a["source"] == "folder"
    assert (b["pattern_id"], b["depth"], b["photo"], b["split"]) == ("M2", None, None, "reference")
    square = _grey(b, "print")  # 10 × 10 fitted to 16 × 16, centred, zero-padded
    assert (square[:, 8:24] == 200).all() and (square[:, :8] == 0).all()
    q1, q2 = list(out.queries)
    assert validate_records("queries", [q1, q2], SMALL) == 2
    assert (q1["targets"], q1["category"], q1["seen"]) == (["M1", "M2"], "blood", True)
    assert (q2["category"], q2["seen"], q2["split"]) == ("folder", False, "test")
    assert (_grey(q2, "mask") == 255).sum() == 16 * 16  # visible = where the print lies


def test_folder_stretch_rotate_and_invert(tmp_path: Path) -> None:
    root = _folder_tree(tmp_path)
    out = read_folder(str(root), SMALL, resize="stretch", rotate=90, invert_print=True)
    b = list(out.references)[1]
    assert (_grey(b, "print") == 55).all()  # 200 inverted, stretched over the whole canvas
    with pytest.raises(ConfigError):
        read_folder(str(root), SMALL, resize="crop")


@pytest.mark.parametrize(("rows", "match"), [
    ("instance_id,model_id\na,M1\n", "missing required column 'print'"),
    ("instance_id,model_id,print,colour\na,M1,img/a.png,red\n", "unknown column 'colour'"),
    ("instance_id,model_id,print,descriptors\na,M1,img/a.png,D99\n", "D99"),
    ("instance_id,model_id,print\na,M1,img/a.png\na,M2,img/a.png\n", "duplicate instance_id"),
])
def test_folder_manifest_errors(tmp_path: Path, rows: str, match: str) -> None:
    root = _folder_tree(tmp_path, rows=rows)
    with pytest.raises(DatasetError, match=match) as error:
        read_folder(str(root), SMALL)
    assert "manifest.csv" in str(error.value)


def test_folder_image_errors_name_the_file(tmp_path: Path) -> None:
    root = _folder_tree(tmp_path, rows="instance_id,model_id,print\na,M1,img/missing.png\n")
    with pytest.raises(ImageError, match=str(root / "img" / "missing.png")):
        read_folder(str(root), SMALL)
    root = _folder_tree(tmp_path / "b", rows="instance_id,model_id,print\na,M1,img/bad.png\n")
    (root / "img" / "bad.png").write_bytes(b"\x89PNG broken")
    out = read_folder(str(root), SMALL)
    with pytest.raises(ImageError, match=str(root / "img" / "bad.png")):
        list(out.references)
    with pytest.raises(DatasetError, match="manifest.csv: file not found"):
        read_folder(str(tmp_path / "nowhere"), SMALL)


# --- placement ------------------------------------------------------------------------------

def test_placement_helpers() -> None:
    upright = np.zeros((6, 2), np.uint8)
    upright[0] = 255  # toe row at the top
    assert (toe_up_to_toe_right(upright)[:, -1] == 255).all()
    placed, covered = place_centred(np.ones((4, 50), np.uint8), SMALL)
    assert placed.shape == SMALL.shape and covered[6:10].all() and not covered[5].any()
    fitted, _ = fit(np.ones((4, 4, 3), np.uint8), SMALL)
    assert fitted.shape == (16, 32, 3) and fitted[:, 8:24].all() and not fitted[:, :8].any()
    ink = np.zeros((60, 120), np.uint8)
    ink[20:40, 10:110:3] = 255  # a striped sole: the mask closes the gaps
    mask = sole_mask(ink, px_per_cm=4)
    assert mask[25:35, 12:105].all() and not mask[:10].any()


def test_readers_registry() -> None:
    assert READERS == {"crisp": read_crisp, "fid300": read_fid300, "folder": read_folder}
