"""Campaigns without a cluster: wave planning, stage keys, the ledger, executors' settings, and
checkpoints on shared storage."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from tiny_repo import run, tiny_repo

from naseval.campaign import driver, executors
from naseval.campaign.config import (
    LaunchConfig,
    LocalConfig,
    Resources,
    ResourcesByKind,
    SlurmConfig,
    read_launch_config,
)
from naseval.campaign.driver import Launch
from naseval.campaign.executors import (
    Executor,
    JobSpec,
    LocalExecutor,
    SlurmError,
    SlurmExecutor,
    make_executor,
    visible_device,
)
from naseval.campaign.ledger import Campaign, classify_end
from naseval.campaign.pipeline import Pipeline, Stage, read_pipeline
from naseval.campaign.plan import JobFacts, State, plan
from naseval.core.errors import NasevalError
from naseval.core.runtime import RESUME, SHARED_RESUME_ENV, atomic_directory

# prepare -> ground_truth, search -> extract -> analyze (reads all)
STAGES = {"prepare": (), "ground_truth@0": ("prepare",), "search@a-0": ("prepare",),
          "extract@a-0": ("search@a-0",), "analyze": ("ground_truth@0", "extract@a-0")}


def pipeline(stale=tuple(STAGES)) -> Pipeline:
    return Pipeline({name: Stage(name, needs, f"key-{name}") for name, needs in STAGES.items()}, frozenset(stale))


def test_a_fresh_pipeline_starts_with_its_first_wave():
    current = plan(pipeline(), [], {}, retries=2)
    assert current.having(State.READY) == ["prepare"]
    assert current.having(State.WAITING) == ["ground_truth@0", "search@a-0", "extract@a-0", "analyze"]
    assert not current.finished


def test_stages_up_to_date_in_the_workspace_are_done_and_free_the_next_wave():
    current = plan(pipeline(stale=("search@a-0", "extract@a-0", "analyze")), [], {}, retries=2)
    assert current.having(State.DONE) == ["prepare", "ground_truth@0"]
    assert current.having(State.READY) == ["search@a-0"]


def test_a_succeeded_job_is_done_an_active_one_is_not_submitted_again():
    done = {"key-prepare": JobFacts(succeeded=True),
            "key-search@a-0": JobFacts(active=True)}
    current = plan(pipeline(), [], done, retries=2)
    assert current.states == {"prepare": State.DONE, "ground_truth@0": State.READY, "search@a-0": State.ACTIVE,
                              "extract@a-0": State.WAITING, "analyze": State.WAITING}


def test_a_job_that_failed_is_retried_then_fails_and_blocks_what_needs_it():
    prepared = {"key-prepare": JobFacts(succeeded=True)}
    for failures, state in [(1, State.READY), (3, State.READY), (4, State.FAILED)]:
        current = plan(pipeline(), [], {**prepared, "key-search@a-0": JobFacts(failures=failures)}, retries=3)
        assert current.states["search@a-0"] == state
    assert current.states["extract@a-0"] == State.BLOCKED and current.states["analyze"] == State.BLOCKED
    assert current.states["ground_truth@0"] == State.READY and not current.finished
    for interruptions, state in [(5, State.READY), (6, State.FAILED)]:  # a job that never reaches a checkpoint
        current = plan(pipeline(), [], {**prepared, "key-search@a-0": JobFacts(interruptions=interruptions)},
                       retries=0, interruptions=5)
        assert current.states["search@a-0"] == state


def test_targets_limit_the_campaign_to_what_they_need():
    current = plan(pipeline(), ["extract@a-0"], {}, retries=0)
    assert list(current.states) == ["prepare", "search@a-0", "extract@a-0"]
    with pytest.raises(NasevalError, match="unknown stage 'train@a-0'"):
        plan(pipeline(), ["train@a-0"], {}, retries=0)


class FakeExecutor(Executor):
    name = "fake"

    def __init__(self, slots: int = 100, end_states: dict | None = None):
        self.slots, self.submitted, self.running, self.queue = slots, [], set(), {}
        self.end_states = end_states or {}
        self.refuse_after: int | None = None  # sbatch fails from this submission on (a per-user job limit)

    def submit(self, job: JobSpec, device: str | None) -> str:
        if self.refuse_after is not None and len(self.submitted) >= self.refuse_after:
            raise SlurmError("sbatch: error: QOSMaxSubmitJobPerUserLimit")
        job_id = f"fake:{len(self.submitted)}"
        self.submitted.append(job.stage)
        self.running.add(job_id)
        return job_id

    def alive(self, job_ids):
        return self.running & set(job_ids)

    def cancel(self, job_id):
        self.running.discard(job_id)

    def placements(self, stages, busy):
        return [(stage, None) for stage in stages[:self.slots - len(busy)]]

    def queued_as(self, job):
        return self.queue.get(job.key)

    def end_state(self, job_id):
        return self.end_states.get(job_id)


def launch_with(tmp_path: Path, executor: Executor, retries: int = 1) -> Launch:
    config = LaunchConfig(campaign_dir="campaign", remote="shared", retries=retries)  # no DVC cache to look up
    return Launch(tmp_path, [], config, executor)


def test_the_ledger_keeps_a_second_launch_from_submitting_twice(tmp_path):
    executor = FakeExecutor()
    launch_with(tmp_path, executor).step(pipeline(), "abc", dry_run=False)
    again = launch_with(tmp_path, FakeExecutor())  # a new driver: it knows only the ledger
    again.executor.running = executor.running
    current, submitted = again.step(pipeline(), "abc", dry_run=False)
    assert executor.submitted == ["prepare"] and submitted == [] and current.states["prepare"] == State.ACTIVE


def test_waves_follow_outcomes_and_a_lost_job_is_resubmitted_until_its_retries_are_spent(tmp_path):
    executor = FakeExecutor(slots=1)
    launch = launch_with(tmp_path, executor, retries=1)
    launch.step(pipeline(), "abc", dry_run=False)
    executor.running.clear()
    launch.campaign.write_outcome("key-prepare", {"succeeded": True})
    current, submitted = launch.step(pipeline(), "abc", dry_run=False)
    assert submitted == ["ground_truth@0"]  # one slot: search@a-0 waits its turn
    assert current.states["search@a-0"] == State.READY
    for attempt in (2, 3):  # ground truth's job vanishes without an outcome or accounting: a failure
        executor.running.clear()
        current, submitted = launch.step(pipeline(), "abc", dry_run=False)
        assert submitted == (["ground_truth@0"] if attempt == 2 else ["search@a-0"])
    assert current.states["ground_truth@0"] == State.FAILED
    with launch.campaign.ledger() as entries:
        assert [len(entries[f"key-{name}"]["attempts"]) for name in ("prepare", "ground_truth@0")] == [1, 2]


def test_interrupted_jobs_are_resubmitted_without_spending_a_retry_and_a_failure_spends_one(tmp_path):
    ends = {"fake:1": "TIMEOUT", "fake:2": "PREEMPTED", "fake:4": "CANCELLED by 1000"}
    executor = FakeExecutor(end_states=ends)
    launch = Launch(tmp_path, ["ground_truth@0"], LaunchConfig(campaign_dir="campaign", remote="shared", retries=0),
                    executor)
    state = {}
    for attempt in range(5):  # 0: prepare; then ground truth's: timed out, preempted, warned, cancelled
        current, _ = launch.step(pipeline(), "abc", dry_run=False)
        state[attempt] = current.states["ground_truth@0"]
        executor.running.clear()
        if attempt == 0:
            launch.campaign.write_outcome("key-prepare", {"job_id": "fake:0", "succeeded": True})
        if attempt == 3:  # no accounting says why, but the job itself: warned, saved and stopped
            launch.campaign.write_outcome("key-ground_truth@0", {"job_id": "fake:3", "succeeded": False,
                                                                  "stopped_by": "SIGUSR1"})
    current, _ = launch.step(pipeline(), "abc", dry_run=False)
    with launch.campaign.ledger() as entries:
        ended = [attempt["ended"] for attempt in entries["key-ground_truth@0"]["attempts"]]
    assert ended == ["interrupted", "interrupted", "interrupted", "failed"]
    assert [state[a] for a in range(1, 5)] == [State.ACTIVE] * 4 and current.states["ground_truth@0"] == State.FAILED


def test_a_stage_that_reported_a_dead_worker_failed_whatever_else_ended_its_job():
    """An out-of-memory batch would die again: as an interruption it would be resubmitted without end."""
    attempt = {"job_id": "slurm:7"}
    died = {"job_id": "slurm:7", "succeeded": False, "stopped_by": None,
            "stage_error": {"error": "WorkerDied", "message": "the worker training cells 0-15 was killed by SIGKILL"}}
    assert classify_end(attempt, died, lambda: "TIMEOUT") == "failed"
    assert classify_end(attempt, died | {"stopped_by": "SIGUSR1"}, lambda: None) == "failed"
    warned = died | {"stopped_by": "SIGUSR1", "stage_error": {"error": "Preempted", "message": "stopped by SIGUSR1"}}
    assert classify_end(attempt, warned, lambda: None) == "interrupted"
    assert classify_end(attempt, died | {"job_id": "slurm:6"}, lambda: "TIMEOUT") == "interrupted"  # another job's


def test_a_failing_sbatch_loses_none_of_the_submissions_before_it(tmp_path):
    executor = FakeExecutor()
    executor.refuse_after = 1  # the second submission hits a job limit
    ready_two = pipeline(stale=("ground_truth@0", "search@a-0", "extract@a-0", "analyze"))
    with pytest.raises(SlurmError, match="QOSMaxSubmitJobPerUserLimit"):
        launch_with(tmp_path, executor).step(ready_two, "abc", dry_run=False)
    again = launch_with(tmp_path, FakeExecutor())  # a new driver, later: it knows only the ledger
    again.executor.running = executor.running
    current, submitted = again.step(ready_two, "abc", dry_run=False)
    assert executor.submitted == ["ground_truth@0"] and submitted == ["search@a-0"]
    assert current.states["ground_truth@0"] == State.ACTIVE


def test_waiting_outlasts_failed_looks_at_slurm(tmp_path, monkeypatch):
    class Flaky(FakeExecutor):
        """Its first two looks fail; every job it runs succeeds at once."""

        looks = 0

        def observe(self):
            self.looks += 1
            if self.looks <= 2:
                raise SlurmError("squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation")

        def submit(self, job, device):
            job_id = super().submit(job, device)
            self.running.discard(job_id)
            Campaign(job.campaign).write_outcome(job.key, {"job_id": job_id, "succeeded": True})
            return job_id

    monkeypatch.setattr(driver, "read_pipeline", lambda workspace: pipeline())
    monkeypatch.setattr(driver, "committed_head", lambda workspace: "abc")
    monkeypatch.setattr(driver, "check_params_here", lambda workspace: None)
    config = LaunchConfig(campaign_dir="campaign", remote="shared", poll_seconds=0.01)
    final = Launch(tmp_path, [], config, Flaky()).run(wait=True)
    assert final.finished and set(final.states.values()) == {State.DONE}
    monkeypatch.setattr(driver, "MAX_FAILED_LOOKS", 1)
    with pytest.raises(SlurmError, match="Socket timed out"):
        Launch(tmp_path / "again", [], config, Flaky()).run(wait=True)


def test_a_slurm_command_that_fails_is_retried_with_growing_waits_and_squeue_runs_once_per_look(monkeypatch):
    calls, waits = [], []
    answers = iter([(1, "", "slurm_load_jobs error: Socket timed out"), (1, "", "timed out"),
                    (0, "12|RUNNING|naseval-k1\n13|COMPLETED|naseval-k2\n", "")])

    def fake_run(command, **kwargs):
        calls.append(command[0])
        returncode, stdout, stderr = next(answers)
        return subprocess.CompletedProcess(command, returncode, stdout, stderr)

    monkeypatch.setattr(executors.subprocess, "run", fake_run)
    monkeypatch.setattr(executors.time, "sleep", waits.append)
    executor = SlurmExecutor(LaunchConfig())
    executor.observe()
    assert executor.alive(["slurm:12", "slurm:13", "slurm:14"]) == {"slurm:12"}
    job = JobSpec("train@a-0", "k1", "abc", Path("/w"), Path("/c"), "/cache")
    assert executor.queued_as(job) == "slurm:12" and executor.queued_as(replace(job, key="k2")) is None
    assert calls == ["squeue"] * 3 and waits == [2.0, 8.0]  # two failures, then one listing for every question
    monkeypatch.setattr(executors.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "sbatch: error: Batch job submission failed: Invalid partition name specified"))
    with pytest.raises(SlurmError, match="sbatch --parsable failed 4 times: .*Invalid partition name"):
        executors.slurm("sbatch", "--parsable", "job.sh")


def test_a_job_the_cluster_has_but_the_ledger_lost_is_adopted_not_resubmitted(tmp_path):
    executor = FakeExecutor()
    executor.queue["key-prepare"] = "fake:queued-before"
    executor.running.add("fake:queued-before")
    current, submitted = launch_with(tmp_path, executor).step(pipeline(), "abc", dry_run=False)
    assert submitted == [] and executor.submitted == [] and current.states["prepare"] == State.ACTIVE


def test_a_dry_run_submits_nothing(tmp_path):
    executor = FakeExecutor()
    current, submitted = launch_with(tmp_path, executor).step(pipeline(), "abc", dry_run=True)
    assert submitted == [] and executor.submitted == [] and current.having(State.READY) == ["prepare"]


def test_local_gpu_jobs_get_a_gpu_entry_each_and_the_others_a_cpu_slot():
    ready = ["ground_truth@0", "search@a-0", "extract@a-0", "analyze", "train@a-0"]
    shared = LocalExecutor(LaunchConfig(local=LocalConfig(gpus=("0", "0", "1"), jobs=1)))
    # one job on GPU 0 already: its second entry and GPU 1 remain; the file-only stages take no GPU
    assert shared.placements(ready, ["0"]) == [("ground_truth@0", "0"), ("search@a-0", "1"), ("extract@a-0", None)]
    assert shared.placements(ready, ["0", None]) == [("ground_truth@0", "0"), ("search@a-0", "1")]
    cpus = LocalExecutor(LaunchConfig(local=LocalConfig(jobs=2)))
    assert cpus.placements(ready, [None]) == [("ground_truth@0", None)] and cpus.placements(ready, [None, None]) == []


def test_inside_an_allocation_local_gpu_ids_index_into_the_gpus_it_gave():
    assert visible_device("1", "4,6") == "6" and visible_device("1", None) == "1" and visible_device(None, "4") == ""
    assert visible_device("GPU-8f3a", "4,6") == "GPU-8f3a"  # a UUID names one GPU itself
    with pytest.raises(NasevalError, match="local.gpus: 2 is not among the 2 GPUs this allocation gives"):
        visible_device("2", "4,6")


def test_the_slurm_script_asks_for_what_launch_yaml_says_per_kind_of_stage(tmp_path):
    config = LaunchConfig(
        slurm=SlurmConfig(partition="gpu", gres="gpu:1", time="02:00:00", mem="32G", extra=("--account=nas",),
                          signal_seconds=600, setup=("module load cuda/12.4",)),
        resources=ResourcesByKind(ground_truth=Resources(time="48:00:00"),
                                  prepare=Resources(partition="cpu", cpus_per_task=1),
                                  search=Resources(gres="none")))
    executor = SlurmExecutor(config)

    def script(stage):
        return executor.script(JobSpec(stage, "k1", "abc", tmp_path, tmp_path / "campaign", "/cache"))

    ground_truth = script("ground_truth@0-1")
    for option in ("--job-name=naseval-k1", "--requeue", "--partition=gpu", "--gres=gpu:1", "--mem=32G",
                   "--time=48:00:00", "--account=nas", f"--chdir={tmp_path}", "--signal=B:USR1@600"):
        assert f"#SBATCH {option}\n" in ground_truth
    assert ground_truth.splitlines()[-2] == "module load cuda/12.4"
    assert ground_truth.splitlines()[-1].startswith("exec ") and "naseval.campaign.job" in ground_truth
    train, prepare, search = script("train@a-0"), script("prepare"), script("search@random-3")
    assert "--time=02:00:00\n" in train and "--gres=gpu:1\n" in train
    assert "--partition=cpu\n" in prepare and "--cpus-per-task=1\n" in prepare and "--gres" not in prepare
    assert "--gres" not in search and "--gres" not in script("analyze")  # asked not to, and a file-only kind


def test_launch_settings_are_checked(tmp_path):
    (tmp_path / "launch.yaml").write_text("retries: -1\n")
    with pytest.raises(NasevalError, match="retries: expected an integer >= 0, got -1"):
        read_launch_config(None, tmp_path)
    (tmp_path / "launch.yaml").write_text("slurm:\n  partiton: gpu\n")
    with pytest.raises(NasevalError, match="unknown key slurm.partiton"):
        read_launch_config(None, tmp_path)
    with pytest.raises(NasevalError, match="executor: expected one of slurm, local, got 'pbs'"):
        make_executor("pbs", LaunchConfig())


def test_checkpoints_live_on_shared_storage_and_outlive_a_killed_run(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    monkeypatch.setenv(SHARED_RESUME_ENV, str(shared))
    out = tmp_path / "clone" / "runs" / "train"
    with pytest.raises(KeyboardInterrupt), atomic_directory(out, resumable=True) as folder:
        (folder / RESUME / "train.pt").write_text("epoch 3")
        raise KeyboardInterrupt  # a kill: the throwaway clone goes, the checkpoint stays
    assert (shared / "train" / "train.pt").read_text() == "epoch 3"
    with atomic_directory(tmp_path / "another_clone" / "runs" / "train", resumable=True) as folder:
        assert (folder / RESUME / "train.pt").read_text() == "epoch 3"  # a new clone resumes from it
        (folder / "metrics.json").write_text("{}")
    assert not (shared / "train").exists()  # done: checkpoints removed, the output holds results only
    assert sorted(p.name for p in (tmp_path / "another_clone" / "runs" / "train").iterdir()) == ["metrics.json"]


@pytest.fixture
def keyed(tmp_path, ptb_dir, monkeypatch) -> Path:
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(ptb_dir))
    return tiny_repo(tmp_path)


@pytest.mark.integration
def test_a_stage_key_changes_with_its_inputs_and_those_of_the_stages_it_needs(keyed):
    before = read_pipeline(keyed)
    assert before.stale == frozenset(before.stages)  # nothing has run
    assert before.stages["train@random-0"].needs == ("prepare", "extract@random-0")
    params = (keyed / "params.yaml").read_text()
    (keyed / "params.yaml").write_text(params.replace("num_candidates: 100", "num_candidates: 50"))
    after = read_pipeline(keyed)
    changed = {name for name in before.stages if before.stages[name].key != after.stages[name].key}
    assert changed == {"search@random_ws-0", "search@random_ws-1", "extract@random_ws-0", "extract@random_ws-1",
                       "train@random_ws-0", "train@random_ws-1", "analyze"}
    model = keyed / "naseval" / "nn" / "model.py"
    model.write_text("# changed\n" + model.read_text())
    code_changed = read_pipeline(keyed)
    assert code_changed.stages["ground_truth@0-0"].key != after.stages["ground_truth@0-0"].key
    assert code_changed.stages["extract@random-0"].key != after.stages["extract@random-0"].key  # its search's
    assert code_changed.stages["prepare"].key == after.stages["prepare"].key


@pytest.mark.integration
def test_the_supernets_recipe_changes_every_search_and_what_follows_it_and_nothing_else(keyed):
    before = read_pipeline(keyed)
    params = yaml.safe_load((keyed / "params.yaml").read_text())
    params["search"]["supernet"]["train"]["lr"] = 2.0
    (keyed / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    after = read_pipeline(keyed)
    changed = {name for name in before.stages if before.stages[name].key != after.stages[name].key}
    # random reads no supernet, but DVC's params are the same for every item of the search matrix;
    # so for the rank matrix, whose supernets (and the proxies' initial model) read the recipe
    searches = {f"{stage}@{policy}-{seed}" for stage in ("search", "extract", "train")
                for policy in ("random_ws", "random") for seed in (0, 1)}
    ranks = {name for name in before.stages if name.startswith("rank@")}
    assert len(ranks) == 2 * len(params["rank"]["evaluators"])
    assert changed == searches | ranks | {"analyze"}


@pytest.mark.integration
def test_a_launch_refuses_uncommitted_code(keyed):
    (keyed / "params.yaml").write_text((keyed / "params.yaml").read_text() + "\n# edited\n")
    result = subprocess_naseval(keyed, "launch", "--executor", "local", "--dry-run")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: uncommitted changes (params.yaml): the jobs run the launch's commit, "
                                     "so commit first")


def subprocess_naseval(repo: Path, *args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "naseval.cli", *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})


@pytest.mark.integration
def test_a_dry_run_names_the_first_wave(keyed):
    result = run(keyed, "python", "-m", "naseval.cli", "launch", "--executor", "local", "--dry-run")
    assert "would submit prepare (key " in result.stderr and "1 ready, 38 waiting" in result.stderr  # 22 ranks
    assert not (keyed / ".naseval" / "campaign" / "jobs").exists()
