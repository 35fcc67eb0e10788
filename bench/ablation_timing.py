"""Wall time of each experiment of the weight-sharing ablation, then its table (docs/weight_sharing.md).

Run from the project root of a fresh clone, after `dvc repro` (bench/repro_timing.py times that):
    python bench/ablation_timing.py [--seeds N] [--oracle-only]
Every experiment runs search seeds 0..N-1 (default 4, as params.yaml), its baseline too, and names
its evaluator: `dvc exp run` leaves an experiment's params in the workspace, so a setting left out
would be the previous experiment's. --oracle-only runs only the experiments without weight
sharing, the cheap ones.
Prints one line per experiment, then what `naseval compare` prints, and writes ablation.md,
ablation.csv and ablation.png in the working directory.
"""

import argparse
import subprocess
import sys
import time

EXPERIMENTS = [  # dvc exp run settings, whether the policy shares weights
    (["policy=random_search"], False),
    (["policy=evolution"], False),
    (["policy=enas", "search.enas.evaluator=oracle"], False),
    (["policy=nao", "search.nao.evaluator=oracle"], False),
    (["policy=enas", "search.enas.evaluator=shared_weights"], True),
    (["policy=nao", "search.nao.evaluator=shared_weights"], True),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=4, help="search seeds 0..N-1 for every experiment")
    parser.add_argument("--oracle-only", action="store_true", help="only the experiments without weight sharing")
    args = parser.parse_args()
    seeds = [f"seeds=[{', '.join(map(str, range(args.seeds)))}]"]
    times = []
    for settings, shares_weights in EXPERIMENTS:
        if args.oracle_only and shares_weights:
            continue
        command = ["dvc", "exp", "run", *(f"-S{s}" for s in settings + seeds)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        times.append((" ".join(settings + seeds), seconds))
        print(f"{' '.join(command)}: {seconds:.0f} s", flush=True)
    print("\n| experiment | seconds |\n|---|---:|")
    for name, seconds in times:
        print(f"| `{name}` | {seconds:.0f} |")
    subprocess.run([sys.executable, "-m", "naseval.cli", "compare", "--markdown", "ablation.md", "--ablation-csv",
                    "ablation.csv", "--figure", "ablation.png"], check=True)


if __name__ == "__main__":
    main()
