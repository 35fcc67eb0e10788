"""Campaigns without a cluster: wave planning, stage keys, the ledger, executors' settings, and
checkpoints on shared storage."""

import os
from pathlib import Path

import pytest
import yaml
from tiny_repo import run, tiny_repo

from naseval.campaign.config import LaunchConfig, LocalConfig, SlurmConfig, read_launch_config
from naseval.campaign.driver import Launch
from naseval.campaign.executors import Executor, JobSpec, LocalExecutor, SlurmExecutor, make_executor
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
    done = {"key-prepare": JobFacts(succeeded=True, attempts=1),
            "key-search@a-0": JobFacts(active=True, attempts=1)}
    current = plan(pipeline(), [], done, retries=2)
    assert current.states == {"prepare": State.DONE, "ground_truth@0": State.READY, "search@a-0": State.ACTIVE,
                              "extract@a-0": State.WAITING, "analyze": State.WAITING}


def test_a_job_that_ended_without_success_is_retried_then_fails_and_blocks_what_needs_it():
    prepared = {"key-prepare": JobFacts(succeeded=True, attempts=1)}
    for attempts, state in [(1, State.READY), (3, State.READY), (4, State.FAILED)]:
        current = plan(pipeline(), [], {**prepared, "key-search@a-0": JobFacts(attempts=attempts)}, retries=3)
        assert current.states["search@a-0"] == state
    assert current.states["extract@a-0"] == State.BLOCKED and current.states["analyze"] == State.BLOCKED
    assert current.states["ground_truth@0"] == State.READY and not current.finished


def test_targets_limit_the_campaign_to_what_they_need():
    current = plan(pipeline(), ["extract@a-0"], {}, retries=0)
    assert list(current.states) == ["prepare", "search@a-0", "extract@a-0"]
    with pytest.raises(NasevalError, match="unknown stage 'train@a-0'"):
        plan(pipeline(), ["train@a-0"], {}, retries=0)


class FakeExecutor(Executor):
    name = "fake"

    def __init__(self, slots: int = 100):
        self.slots, self.submitted, self.running, self.queue = slots, [], set(), {}

    def submit(self, job: JobSpec, device: str | None) -> str:
        job_id = f"fake:{len(self.submitted)}"
        self.submitted.append(job.stage)
        self.running.add(job_id)
        return job_id

    def alive(self, job_ids):
        return self.running & set(job_ids)

    def cancel(self, job_id):
        self.running.discard(job_id)

    def free_devices(self, busy):
        return [None] * (self.slots - len(busy))

    def queued_as(self, job):
        return self.queue.get(job.key)


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
    for attempt in (2, 3):  # ground truth's job vanishes (cancelled, preempted) without an outcome
        executor.running.clear()
        current, submitted = launch.step(pipeline(), "abc", dry_run=False)
        assert submitted == (["ground_truth@0"] if attempt == 2 else ["search@a-0"])
    assert current.states["ground_truth@0"] == State.FAILED
    with launch.campaign.ledger() as entries:
        assert [len(entries[f"key-{name}"]["attempts"]) for name in ("prepare", "ground_truth@0")] == [1, 2]


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


def test_local_jobs_get_one_gpu_each_or_a_count_of_cpu_slots():
    gpus = LocalExecutor(LaunchConfig(local=LocalConfig(gpus=("0", "1", "2"))))
    assert gpus.free_devices(["1"]) == ["0", "2"]
    cpus = LocalExecutor(LaunchConfig(local=LocalConfig(jobs=2)))
    assert cpus.free_devices([None]) == [None] and cpus.free_devices([None, None]) == []


def test_the_slurm_script_asks_for_what_launch_yaml_says(tmp_path):
    config = LaunchConfig(slurm=SlurmConfig(partition="gpu", gres="gpu:1", time="02:00:00", mem="32G",
                                            ground_truth_time="48:00:00", extra=("--account=nas",)))
    executor = SlurmExecutor(config)
    job = JobSpec("ground_truth@0", "k1", "abc", tmp_path, tmp_path / "campaign", "/cache")
    script = executor.script(job)
    for option in ("--job-name=naseval-k1", "--requeue", "--partition=gpu", "--gres=gpu:1", "--mem=32G",
                   "--time=48:00:00", "--account=nas", f"--chdir={tmp_path}"):
        assert f"#SBATCH {option}\n" in script
    assert "--time=02:00:00" in executor.script(JobSpec("train@a-0", "k2", "abc", tmp_path, tmp_path, "/cache"))
    assert script.splitlines()[-1].startswith("exec ") and "naseval.campaign.job" in script


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
    # random reads no supernet, but DVC's params are the same for every item of the search matrix
    searches = {f"{stage}@{policy}-{seed}" for stage in ("search", "extract", "train")
                for policy in ("random_ws", "random") for seed in (0, 1)}
    assert changed == searches | {"analyze"}


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
    assert "would submit prepare (key " in result.stderr and "1 ready, 16 waiting" in result.stderr
    assert not (keyed / ".naseval" / "campaign" / "jobs").exists()
