"""The auxiliary models as users run them: `ray job submit` against a local head with 2 DDP
workers on CPU, an MLflow run with evaluation metrics and artifacts, a registered model that
loads through its MLflow URI and predicts; the descriptor sweep as one Ray Tune job of parallel
trials; bad input that fails before any cluster work."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.job_cli import run_job
from tests.ray_jobs import submit as submit_job
from tests.ray_jobs import wait_job


@pytest.fixture(scope="module")
def refdb(tiny_refs) -> str:
    return f"{tiny_refs}/references"


def common(refdb: str, tmp) -> list[str]:
    return [f"data.refdb={refdb}", f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db"]


def submit(ray_head, job: str, args: list[str], timeout_s: float = 300) -> str:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head.url)
    job_id = submit_job(client, f"jobs.{job}", args,
                        env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"})
    status = wait_job(client, job_id, timeout_s)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    return logs


def only_run(tmp, experiment: str):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert len(runs) == 1, runs
    return runs[0]


def artifacts(run, path: str) -> list[str]:
    import mlflow

    return [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, path)]


def test_descriptor_training_via_job_submit(refdb, tmp_path, ray_head):
    from shoematch.descriptors.predict import load_descriptor_model

    logs = submit(ray_head, "train_descriptors", [
        "--config", "configs/descriptors_tiny.yaml", *common(refdb, tmp_path),
        f"ray.storage_path={tmp_path}/ray", "ray.run_name=desc", "optim.steps=4",
        "optim.frozen_steps=2", "optim.batch_size=4", "schedule.checkpoint_every=2",
        "schedule.log_every=2", "schedule.gradcam_descriptors=1"])
    assert "step 4/4" in logs and "model: models:/shoe-descriptors/1" in logs
    run = only_run(tmp_path, "descriptors")
    assert 0 <= run.data.metrics["pr_auc_mean"] <= 1
    assert run.data.metrics["final_step"] == 4
    assert run.data.params["model.preprocess"] == "cbn_1"
    files = artifacts(run, "evaluation")
    assert {"evaluation/confusion.csv", "evaluation/pr_auc.md"} <= set(files)
    assert any(name.startswith("evaluation/gradcam_") for name in files)
    predictor = load_descriptor_model("models:/shoe-descriptors@current")
    scores = predictor.predict([np.zeros((192, 384), np.uint8)])[0]
    assert len(scores) == 17 and predictor.info["step"] == 4

    # Re-submitting the run name with more steps resumes it: same MLflow run, a new version.
    logs = submit(ray_head, "train_descriptors", [
        "--config", "configs/descriptors_tiny.yaml", *common(refdb, tmp_path),
        f"ray.storage_path={tmp_path}/ray", "ray.run_name=desc", "optim.steps=6",
        "optim.frozen_steps=2", "optim.batch_size=4", "schedule.checkpoint_every=2",
        "schedule.log_every=2", "schedule.gradcam_descriptors=0"])
    assert "resumed from checkpoint at step 4" in logs
    assert "model: models:/shoe-descriptors/2" in logs
    assert only_run(tmp_path, "descriptors").data.metrics["final_step"] == 6
    assert load_descriptor_model("models:/shoe-descriptors@current").info["step"] == 6


def test_attribute_training_via_job_submit(refdb, tmp_path, ray_head):
    from shoematch.attributes.predict import load_attribute_model

    logs = submit(ray_head, "train_attributes", [
        "--config", "configs/attributes_tiny.yaml", *common(refdb, tmp_path),
        f"ray.storage_path={tmp_path}/ray", "ray.run_name=attr", "optim.steps=4",
        "optim.models_per_batch=4", "mining.every=2", "schedule.checkpoint_every=2",
        "schedule.log_every=2", "model.input_height=64", "model.input_width=128"])
    assert "step 4/4" in logs and "model: models:/shoe-attributes/1" in logs
    run = only_run(tmp_path, "attributes")
    assert 0 <= run.data.metrics["top20_street_to_catalogue"] <= 1
    assert {"attr_acc_colour", "attr_acc_category", "triplet", "viewpoint"} <= set(
        run.data.metrics)
    predictor = load_attribute_model("models:/shoe-attributes@current")
    photo = np.full((192, 384, 3), 128, np.uint8)
    assert set(predictor.predict([photo])[0]) == set(predictor.vocabulary)
    assert predictor.embed([photo, photo]).shape[0] == 2


def test_descriptor_sweep_runs_parallel_trials_in_one_job(refdb, tmp_path, ray_head):
    import mlflow

    logs = submit(ray_head, "sweep_descriptors", [
        "--config", "configs/descriptor_sweep_tiny.yaml", *common(refdb, tmp_path),
        f"ray.storage_path={tmp_path}/ray", "optim.steps=2", "optim.frozen_steps=1",
        "optim.batch_size=4", "sweep.preprocess=[none,inc_d]", "sweep.channels=[BHN,NNH]",
        "sweep.report_every=1"])
    assert "4 trials submitted" in logs
    assert (tmp_path / "ray" / "descriptor-sweep-tiny").is_dir()  # the Ray Tune experiment
    for setting in ("none/B-H-N", "none/N-N-H", "inc_d/B-H-N", "inc_d/N-N-H"):
        assert f"| {setting} |" in logs
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["descriptors"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 5
    assert {"sweep/comparison.md", "sweep/comparison.json"} <= set(artifacts(parents[0],
                                                                             "sweep"))


@pytest.mark.parametrize("job,config", [("train_descriptors", "configs/descriptors_tiny.yaml"),
                                        ("train_attributes", "configs/attributes_tiny.yaml"),
                                        ("sweep_descriptors",
                                         "configs/descriptor_sweep_tiny.yaml")])
def test_bad_inputs_fail_before_cluster_work(job, config, refdb, tmp_path, capsys):
    def run(*extra: str, in_subprocess: bool = False) -> subprocess.CompletedProcess:
        return run_job(f"jobs.{job}", ["--config", config, *common(refdb, tmp_path),
                                       f"ray.storage_path={tmp_path}/ray", *extra], capsys,
                       in_subprocess)

    unknown = run("optim.learning_rate=0.1", in_subprocess=True)
    assert unknown.returncode == 2
    assert "unknown config key 'optim.learning_rate'" in unknown.stderr
    missing = run(f"data.refdb={tmp_path}/nothing")
    assert missing.returncode == 2 and "no manifest.json" in missing.stderr
    no_eval = run("data.eval_split=nosuchsplit")
    assert no_eval.returncode == 2 and "'nosuchsplit'" in no_eval.stderr
    assert "Traceback" not in no_eval.stderr
    assert not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()
