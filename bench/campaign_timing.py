"""Wall time of the tests' tiny campaign: serial `dvc repro` against `naseval launch --wait` on
local processes and on a real single-node Slurm, each followed by the collecting `dvc repro`.

    python bench/campaign_timing.py [--jobs 2] [--out bench/results/campaign_timing.json]

Each run is in a fresh tiny repository (tests/tiny_repo.py) with an empty DVC cache; the Slurm
run starts the tests' cluster (tests/slurm_cluster.py: root, slurm-wlm and munge) and is skipped
where it cannot. Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import slurm_cluster  # noqa: E402
from tiny_repo import run, tiny_repo  # noqa: E402

NASEVAL = (sys.executable, "-m", "naseval.cli")


def timed(repo: Path, *command: str, env: dict | None = None) -> float:
    started = time.perf_counter()
    run(repo, *command, env=env)
    return round(time.perf_counter() - started, 1)


def campaign(folder: Path, executor: str, jobs: int, env: dict | None = None) -> dict:
    repo = tiny_repo(folder)
    (repo / "launch.yaml").write_text(f"poll_seconds: 0.5\nlocal:\n  jobs: {jobs}\nslurm:\n  cpus_per_task: 1\n")
    launch = timed(repo, *NASEVAL, "launch", "--executor", executor, "--wait", env=env)
    return {"launch_s": launch, "collect_s": timed(repo, "dvc", "repro"), "executor": executor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="local jobs at once (the Slurm node has 2 CPUs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "campaign_timing.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        serial = tiny_repo(scratch / "serial")
        results["serial"] = {"repro_s": timed(serial, "dvc", "repro")}
        results["local"] = campaign(scratch / "local", "local", args.jobs)
        reason = slurm_cluster.available()
        if reason:
            results["slurm"] = {"skipped": reason}
        else:
            cluster = slurm_cluster.Cluster(scratch / "cluster")
            try:
                results["slurm"] = campaign(scratch / "slurm", "slurm", args.jobs, env=cluster.start())
            finally:
                cluster.stop()
    from naseval.core.runtime import processor_name

    results["machine"] = {"cpu": processor_name(), "cores": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for name, figures in results.items():
        print(f"{name:<8} {figures}")


if __name__ == "__main__":
    main()
