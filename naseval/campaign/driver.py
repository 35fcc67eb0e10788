"""`naseval launch`, `status` and `cancel`: plan the waves, submit the ready stages, follow them.

A launch submits every stage whose needs are done, then, with `wait`, polls the executor and
submits each next wave as the previous one finishes, resubmitting a job that ended without
success (it resumes from its checkpoint): always after an interruption (a warning before
preemption or the time limit, a preemption, a timeout), after a failure while retries are left.
Everything it knows lives in the campaign's ledger and in each job's outcome, so a killed driver
loses nothing: `status` and a new launch read them back.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from naseval.campaign.config import LaunchConfig, absolute
from naseval.campaign.executors import Executor, JobSpec, SlurmError
from naseval.campaign.job import DVC
from naseval.campaign.ledger import FAILED, INTERRUPTED, Campaign, classify_end, record_attempt
from naseval.campaign.pipeline import Pipeline, read_pipeline
from naseval.campaign.plan import JobFacts, Plan, State, plan
from naseval.core.errors import NasevalError

log = logging.getLogger("naseval")
CHECK_STAGE = "check_params"  # dvc.yaml's stage that checks the whole params file
MAX_FAILED_LOOKS = 10  # failed looks at Slurm in a row before --wait gives up (a broken setup, not a hiccup)


@dataclass
class Launch:
    workspace: Path
    targets: list[str]
    config: LaunchConfig
    executor: Executor

    def __post_init__(self) -> None:
        self.workspace = absolute(self.workspace)
        self.campaign = Campaign(self.config.campaign_folder(self.workspace))

    @functools.cached_property
    def storage(self) -> str:
        """What the jobs share: the workspace's DVC cache (objects and run-cache), or a remote."""
        if self.config.remote:
            return f"remote:{self.config.remote}"
        from dvc.repo import Repo

        with Repo(str(self.workspace)) as repo:
            return str(absolute(Path(repo.cache.local_cache_dir)))

    def run(self, wait: bool = False, dry_run: bool = False) -> Plan:
        """Submit what is ready; with `wait`, until every target stage is done or failed. While
        waiting, a look at Slurm that fails (after its own retries) is tried again at the next
        poll, up to MAX_FAILED_LOOKS in a row."""
        commit = committed_head(self.workspace)
        check_params_here(self.workspace)
        pipeline = read_pipeline(self.workspace)
        counts, failed_looks = "", 0
        while True:
            try:
                current, submitted = self.step(pipeline, commit, dry_run)
                failed_looks = 0
            except SlurmError as error:
                failed_looks += 1
                if not wait or dry_run or failed_looks > MAX_FAILED_LOOKS:
                    raise
                log.warning("%s; looking again in %g s (%d of %d failed looks in a row)", error,
                            self.config.poll_seconds, failed_looks, MAX_FAILED_LOOKS)
                time.sleep(self.config.poll_seconds)
                continue
            if dry_run:
                for name in current.having(State.READY):
                    log.info("would submit %s (key %s)", name, pipeline.stages[name].key)
            if submitted:
                log.info("submitted %d: %s", len(submitted), ", ".join(submitted))
            if counts != (counts := plan_counts(current)):
                log.info("%s", counts)
            if not wait or dry_run or current.finished:
                return current
            time.sleep(self.config.poll_seconds)

    def step(self, pipeline: Pipeline, commit: str, dry_run: bool) -> tuple[Plan, list[str]]:
        """One look at the campaign and one round of submissions, under the ledger's lock, which
        is written after every submission and whatever ends the round."""
        with self.campaign.ledger() as entries:
            self.executor.observe()
            alive = self.alive(entries)
            if not dry_run:
                self.classify_ended(entries, alive)
                self.campaign.remove_dead_clones(alive, self.executor.name)
            current = self.plan(pipeline, entries, alive)
            if dry_run:
                return current, []
            busy = [entry["attempts"][-1]["device"] for entry in entries.values()
                    if entry["attempts"][-1]["job_id"] in alive]
            submitted, adopted_any = [], False
            for name, device in self.executor.placements(current.having(State.READY), busy):
                stage = pipeline.stages[name]
                job = JobSpec(name, stage.key, commit, self.workspace, self.campaign.folder, self.storage,
                              self.config.work_dir, self.config.hardlink_lock, 60 * self.config.checkpoint_minutes)
                known = entries.get(stage.key, {"attempts": []})["attempts"]
                adopted = self.executor.queued_as(job)  # submitted by a launch whose ledger write was lost
                if adopted and adopted not in [a["job_id"] for a in known]:
                    record_attempt(entries, stage.key, name, adopted, self.executor.name, commit, device)
                    adopted_any = True
                    continue
                job_id = self.executor.submit(job, device)
                record_attempt(entries, stage.key, name, job_id, self.executor.name, commit, device)
                self.campaign.save(entries)
                submitted.append(name)
            if submitted or adopted_any:
                current = self.plan(pipeline, entries, self.alive(entries))
            return current, submitted

    def classify_ended(self, entries: dict, alive: set[str]) -> None:
        """Note in the ledger how each of this executor's attempts that ended did (once)."""
        for key, entry in entries.items():
            last = entry["attempts"][-1]
            if last["job_id"] in alive or "ended" in last or not last["job_id"].startswith(f"{self.executor.name}:"):
                continue
            last["ended"] = classify_end(last, self.campaign.outcome(key),
                                         lambda: self.executor.end_state(last["job_id"]))
            if last["ended"] == INTERRUPTED:
                log.info("%s: job %s was interrupted; it resumes without spending a retry", entry["stage"],
                         last["job_id"])

    def plan(self, pipeline: Pipeline, entries: dict, alive: set[str]) -> Plan:
        def count(end: str, attempts: list[dict]) -> int:
            return sum(attempt.get("ended") == end for attempt in attempts)

        facts = {key: JobFacts(succeeded=self.campaign.succeeded(key),
                               active=entry["attempts"][-1]["job_id"] in alive,
                               failures=count(FAILED, entry["attempts"]),
                               interruptions=count(INTERRUPTED, entry["attempts"]))
                 for key, entry in entries.items()}
        return plan(pipeline, self.targets, facts, self.config.retries, self.config.interruptions)

    def alive(self, entries: dict) -> set[str]:
        """The job ids queued or running, asked of the executor once: each key's latest attempt
        on this executor is the only one that can still be running."""
        latest = [entry["attempts"][-1]["job_id"] for entry in entries.values()]
        return self.executor.alive([job_id for job_id in latest if job_id.startswith(f"{self.executor.name}:")])

    def cancel(self) -> list[str]:
        """Cancel every active job of this campaign on this executor; the stages cancelled."""
        with self.campaign.ledger() as entries:
            active = self.alive(entries)
            cancelled = []
            for entry in entries.values():
                if entry["attempts"][-1]["job_id"] in active:
                    self.executor.cancel(entry["attempts"][-1]["job_id"])
                    cancelled.append(entry["stage"])
        return cancelled

    def status_rows(self) -> list[dict]:
        """One row per stage the targets need: its state, attempts, last job and outcome."""
        pipeline = read_pipeline(self.workspace)
        with self.campaign.ledger() as entries:
            alive = self.alive(entries)
            self.classify_ended(entries, alive)
            current = self.plan(pipeline, entries, alive)
        rows = []
        for name, state in current.states.items():
            key = pipeline.stages[name].key
            attempts = entries.get(key, {"attempts": []})["attempts"]
            outcome = self.campaign.outcome(key) or {}
            ended = [attempt.get("ended") for attempt in attempts]
            rows.append({"stage": name, "state": state.value, "key": key, "attempts": len(attempts),
                         "interrupted": ended.count(INTERRUPTED), "failed": ended.count(FAILED),
                         "job": attempts[-1]["job_id"] if attempts else "", "seconds": outcome.get("seconds", "")})
        return rows


