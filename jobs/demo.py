"""The main job: the whole system on one machine, on the built-in synthetic data (README
command 1).

Stages: bring up local services (S3 store, MLflow server, Ray head + worker nodes) → generate a
synthetic reference db and query set into S3 (a Ray job) → validate and summarise → train CriSp
(tiny config, 2 DDP workers on the worker nodes; MLflow run + registered model) → re-index the
references with the trained encoder → serve the index with Ray Serve → send held-out synthetic
crime-scene prints over HTTP → print hit@K / mAP@K / latency and write an HTML report with each
query, its mask and its top matches → tear down. Every job goes through the Ray Jobs API, as a
user's would. Re-running reuses the data, the finished training run and the index.

    python -m jobs.demo [--out runs/demo] [--steps 40] [--http-queries 24] [--keep-services]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
import re
import time

import httpx
import numpy as np

from jobs.common import run_main
from shoematch.data.dataset import open_dataset
from shoematch.data.summary import format_summary, summarize, validate_dataset
from shoematch.data.synth import SynthSpec
from shoematch.data.synth_build import CONTACT_SHEET, QUERIES_DIR, REFERENCES_DIR, spec_params
from shoematch.errors import DatasetError, SearchIndexError, ShoematchError
from shoematch.evaluation.html_report import ReportMatch, ReportQuery, ReportTruth, render_report
from shoematch.index.layout import read_manifest
from shoematch.ray.cluster import submit_job
from shoematch.retrieval.metrics import evaluate_rankings
from shoematch.storage import open_store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = 8


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo", help="local results and service state")
    parser.add_argument("--models", type=int, default=60)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=40, help="CriSp training steps")
    parser.add_argument("--k", type=int, default=10, help="K of hit@K / mAP@K")
    parser.add_argument("--http-queries", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2, help="Ray worker nodes")
    parser.add_argument("--keep-services", action="store_true",
                        help="leave the services (and the Serve app) running at the end")
    return parser.parse_args(argv)


def stage(number: int, name: str) -> float:
    print(f"\n== [{number}/{STAGES}] {name}", flush=True)
    return time.monotonic()


def existing_matches(data_root: str, spec: SynthSpec) -> bool:
    """True when both datasets exist and were generated with exactly this spec."""
    wanted = json.loads(json.dumps(spec_params(spec)))  # the form a manifest stores
    try:
        return all(open_dataset(posixpath.join(data_root, sub)).manifest.params == wanted
                   for sub in (REFERENCES_DIR, QUERIES_DIR))
    except (DatasetError, ShoematchError):
        return False


class Jobs:
    """Submits `python -m jobs.<module>` through the Ray Jobs API and streams its output."""

    def __init__(self, dashboard_url: str, env: dict[str, str]) -> None:
        from ray.job_submission import JobSubmissionClient

        self.client = JobSubmissionClient(dashboard_url)
        for name in ("ray", "ray.dashboard.modules.dashboard_sdk",  # the SDK sets its own INFO
                     "ray.dashboard.modules.job.sdk"):
            logging.getLogger(name).setLevel(logging.ERROR)  # job output is what matters here
        self.env = env
        self.crashes: list[str] = []  # "module: first line" of each native crash in a job log

    def run(self, module: str, args: list[str], timeout_s: float = 900) -> str:
        from ray.job_submission import JobStatus

        job = submit_job(self.client, " ".join(["python", "-m", module, *args]),
                         {"working_dir": REPO, "env_vars": self.env})
        shown, deadline, view = 0, time.monotonic() + timeout_s, LogView()
        while True:
            status = self.client.get_job_status(job)
            logs = self.client.get_job_logs(job)
            done = status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED)
            end = len(logs) if done else logs.rfind("\n", shown) + 1  # whole lines only
            for line in view.lines(logs[shown:end]):
                print(f"   | {line}", flush=True)
            shown = max(shown, end)
            if done:
                self.crashes += [f"{module}: {crash}" for crash in view.crashes]
                break
            if time.monotonic() > deadline:
                self.client.stop_job(job)
                raise ShoematchError(f"job {module} did not finish within {timeout_s:.0f} s")
            time.sleep(2)
        if status != JobStatus.SUCCEEDED:
            raise ShoematchError(f"job {module} {status.value.lower()}; its log is above")
        return logs


# Ray's and libraries' chatter a user of the demo does not need: job packaging, per-epoch Ray
# Data plans, Ray Train's worker table (its node_rank is by IP: every loopback node is 0; the
# training job prints each rank's real node), warnings and their source lines.
NOISE = re.compile(r"INFO (packaging|dashboard_sdk|worker\.py)|core_worker\.cc|Warning: |"
                   r"streaming_executor|Execution plan of Dataset|Starting execution of Dataset|"
                   r"execution finished in|Registered dataset logger|Progress bars disabled|"
                   r"node_rank=|Started training worker group|Attempting to start training|"
                   r"Requesting resources|Setting up process group|Moving model to device|"
                   r"Wrapping provided model|Reporting training result|Checkpoint successfully|"
                   r"Runtime env is setting up|Downloading artifacts|^\s*warnings\.warn\(|"
                   r"run snapshot was found|This snapshot contains|If you meant to start a brand|"
                   r"Waiting up to \d+ seconds for model version|"
                   r"^(INFO|WARNING) \d{4}-\d\d-\d\d \S+ (controller|proxy|shoematch_\w+) |"
                   r"serve \d+ -- (Connecting to existing|Started Serve)")
# A process's native crash: a failed C++ check, a fatal signal, Python's fatal error. What
# follows from that process is its stack dump (≈ 100 lines of addresses): shown as one line.
NATIVE_CRASH = re.compile(r"Check .{0,200}failed|\*\*\* SIG[A-Z]+ received|\*\*\* Aborted at|"
                          r"Fatal Python error|\*\*\* StackTrace Information \*\*\*")
RAY_PREFIX = re.compile(r"^\(([\w:]+) pid=\d+(, ip=[\d.]+)?\) ?")
COLOURS = re.compile(r"\x1b\[[0-9;]*m")
LOG_RECORD = re.compile(r"^(\d\d:\d\d:\d\d |\d{4}-\d\d-\d\d )")


class LogView:
    """One job's log as the demo shows it: without noise, colours, Ray's `(Actor pid=…)`
    prefixes, a line repeated (Ray forwards a worker's output twice), or the body of a config
    dump (the MLflow run holds it as parameters). A native crash is one line, recorded in
    `crashes`; the crashed process's stack dump is left out (`ray job logs` keeps it)."""

    def __init__(self) -> None:
        self.crashes: list[str] = []
        self.crashed: set[str] = set()  # Ray prefixes of processes that crashed natively
        self.seen: set[str] = set()
        self.in_noise = False  # an indented line after noise belongs to it (a warning's source)
        self.in_config = False  # a dumped config runs until the next log record or Ray line

    def lines(self, text: str) -> list[str]:
        shown = []
        for raw in text.splitlines():
            raw = COLOURS.sub("", raw.rsplit("\r", 1)[-1])  # the last frame of a progress bar
            if self.in_config and not (LOG_RECORD.match(raw) or RAY_PREFIX.match(raw)):
                continue
            source = RAY_PREFIX.match(raw)
            if source and source.group(0) in self.crashed:
                continue
            line = RAY_PREFIX.sub("", raw).rstrip()
            if NATIVE_CRASH.search(line):
                if source:
                    self.crashed.add(source.group(0))
                self.crashes.append(line.strip()[:240])
                shown.append(f"NATIVE CRASH in {source.group(1) if source else 'the job'}: "
                             f"{self.crashes[-1]} (stack dump left out: see `ray job logs`)")
                continue
            self.in_config = line.endswith("config:")
            if self.in_config:
                line += " (in full: the MLflow run's parameters)"
            if NOISE.search(line) or (self.in_noise and line[:1].isspace()):
                self.in_noise = True
                continue
            self.in_noise = False
            if line.strip() and line not in self.seen:
                self.seen.add(line)
                shown.append(line)
        return shown


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cluster.local import bring_up, check, format_status, tear_down

    started = stage(1, "local services: S3 store, MLflow server, Ray head + worker nodes")
    state = bring_up(os.path.join(args.out, "cluster"), workers=args.workers)
    os.environ.update(state.env(with_keys=True))  # this process reads S3 itself
    print(format_status(state, check(state)), flush=True)
    jobs = Jobs(state.dashboard_url, state.env())  # the nodes hold the keys: never sent along
    base = f"s3://{state.bucket}/demo"
    served = False
    try:
        data_root = generate(jobs, args, f"{base}/data")
        model_uri = train(jobs, args, data_root, base, state.mlflow_url)
        index = reindex(jobs, data_root, model_uri, f"{base}/index")
        calibrate(jobs, data_root, index)
        url = serve(jobs, index, args.out)
        served = True
        query_over_http(args, url, data_root)
    finally:
        if not args.keep_services:
            stage(8, "tear down")
            if served:
                jobs.run("jobs.serve_index", ["--shutdown"], timeout_s=120)
            tear_down(state)
        else:
            print(f"services left running: python -m cluster status; stop them with: "
                  f"python -m cluster down --state-dir {os.path.relpath(state.state_dir)}")
            if served:
                print(f"examiner workbench: {url}/")
    print("native crash dumps in the job logs: " + ("none" if not jobs.crashes else
                                                     "; ".join(jobs.crashes)))
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s")
    return 0


def generate(jobs: Jobs, args: argparse.Namespace, data_root: str) -> str:
    stage(2, f"synthetic data → {data_root}")
    spec = SynthSpec(models=args.models, instances=args.instances, queries=args.queries,
                     seed=args.seed)
    if existing_matches(data_root, spec):
        print(f"reusing {data_root} (same generator settings)")
    else:
        jobs.run("jobs.synth", ["--out", data_root, "--models", str(args.models),
                                "--instances", str(args.instances), "--queries",
                                str(args.queries), "--seed", str(args.seed)])
    stage(3, "validate and summarise")
    for sub in (REFERENCES_DIR, QUERIES_DIR):
        dataset = open_dataset(posixpath.join(data_root, sub))
        print(f"{sub}: {validate_dataset(dataset)} records valid")
        print(format_summary(f"{sub} ({dataset.uri})", summarize(dataset)))
    sheet = os.path.join(args.out, CONTACT_SHEET)
    os.makedirs(args.out, exist_ok=True)
    with open(sheet, "wb") as handle:
        handle.write(open_store(data_root).read_bytes(CONTACT_SHEET))
    print(f"contact sheet: {sheet}")
    return data_root


def train(jobs: Jobs, args: argparse.Namespace, data_root: str, base: str,
          mlflow_url: str) -> str:
    stage(4, f"train CriSp (configs/crisp_tiny.yaml, {args.steps} steps, 2 DDP workers)")
    logs = jobs.run("jobs.train_crisp", [
        "--config", "configs/crisp_tiny.yaml",
        f"data.refdb={data_root}/{REFERENCES_DIR}", f"data.val_queries={data_root}/{QUERIES_DIR}",
        f"ray.storage_path={base}/ray", "ray.run_name=demo", "ray.cpus_per_worker=1.5",
        f"mlflow.tracking_uri={mlflow_url}", f"optim.steps={args.steps}",
        f"schedule.val_k={args.k}"], timeout_s=1200)
    found = re.findall(r"^model: (\S+)$", logs, flags=re.MULTILINE)
    if not found:
        raise ShoematchError("training finished without reporting its model URI")
    print(f"registered model: {found[-1]} (MLflow {mlflow_url})")
    return found[-1]


def reindex(jobs: Jobs, data_root: str, model_uri: str, index: str) -> str:
    stage(5, f"re-index the references → {index} (CriSp cells + the dense cascade's maps)")
    try:
        current = read_manifest(index)
        if current.model_uri == model_uri and current.dense and current.dense.scan:
            print(f"reusing index version {current.version} (built with {model_uri})")
            return index
    except SearchIndexError:
        pass
    jobs.run("jobs.reindex", ["--model", model_uri, "--refdb",
                              f"{data_root}/{REFERENCES_DIR}", "--out", index, "--shards", "2",
                              "--dense"])
    manifest = read_manifest(index)
    assert manifest.dense is not None and manifest.dense.scan is not None
    print(f"index version {manifest.version}: bytes per reference: dense maps "
          f"{manifest.dense.bytes_per_reference:,}, scan maps "
          f"{manifest.dense.scan.bytes_per_reference:,}")
    return index


def calibrate(jobs: Jobs, data_root: str, index: str) -> None:
    """Fit the index version's P(true model in the top 10) on the held-out val queries (the
    HTTP queries below are the test split)."""
    print("calibrating the index version on the val queries (jobs.calibrate)", flush=True)
    try:
        jobs.run("jobs.calibrate", ["--index", index, "--queries", f"{data_root}/{QUERIES_DIR}",
                                    "--split", "val", "--folds", "3"])
    except ShoematchError as exc:  # the search or the store failed: serve uncalibrated
        print(f"calibration failed ({exc}); /v1/search answers p_top10 = null")


def serve(jobs: Jobs, index: str, out: str) -> str:
    from cluster.processes import free_port

    port = free_port()
    stage(6, f"serve the index with Ray Serve on 127.0.0.1:{port}")
    cases = f"sqlite:///{os.path.abspath(os.path.join(out, 'workbench', 'cases.sqlite'))}"
    jobs.run("jobs.serve_index", ["--index", index, "--slots", "2", "--port", str(port),
                                  "--set", f"db_url={cases}"], timeout_s=300)
    return f"http://127.0.0.1:{port}"


def query_over_http(args: argparse.Namespace, url: str, data_root: str) -> None:
    stage(7, f"send held-out crime-scene prints to {url}/v1/search")
    queries = [r for r in open_dataset(f"{data_root}/{QUERIES_DIR}").iter_records()
               if r["split"] == "test"][: args.http_queries]
    refs = open_dataset(f"{data_root}/{REFERENCES_DIR}")
    pictures, model_pictures = {}, {}
    for r in refs.iter_records(["instance_id", "model_id", "depth", "print"]):
        pictures[r["instance_id"]] = r["depth"] or r["print"]
        model_pictures.setdefault(r["model_id"], pictures[r["instance_id"]])
    report, rankings, latencies = [], [], []
    cell_rankings, cell_latencies = [], []
    with httpx.Client(timeout=120) as client:
        def search(record: dict, matcher: str = "auto") -> tuple[dict, float]:
            start = time.perf_counter()
            response = client.post(f"{url}/v1/search", data={"k": "100", "matcher": matcher},
                                   files={"print": record["print"], "mask": record["mask"]})
            if response.status_code != 200:
                raise ShoematchError(f"search for {record['query_id']} failed: "
                                     f"{response.status_code} {response.text[:300]}")
            return response.json(), (time.perf_counter() - start) * 1e3

        search(queries[0], "cells")  # loads the encoder and warms every replica
        body, cold = search(queries[0])
        print(f"cold start (first query, untimed below): {cold / 1e3:.1f} s; the served "
              f"default path: {body['matcher']}, stages " + ", ".join(
                  f"{s['stage']} over {s['references']}" for s in body["stages"]), flush=True)
        confident: list[bool | None] = []
        reasons: set[str] = set()
        for record in queries:
            cells, latency = search(record, "cells")
            cell_rankings.append([r["model_id"] for r in cells["results"]])
            cell_latencies.append(latency)
            body, latency = search(record)
            results = body["results"]
            confident.append(body["confident"])
            reasons.add(body.get("confidence_reason") or "")
            rankings.append([r["model_id"] for r in results])
            latencies.append(latency)
            targets = list(record["targets"])
            shown = [ReportMatch(r["model_id"], r["score"], pictures[r["instance_id"]],
                                 r["model_id"] in targets) for r in results[:5]]
            report.append(ReportQuery(
                record["query_id"], record["category"], record["print"], record["mask"],
                targets, latency, shown,
                None if any(m.correct for m in shown) else truth(targets, rankings[-1],
                                                                 model_pictures)))
    print("\nCriSp cells only (matcher=cells):")
    print_table(summary_rows(queries, cell_rankings, cell_latencies, args.k))
    summary = summary_rows(queries, rankings, latencies, args.k)
    print("\nthe served default (dense cascade: scan every reference, exact MCNCC on the best):")
    print_table(summary)
    print_confidence(queries, rankings, confident, reasons - {""})
    path = os.path.join(args.out, "report.html")
    with open(path, "w") as handle:
        handle.write(render_report("shoematch demo: synthetic crime-scene prints over HTTP",
                                   summary, report))
    print(f"HTML report: {os.path.abspath(path)}")


def truth(targets: list[str], ranking: list[str], model_pictures: dict[str, bytes]
          ) -> ReportTruth:
    """The best-ranked correct model (or the first target when none was returned)."""
    rank = next((i for i, model in enumerate(ranking, start=1) if model in targets), None)
    model = ranking[rank - 1] if rank else targets[0]
    return ReportTruth(model, rank, model_pictures[model])


def summary_rows(queries: list[dict], rankings: list[list[str]], latencies: list[float],
                 k: int) -> list[tuple[str, dict]]:
    groups: dict[str, list[int]] = {"all": list(range(len(queries)))}
    for i, record in enumerate(queries):
        groups.setdefault(record["category"], []).append(i)
    rows = []
    for name, members in groups.items():
        metrics = evaluate_rankings([rankings[i] for i in members],
                                    [set(queries[i]["targets"]) for i in members], k)
        ms = np.asarray([latencies[i] for i in members])
        rows.append((name, {"queries": len(members), f"hit@{k}": f"{metrics[f'hit@{k}']:.3f}",
                            f"mAP@{k}": f"{metrics[f'mAP@{k}']:.3f}",
                            "p50 ms": f"{np.percentile(ms, 50):.0f}",
                            "max ms": f"{ms.max():.0f}"}))
    return rows


def print_confidence(queries: list[dict], rankings: list[list[str]],
                     confident: list[bool | None], reasons: set[str]) -> None:
    """Whether the served p_top10 is calibrated (else the server's reason), and how its
    "confident" flag split the held-out queries, with hit@10 on each side."""
    if any(flag is None for flag in confident):
        print(f"confidence: UNCALIBRATED, no probability served (p_top10 = null): "
              f"{'; '.join(sorted(reasons)) or 'no reason given'}")
        return
    sides = {True: [], False: []}
    for record, ranking, flag in zip(queries, rankings, confident, strict=True):
        sides[bool(flag)].append(bool(set(record["targets"]) & set(ranking[:10])))
    print("confidence (calibrated p_top10 ≥ threshold): " + "; ".join(
        f"{'confident' if flag else 'no confident match'} {len(hits)} queries"
        + (f", hit@10 {np.mean(hits):.3f}" if hits else "") for flag, hits in sides.items()))


def print_table(rows: list[tuple[str, dict]]) -> None:
    columns = list(rows[0][1])
    print(f"\n{'category':<12}" + "".join(f"{c:>10}" for c in columns))
    for name, values in rows:
        print(f"{name:<12}" + "".join(f"{values[c]!s:>10}" for c in columns))


if __name__ == "__main__":
    run_main(main)
