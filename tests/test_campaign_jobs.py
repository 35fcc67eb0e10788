"""Integration: tiny campaigns through `naseval launch` on this machine's processes and on a real
single-node Slurm, each collected by `dvc repro` and compared with a serial `dvc repro`."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import slurm_cluster
import yaml
from conftest import find_ptb
from tiny_repo import environment, run, tiny_repo

pytestmark = pytest.mark.integration

NASEVAL = (sys.executable, "-m", "naseval.cli")
# One evaluator ranks the space: the rank stage runs as a job too, without 22 of them (the tiny profile's
# whole table is the pipeline test's).
RANKED = {"rank": {"evaluators": ["params"]}}
STAGES = 19  # prepare, oracle, 2 ground-truth seeds, 4 searches, extracts and trains, 2 ranks, analyze


@pytest.fixture(scope="module")
def ptb() -> Path:
    path = find_ptb()
    os.environ.setdefault("NASEVAL_PTB_DIR", str(path))  # every repo below, and their jobs, read it
    return path


@pytest.fixture(scope="module")
def serial_summary(ptb, tmp_path_factory) -> bytes:
    repo = tiny_repo(tmp_path_factory.mktemp("serial"), RANKED)
    run(repo, "dvc", "repro")
    return (repo / "metrics" / "summary.json").read_bytes()


def campaign_repo(path: Path, launch_yaml: str) -> Path:
    repo = tiny_repo(path, RANKED)
    (repo / "launch.yaml").write_text(launch_yaml)
    run(repo, "git", "add", "launch.yaml")
    run(repo, "git", "commit", "-qm", "launch settings")
    return repo


def ledger(repo: Path) -> dict:
    path = repo / ".naseval" / "campaign" / "ledger.json"
    return json.loads(path.read_text())["jobs"] if path.is_file() else {}


def outcome(repo: Path, key: str) -> dict:
    return json.loads((repo / ".naseval" / "campaign" / "jobs" / key / "outcome.json").read_text())


def without_timings(value):
    """A summary without its wall times (the evaluators' cost in seconds), which no two runs share."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if key != "seconds"}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def collect(repo: Path, serial_summary: bytes) -> None:
    """`dvc repro` restores every stage from the run-cache, runs none, and equals the serial run,
    timings aside."""
    collected = run(repo, "dvc", "repro").stdout
    assert "Running stage" not in collected and collected.count("is cached - skipping run") == STAGES
    assert "Data and pipelines are up to date." in run(repo, "dvc", "status").stdout
    summary = json.loads((repo / "metrics" / "summary.json").read_text())
    assert "seconds" in summary["evaluators"][0]["cost"]  # what is set aside
    assert without_timings(summary) == without_timings(json.loads(serial_summary))


def most_at_once(repo: Path) -> int:
    """The most jobs that ran at the same time, from the ledger's submissions and the outcomes."""
    def seconds(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    spans = [(seconds(entry["attempts"][-1]["submitted"]), seconds(outcome(repo, key)["ended"]))
             for key, entry in ledger(repo).items()]
    return max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_local_campaign_two_jobs_at_a_time_outlives_a_killed_driver_and_equals_a_serial_run(
        tmp_path, serial_summary):
    repo = campaign_repo(tmp_path, "poll_seconds: 0.5\nlocal:\n  jobs: 2\n")
    driver = subprocess.Popen([*NASEVAL, "launch", "--executor", "local", "--wait"], cwd=repo, env=environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(ledger(repo)) >= 3, 120, "the second wave's submissions")
    driver.send_signal(signal.SIGKILL)  # its jobs run on; the ledger knows them
    driver.wait()
    status = run(repo, *NASEVAL, "status", "--executor", "local").stdout
    assert sum(" active " in line or " done " in line for line in status.splitlines()) >= 3
    run(repo, *NASEVAL, "launch", "--executor", "local", "--wait")
    jobs = ledger(repo)
    assert len(jobs) == STAGES and all(len(entry["attempts"]) == 1 for entry in jobs.values())  # none twice
    assert all(outcome(repo, key)["succeeded"] for key in jobs)
    assert most_at_once(repo) == 2
    collect(repo, serial_summary)


@pytest.fixture
def slurm(tmp_path_factory):
    reason = slurm_cluster.available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm tests: {reason}")
        pytest.skip(reason)
    cluster = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.mark.slurm
def test_a_slurm_campaign_submits_nothing_twice_collects_and_resumes_a_cancelled_job(
        tmp_path, serial_summary, slurm):
    repo = campaign_repo(tmp_path, "poll_seconds: 0.5\nslurm:\n  cpus_per_task: 1\n  time: \"00:20:00\"\n")
    first = run(repo, *NASEVAL, "launch", env=slurm).stderr
    second = run(repo, *NASEVAL, "launch", env=slurm).stderr  # the next wave, if prepare is done by now
    assert "submitted 1: prepare" in first and "prepare" not in second
    assert all(len(entry["attempts"]) == 1 for entry in ledger(repo).values())
    run(repo, *NASEVAL, "launch", "--wait", env=slurm)
    jobs = ledger(repo)
    assert len(jobs) == STAGES and all(len(entry["attempts"]) == 1 for entry in jobs.values())
    collect(repo, serial_summary)

    # A longer ground truth, one cell per batch, so that a job can be cancelled between cells.
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("cells_per_batch: 16", "cells_per_batch: 1")
                                      .replace("epochs: 1\n", "epochs: 8\n"))
    run(repo, "git", "commit", "-qam", "longer ground truth")
    driver = subprocess.Popen([*NASEVAL, "launch", "--wait", "ground_truth@0-0"], cwd=repo,
                              env=environment(slurm), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    resume = repo / ".naseval" / "campaign" / "resume"
    wait_for(lambda: any(resume.glob("*/group_0/cell_0.json")), 180, "the ground truth's first cell")
    key = next(resume.glob("*/group_0/cell_0.json")).parts[-3]
    cancelled = ledger(repo)[key]["attempts"][0]["job_id"]
    run(repo, "scancel", cancelled.removeprefix("slurm:"), env=slurm)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    attempts = ledger(repo)[key]["attempts"]
    assert [a["job_id"] for a in attempts][0] == cancelled and len(attempts) == 2
    log = (repo / ".naseval" / "campaign" / "jobs" / key / f"slurm-{attempts[1]['job_id'][6:]}.log").read_text()
    assert "resumed: " in log and "of 4 cells were already trained" in log
    restored = run(repo, "dvc", "repro", "ground_truth@0-0").stdout
    assert "Stage 'ground_truth@0-0' is cached" in restored and "Running stage" not in restored


@pytest.mark.slurm
def test_a_preempted_ground_truth_job_saves_within_its_epoch_and_resumes_without_spending_a_retry(
        tmp_path, ptb, slurm):
    # retries: 0, so a warning counted as a failure would leave the stage failed
    repo = campaign_repo(tmp_path, "poll_seconds: 0.5\nretries: 0\nslurm:\n  cpus_per_task: 1\n  time: \"00:20:00\"\n")
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("epochs: 1\n", "epochs: 30\n"))
    run(repo, "git", "commit", "-qam", "a ground truth long enough to be preempted")
    run(repo, "dvc", "repro", "prepare")
    driver = subprocess.Popen([*NASEVAL, "launch", "--wait", "ground_truth@0-0"], cwd=repo,
                              env=environment(slurm), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    jobs = repo / ".naseval" / "campaign" / "jobs"

    def training() -> bool:  # the batch of cells is past its first epoch
        return any("train epoch 2:" in log.read_text() for log in jobs.glob("*/slurm-*.log"))

    wait_for(training, 180, "the ground truth's second epoch")
    (key, entry), = ledger(repo).items()
    warned = entry["attempts"][0]["job_id"]
    run(repo, "scancel", "--signal=USR1", "--batch", warned.removeprefix("slurm:"), env=slurm)  # as --signal=B:USR1
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    attempts = ledger(repo)[key]["attempts"]
    assert attempts[0]["job_id"] == warned and attempts[0]["ended"] == "interrupted"
    assert attempts[1].get("ended") in (None, "succeeded")  # None: done by its outcome while Slurm still listed it
    first = (jobs / key / f"slurm-{warned.removeprefix('slurm:')}.log").read_text()
    # within an epoch, unless the warning came during its last step or its validation
    assert "SIGUSR1: forwarded to the stage" in first
    assert re.search(r"stopped by SIGUSR1: checkpoint saved at (epoch \d+, row \d+|the end of epoch \d+)", first)
    second = (jobs / key / f"slurm-{attempts[1]['job_id'].removeprefix('slurm:')}.log").read_text()
    assert re.search(r"resumed from \S+ after epoch \d+", second)
    assert outcome(repo, key)["succeeded"] and not (repo / ".naseval" / "campaign" / "resume" / key).exists()
    status = run(repo, *NASEVAL, "status", "ground_truth@0-0", env=slurm).stdout
    assert "ground_truth@0-0" in status and "done     attempts 2 (1 interrupted, 0 failed)" in status
    restored = run(repo, "dvc", "repro", "ground_truth@0-0").stdout
    assert "Stage 'ground_truth@0-0' is cached" in restored and "Running stage" not in restored
    cells = repo / "runs" / "ground_truth" / "seed_0" / "group_0" / "cells.json"
    resumed = cells.read_bytes()
    run(repo, "dvc", "repro", "--force", "--single-item", "ground_truth@0-0")  # the same, never stopped
    assert cells.read_bytes() == resumed


def stage_workers(stage: str) -> list[int]:
    """The pool workers of a running `python -m stages.<stage>` on this machine (its job's clone)."""
    workers = []
    for proc in Path("/proc").iterdir():
        try:
            if b"spawn_main" not in (proc / "cmdline").read_bytes():
                continue
            parent = re.search(r"^PPid:\s+(\d+)", (proc / "status").read_text(), re.M).group(1)
            if f"stages.{stage}".encode() in Path(f"/proc/{parent}/cmdline").read_bytes():
                workers.append(int(proc.name))
        except (OSError, AttributeError):  # not a process, or one that ended meanwhile
            continue
    return workers


@pytest.mark.slurm
def test_a_ground_truth_job_whose_worker_is_killed_fails_spends_a_retry_and_resumes(tmp_path, ptb, slurm):
    """A worker killed as the out-of-memory killer would: before, the job waited for its batch until
    its time limit, the driver counted the TIMEOUT as an interruption and resubmitted it without end.
    Now the stage ends at once saying why, the job fails (a retry spent), and the retry succeeds."""
    # checkpoint_minutes 0: every epoch, so that the worker killed has a checkpoint to resume from
    repo = campaign_repo(tmp_path, "poll_seconds: 0.5\nretries: 1\ncheckpoint_minutes: 0\n"
                                   "slurm:\n  cpus_per_task: 1\n  time: \"00:20:00\"\n")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = 10  # long enough to be killed mid-batch
    params["ground_truth"] |= {"cells_per_batch": 1, "workers": 2}  # 4 batches, 2 at a time
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(repo, "git", "commit", "-qam", "a ground truth with two workers")
    run(repo, "dvc", "repro", "prepare")
    driver = subprocess.Popen([*NASEVAL, "launch", "--wait", "ground_truth@0-0"], cwd=repo,
                              env=environment(slurm), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    resume = repo / ".naseval" / "campaign" / "resume"

    def checkpointed() -> bool:
        assert driver.poll() is None, driver.communicate()[0]
        return any(resume.glob("*/group_0/cells_*.pt")) and bool(stage_workers("ground_truth"))

    wait_for(checkpointed, 180, "a batch's first checkpoint")
    os.kill(stage_workers("ground_truth")[0], signal.SIGKILL)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    (key, entry), = ledger(repo).items()
    attempts = entry["attempts"]
    assert [a.get("ended") for a in attempts][0] == "failed" and len(attempts) == 2
    jobs = repo / ".naseval" / "campaign" / "jobs" / key
    first = (jobs / f"slurm-{attempts[0]['job_id'].removeprefix('slurm:')}.log").read_text()
    assert "was killed by SIGKILL, most often the kernel's out-of-memory killer" in first
    assert outcome(repo, key)["succeeded"]  # the retry (which resumes: test_ground_truth.py checks how)
    status = run(repo, *NASEVAL, "status", "ground_truth@0-0", env=slurm).stdout
    assert "done     attempts 2 (0 interrupted, 1 failed)" in status
