"""The demo shows a job's log readably: Ray's and the libraries' chatter, colours, actor
prefixes, doubled lines and a dumped config body are gone; the job's own lines stay."""

from __future__ import annotations

from jobs.demo import LogView

RAW = """\
2026-12-02 23:19:22,757\tINFO job_manager.py:581 -- Runtime env is setting up.
23:20:05 I shoematch.jobs | training demo: 2 workers, 40 steps; config:
data:
  refdb: s3://shoematch/demo/data/references
  label: pattern
\x1b[36m(TrainController pid=679)\x1b[0m Requesting resources: {'CPU': 1.5} * 2
\x1b[36m(RayTrainWorker pid=758)\x1b[0m - (ip=1.2.3.4, pid=9) world_rank=0, node_rank=0
\x1b[36m(RayTrainWorker pid=758)\x1b[0m DDP placement: rank 0 on node 53278ab892b3 worker_1
\x1b[36m(DatasetManager pid=962)\x1b[0m /x/y.py:12: DeprecationWarning: old
\x1b[36m(DatasetManager pid=962)\x1b[0m   self.exclude_resources = exclude_resources
\x1b[36m(RayTrainWorker pid=758)\x1b[0m step 5/40 loss 2.4794 1.6 img/s
\x1b[36m(RayTrainWorker pid=758)\x1b[0m step 5/40 loss 2.4794 1.6 img/s
Downloading artifacts:  10%|#  | 1/10\rDownloading artifacts: 100%|###| 10/10
model: models:/crisp-encoder/1
INFO 2026-12-02 23:51:42,263 controller 11267 -- Deploying new version of Deployment(name='A')
INFO 2026-12-02 23:51:42,278 proxy 192.0.2.2 -- Got updated endpoints: {}.
INFO 2026-12-02 23:52:07,858 serve 10639 -- Application 'shoematch' is ready at http://x:1/.
INFO 2026-12-02 23:52:08,020 shoematch_Gateway upkgvmpm 1b1c -- GET /v1/health 200 21.7ms
"""


def test_job_log_keeps_one_line_per_event():
    view = LogView()
    first, rest = RAW[:RAW.index("\x1b[36m(RayTrainWorker pid=758)\x1b[0m DDP")], \
        RAW[RAW.index("\x1b[36m(RayTrainWorker pid=758)\x1b[0m DDP"):]
    assert view.lines(first) + view.lines(rest) == [
        "23:20:05 I shoematch.jobs | training demo: 2 workers, 40 steps; config: "
        "(in full: the MLflow run's parameters)",
        "DDP placement: rank 0 on node 53278ab892b3 worker_1",
        "step 5/40 loss 2.4794 1.6 img/s",
        "model: models:/crisp-encoder/1",
        "INFO 2026-12-02 23:52:07,858 serve 10639 -- Application 'shoematch' is ready at "
        "http://x:1/.",
    ]


CRASH = """\
23:21:10 I shoematch.ray.crisp | training classes: 24 (pattern_id); 1 epoch(s) per pass
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m [2026-12-02 23:21:14,093 C 2211 2290] \
mutex.cc:2165: Check w == nullptr failed: Lock: Mutex corrupt: both reader and writer lock held
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m *** StackTrace Information ***
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m /x/ray/_raylet.so(+0x1473c8a) [0x7f3b0c8a] \
ray::operator<<()
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m *** SIGABRT received at time=1733181674 on cpu 1 ***
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m PC: @     0x7f3b2e9c  (unknown)  pthread_kill
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m     @     0x7f3b2e42       1184  (unknown)
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m Fatal Python error: Aborted
\x1b[36m(HashShuffleReduce pid=2211)\x1b[0m Extension modules: numpy.core._multiarray_umath
\x1b[36m(RayTrainWorker pid=758)\x1b[0m step 5/40 loss 2.4794 1.6 img/s
"""


def test_a_native_crash_dump_is_detected_and_shown_as_one_line():
    """The issue's finding: a Ray Data worker's SIGABRT put a ~100-line native stack into the
    training log. The view names the crash once, keeps the job's lines, and records it (the
    demo ends with `native crash dumps in the job logs: …`)."""
    view = LogView()
    shown = view.lines(CRASH)
    assert shown == [
        "23:21:10 I shoematch.ray.crisp | training classes: 24 (pattern_id); 1 epoch(s) per pass",
        "NATIVE CRASH in HashShuffleReduce: [2026-12-02 23:21:14,093 C 2211 2290] mutex.cc:2165: "
        "Check w == nullptr failed: Lock: Mutex corrupt: both reader and writer lock held "
        "(stack dump left out: see `ray job logs`)",
        "step 5/40 loss 2.4794 1.6 img/s",
    ]
    assert len(view.crashes) == 1 and "Mutex corrupt" in view.crashes[0]
    clean = LogView()
    clean.lines(RAW)
    assert clean.crashes == []
