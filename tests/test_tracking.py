"""Registering the same model content from the same run twice returns the existing version;
new content gets a new one (a re-submitted finished run must not pile up versions)."""

from __future__ import annotations

from shoematch import tracking


def test_register_reuses_identical_content(tmp_path):
    tracking.configure(f"sqlite:///{tmp_path}/mlflow.db", "tracking-test")
    run = tracking.find_or_create_run("r", {"a": 1}, {"job": "test"})
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"abc")
    first = tracking.log_and_register(run, str(model), "enc", "reg")
    again = tracking.log_and_register(run, str(model), "enc", "reg")
    (model / "weights.bin").write_bytes(b"abcd")
    changed = tracking.log_and_register(run, str(model), "enc", "reg")
    assert (first, again, changed) == ("models:/reg/1", "models:/reg/1", "models:/reg/2")
