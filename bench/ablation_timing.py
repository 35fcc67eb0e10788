"""Wall time of each experiment of the weight-sharing ablation, then its table (docs/weight_sharing.md).

Run from the project root of a fresh clone, after `dvc repro` (bench/repro_timing.py times that):
    python bench/ablation_timing.py [--seeds N] [--oracle-only]
With --seeds N every experiment runs search seeds 0..N-1 (its baseline too); the default keeps
params.yaml's. --oracle-only runs only the experiments without weight sharing, the cheap ones.
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
    (["policy=enas"], True),
    (["policy=nao"], True),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, help="search seeds 0..N-1 for every experiment")
    parser.add_argument("--oracle-only", action="store_true", help="only the experiments without weight sharing")
    args = parser.parse_args()
    seeds = [f"seeds=[{', '.join(map(str, range(args.seeds)))}]"] if args.seeds else []
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
    subprocess.run([sys.executable, "-m", "stages.compare", "--markdown", "ablation.md", "--ablation-csv",
                    "ablation.csv", "--figure", "ablation.png"], check=True)


if __name__ == "__main__":
    main()
