"""How a running ground-truth stage ends when it is stopped the ways users and schedulers stop it,
and whether its rerun resumes to the cells of a run never stopped (docs/robustness.md's table).

Run from the project root: NASEVAL_PTB_DIR=... python bench/stop_signals.py [--params params.yaml]
In a temporary folder it prepares the data, trains the ground truth of seed 0 once uninterrupted,
then for each way of stopping starts the same stage, waits for its workers' first checkpoint,
stops it, times its end, runs it again and compares cells.csv byte for byte. Writes the record
docs/records/stop_signals.json and rewrites the table of docs/robustness.md from it
(tests/test_docs_records.py checks that the two agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RECORD = Path("docs/records/stop_signals.json")  # what docs/robustness.md's table is made from
DOC = Path("docs/robustness.md")
BEGIN, END = "<!-- stop_signals table: bench/stop_signals.py writes it -->", "<!-- end of stop_signals table -->"


def pool_workers(pid: int) -> list[int]:
    """The stage's pool workers (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _twice(stage: subprocess.Popen, number: signal.Signals) -> None:
    os.killpg(stage.pid, number)
    time.sleep(0.3)  # the second while the first is being answered: the save must survive it
    os.killpg(stage.pid, number)


# What a user or a scheduler does, and the signal it sends: the stage runs in its own process
# group (as under a job's or a terminal's), and the stops come once its workers have saved.
STOPS: dict[str, Callable[[subprocess.Popen], object]] = {
    "SIGUSR1 to the stage (a scheduler's warning, forwarded by the job)": lambda s: s.send_signal(signal.SIGUSR1),
    "SIGTERM to the process group, twice (timeout, docker stop, kill -- -PGID, Slurm without --signal)":
        lambda s: _twice(s, signal.SIGTERM),
    "SIGINT to the process group (Ctrl-C)": lambda s: os.killpg(s.pid, signal.SIGINT),
    "SIGKILL to one worker (the out-of-memory killer)": lambda s: os.kill(pool_workers(s.pid)[0], signal.SIGKILL),
}


def stage_command(root: Path, params: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "stages.ground_truth", "--seed", "0", "--data", str(root / "data"),
            "--out", str(out), "--params", str(params)]


def stopped_run(root: Path, params: Path, out: Path, stop: Callable[[subprocess.Popen], object]) -> dict:
    kept = out.parent / f".{out.name}.partial" / ".resume"
    stage = subprocess.Popen(stage_command(root, params, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    while stage.poll() is None and not list(kept.glob("*.pt")):
        time.sleep(0.1)
    sent = time.monotonic()
    stop(stage)
    try:
        _, stderr = stage.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(stage.pid, signal.SIGKILL)
        _, stderr = stage.communicate()
        return {"seconds_to_end": None, "exit_code": None, "error": "hung: killed after 600 s"}
    ended = time.monotonic() - sent
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    return {"seconds_to_end": round(ended, 1), "exit_code": stage.returncode, "error": errors[-1] if errors else None,
            "checkpoints_kept": len(list(kept.glob("*.pt"))), "cells_kept": len(list(kept.glob("cell_*.json")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    params = parser.parse_args().params.resolve()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        subprocess.run([sys.executable, "-m", "stages.prepare", "--out", str(root / "data"), "--params", str(params)],
                       check=True, capture_output=True)
        started = time.monotonic()
        subprocess.run(stage_command(root, params, root / "whole"), check=True, capture_output=True)
        whole_seconds = time.monotonic() - started
        whole = (root / "whole" / "cells.csv").read_bytes()
        for number, (how, stop) in enumerate(STOPS.items()):
            out = root / f"stopped_{number}"
            row = {"how": how, **stopped_run(root, params, out, stop)}
            started = time.monotonic()
            rerun = subprocess.run(stage_command(root, params, out), capture_output=True)
            row |= {"rerun_seconds": round(time.monotonic() - started, 1), "rerun_exit_code": rerun.returncode,
                    "rerun_identical": rerun.returncode == 0 and (out / "cells.csv").read_bytes() == whole}
            rows.append(row)
            print(json.dumps(row), flush=True)
    record = {"command": "python bench/stop_signals.py", "params": str(params.relative_to(Path.cwd())),
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "cpu": cpu_name(), "cores": os.cpu_count(), "uninterrupted_seconds": round(whole_seconds, 1),
              "rows": rows}
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record, indent=2) + "\n")
    DOC.write_text(with_table(DOC.read_text(), record))
    print(render_table(record))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def render_table(record: dict) -> str:
    """The Markdown table of a record, with the machine and the uninterrupted run it compares with."""
    lines = [f"Measured with `{record['command']}` at {record['commit']} on {record['cpu']} ({record['cores']} "
             f"cores); the uninterrupted stage took {record['uninterrupted_seconds']:g} s.", "",
             "| what was sent | seconds to end | exit code | checkpoints kept | finished cells kept | "
             "rerun identical |", "|---|---|---|---|---|---|"]
    for row in record["rows"]:
        lines.append(f"| {row['how']} | {row['seconds_to_end']} | {row['exit_code']} | {row['checkpoints_kept']} | "
                     f"{row['cells_kept']} | {'yes' if row['rerun_identical'] else 'no'} |")
    return "\n".join(lines)


def with_table(doc: str, record: dict) -> str:
    """`doc` with the span between the markers replaced by the record's table."""
    head, rest = doc.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{render_table(record)}\n{END}{tail}"


if __name__ == "__main__":
    main()
