"""CriSp training as users run it: `ray job submit` against a local head, 2 DDP workers on CPU,
checkpoints, an MLflow run with metrics, a registered model, and recovery from a killed worker;
the hyperparameter sweep on Ray Tune."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.job_cli import run_job
from tests.ray_jobs import submit, wait_job

# The killed-worker run: a checkpoint at step 4, a worker killed once step 6 is logged, a
# resumed run to the last step (12: six steps of margin for the kill, past a second checkpoint).
STEPS = 12


def overrides(data: str, tmp: str, run_name: str, steps: int) -> list[str]:
    return [f"data.refdb={data}/references", f"data.val_queries={data}/queries",
            f"ray.storage_path={tmp}/ray", f"ray.run_name={run_name}",
            f"mlflow.tracking_uri=sqlite:///{tmp}/mlflow.db", f"optim.steps={steps}",
            "schedule.checkpoint_every=4", "schedule.log_every=2", "optim.batch_models=2",
            "data.label=model",
            "model.embed_dim=16"]


def train_workers(dashboard: str) -> list[int]:
    from ray.util.state import list_actors

    actors = list_actors(address=dashboard, filters=[("state", "=", "ALIVE")], limit=1000)
    return [a.pid for a in actors if "TrainWorker" in (a.class_name or "")]


def test_train_via_job_submit_survives_a_killed_worker(tiny_refs, tmp_path, ray_head, capsys,
                                                       monkeypatch):
    import mlflow
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray_head.url)
    args = ["--config", "configs/crisp_tiny.yaml",
            *overrides(tiny_refs, str(tmp_path), "killed", steps=STEPS)]
    job = submit(client, "jobs.train_crisp", args,
                 env={"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"})
    wait_job(client, job, 300, until=lambda logs: f"step 6/{STEPS}" in logs)
    pids = train_workers(ray_head.url)
    assert len(pids) == 2, pids
    os.kill(pids[-1], signal.SIGKILL)
    status = wait_job(client, job, 400)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]
    assert "resumed from checkpoint at step" in logs
    assert "model: models:/crisp-encoder/" in logs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["crisp"], output_format="list")
    assert len(runs) == 1
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "loss")
    assert max(m.step for m in history) == STEPS
    assert "val_hit_at_100" in runs[0].data.metrics
    assert runs[0].data.params["model.arch"] == "resnet18"
    versions = mlflow.MlflowClient().search_model_versions("name='crisp-encoder'")
    assert len(versions) == 1
    checkpoints = sorted(os.listdir(tmp_path / "ray" / "killed"))
    assert any(name.startswith(f"step_{STEPS:07d}") for name in checkpoints), checkpoints

    # The registered model evaluates through its MLflow URI, with and without placement search.
    for extra in ([], ["--placement"]):
        out = tmp_path / f"eval{len(extra)}"
        result = subprocess.run(
            [sys.executable, "-m", "jobs.evaluate", "--model", "models:/crisp-encoder@current",
             "--refdb", f"{tiny_refs}/references", "--queries", f"{tiny_refs}/queries",
             "--k", "5", "--out", str(out), "--mlflow-uri", f"sqlite:///{tmp_path}/mlflow.db",
             *extra],
            cwd=REPO, capture_output=True, text=True, timeout=180,
            env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"})
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((out / "report.json").read_text())
        assert report["overall"]["queries"] == 8 and 0 <= report["overall"]["hit@5"] <= 1
        assert {"category=blood", "seen", "unseen"} & set(report["groups"])
        assert (out / "top10.png").stat().st_size > 1000
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    unknown = run_job("jobs.evaluate", ["--model", "models:/no-such-model/1", "--refdb",
                                        f"{tiny_refs}/references", "--queries",
                                        f"{tiny_refs}/queries"], capsys)
    assert unknown.returncode == 2 and "no-such-model" in unknown.stderr


def test_bad_inputs_fail_before_cluster_work(tiny_refs, tmp_path, capsys):
    def run(*extra: str, in_subprocess: bool = False) -> subprocess.CompletedProcess:
        return run_job("jobs.train_crisp", ["--config", "configs/crisp_tiny.yaml",
                                            *overrides(tiny_refs, str(tmp_path), "bad", 2),
                                            *extra], capsys, in_subprocess)

    unknown = run("optim.learning_rate=0.1", in_subprocess=True)
    assert unknown.returncode == 2 and "unknown config key 'optim.learning_rate'" in unknown.stderr
    missing = run(f"data.refdb={tmp_path}/nothing")
    assert missing.returncode == 2 and "no manifest.json" in missing.stderr
    empty = run("data.val_split=nosuchsplit")
    assert empty.returncode == 2 and "validation set is empty" in empty.stderr
    assert not (tmp_path / "ray").exists()


def test_paths_reach_workers_absolute(tmp_path, monkeypatch):
    from shoematch.config import load_config
    from shoematch.crisp.config import CrispTrainConfig
    from shoematch.training.config import with_absolute_paths

    monkeypatch.chdir(tmp_path)
    config = with_absolute_paths(load_config(CrispTrainConfig, str(REPO / "configs" /
                                                                   "crisp_tiny.yaml")))
    assert config.data.refdb == str(tmp_path / "runs/demo/data/references")
    assert config.ray.storage_path == str(tmp_path / "runs/ray")
    kept = with_absolute_paths(load_config(CrispTrainConfig, None, [
        "data.refdb=s3://bucket/refs", "ray.storage_path=s3://bucket/ray"]))
    assert kept.data.refdb == "s3://bucket/refs" and kept.ray.storage_path == "s3://bucket/ray"


@pytest.mark.slow
def test_crisp_sweep_runs_each_trial_as_a_child_training_run(tiny_refs, tmp_path):
    import mlflow

    grid = "sweep.grid={optim.lr: [0.0001, 0.001]}"
    result = subprocess.run(
        [sys.executable, "-m", "jobs.sweep_crisp", "--config", "configs/crisp_tiny.yaml",
         *overrides(tiny_refs, str(tmp_path), "unused", steps=2), grid, "sweep.run_name=sw"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| trial | optim.lr | val_map_at_100 | model |" in result.stdout
    assert "| sw-000 | 0.0001 |" in result.stdout and "| sw-001 | 0.001 |" in result.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["crisp"], output_format="list")
    parent = [r for r in runs if r.info.run_name == "sw"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")
                == parent[0].info.run_id]
    assert len(parent) == 1 and len(children) == 2
    assert {float(c.data.params["optim.lr"]) for c in children} == {0.0001, 0.001}
    assert all("val_map_at_100" in c.data.metrics for c in children)
    assert (tmp_path / "ray" / "sw").is_dir()  # the Ray Tune experiment
