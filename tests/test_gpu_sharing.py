"""CriSp on GPUs: each DDP worker and the augmentation actors share one GPU, so on a one-GPU
machine the training batches still flow. (Workers holding a whole GPU each left the augmentation
actor waiting for a GPU for ever, and the workers waiting for its batches.)"""

from __future__ import annotations

import threading

import pytest
import ray
from pydantic import ValidationError

from shoematch.crisp.config import CrispTrainConfig
from shoematch.ray.train import worker_resources


def crisp_config(refdb: str, tmp_path, **ray_fields) -> CrispTrainConfig:
    return CrispTrainConfig.model_validate({
        "data": {"refdb": refdb},
        "optim": {"steps": 1, "batch_models": 2},
        "ray": {"num_workers": 1, "use_gpu": True, "aug_batch_size": 2, "group_partitions": 1,
                "storage_path": str(tmp_path / "ray"), **ray_fields},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}})


def test_shares_that_overfill_a_gpu_are_refused_by_name(tmp_path):
    with pytest.raises(ValidationError, match="ray.gpus_per_worker=1 .* exceed one GPU"):
        crisp_config(str(tmp_path), tmp_path, gpus_per_worker=1.0)
    with pytest.raises(ValidationError, match="2 augmentation actor"):
        crisp_config(str(tmp_path), tmp_path, aug_actors=2)
    assert crisp_config(str(tmp_path), tmp_path, gpus_per_worker=1.0,
                        aug_actor_gpus=0).ray.aug_actor_gpus == 0
    assert crisp_config(str(tmp_path), tmp_path, num_workers=2, aug_actors=2).ray.use_gpu


@pytest.mark.slow
def test_augmentation_runs_beside_a_worker_on_one_gpu(tiny_refs, tmp_path):
    """One logical GPU: an actor holding a DDP worker's resources, then the training data
    pipeline must still deliver a batch (its actor takes the rest of the GPU)."""
    from shoematch.ray.crisp import build_train_stream

    class WorkerStandIn:  # defined here: Ray ships it by value, the module is not importable
        """Holds a DDP worker's resources for the length of the test."""

        def ready(self) -> bool:
            return True

    config = crisp_config(f"{tiny_refs}/references", tmp_path)
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        resources = worker_resources(config.ray)
        worker = ray.remote(WorkerStandIn).options(
            num_cpus=resources["CPU"], num_gpus=resources["GPU"]).remote()
        assert ray.get(worker.ready.remote())
        batches: list[dict] = []
        dataset = build_train_stream(config).dataset
        reader = threading.Thread(target=lambda: batches.append(next(iter(
            dataset.iter_batches(batch_size=None, batch_format="numpy")))), daemon=True)
        reader.start()
        reader.join(timeout=180)
        assert batches, "no augmented batch within 180 s: the actor found no GPU share left"
        assert len(batches[0]["label"]) > 0
    finally:
        ray.shutdown()