def plan_counts(current: Plan) -> str:
    """How many stages are in each state, e.g. '12 done, 2 active, 3 waiting'."""
    return ", ".join(f"{len(current.having(state))} {state.value}" for state in State if current.having(state))


def check_params_here(workspace: Path) -> None:
    """Run the params check (dvc.yaml's first stage) in the workspace before anything is submitted:
    a bad value ends the launch in one line, and the check, up to date, is no job of the campaign."""
    result = subprocess.run([*DVC, "repro", "--single-item", CHECK_STAGE], cwd=workspace, capture_output=True,
                            text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if result.returncode != 0:
        output = (result.stdout + result.stderr).splitlines()
        said = [line.removeprefix("error: ") for line in output if line.startswith("error: ")]
        raise NasevalError(said[0] if said else f"dvc repro {CHECK_STAGE} failed: {output[-1] if output else ''}")


def committed_head(workspace: Path) -> str:
    """The commit the jobs clone; refused while tracked files differ from it, since the jobs would
    not run what the workspace holds."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=workspace, capture_output=True, text=True)
        if result.returncode != 0:
            raise NasevalError(f"{workspace} is not a git repository with a commit: a campaign runs a commit")
        return result.stdout

    # dvc.lock aside: it records what the workspace ran, and a job writes its own
    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
               if line[3:] != "dvc.lock"]
    if changed:
        first = changed[0]
        raise NasevalError(f"uncommitted changes ({first}): the jobs run the launch's commit, so commit first")
    return git("rev-parse", "HEAD").strip()
