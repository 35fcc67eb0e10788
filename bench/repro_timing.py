"""Wall time of `dvc repro` per stage, and of a no-op `dvc repro` right after.

Run from the project root of a fresh clone: python bench/repro_timing.py
Prints a Markdown table (stage, seconds) and the totals.
"""

import re
import subprocess
import sys
import time

STAGE_START = re.compile(r"Running stage '([^']+)'")


def timed_repro() -> tuple[list[tuple[str, float]], float]:
    started = time.perf_counter()
    stages: list[tuple[str, float]] = []
    current, current_start = None, started
    process = subprocess.Popen(["dvc", "repro"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        match = STAGE_START.search(line)
        if match:
            now = time.perf_counter()
            if current:
                stages.append((current, now - current_start))
            current, current_start = match.group(1), now
    if process.wait() != 0:
        sys.exit(f"dvc repro failed with exit code {process.returncode}")
    finished = time.perf_counter()
    if current:
        stages.append((current, finished - current_start))
    return stages, finished - started


def main() -> None:
    stages, total = timed_repro()
    no_op_start = time.perf_counter()
    subprocess.run(["dvc", "repro"], check=True, capture_output=True)
    no_op = time.perf_counter() - no_op_start
    print("\n| stage | seconds |\n|---|---:|")
    for name, seconds in stages:
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **dvc repro, total** | **{total:.1f}** |")
    print(f"| no-op dvc repro | {no_op:.1f} |")


if __name__ == "__main__":
    main()
