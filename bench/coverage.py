"""Coverage of every interval and false-positive rate of every test the report uses (docs/statistics.md).

On synthetic ground truths shaped like naseval's (`naseval.analysis.synthetic`: Gaussian, noisy,
heavy-tailed, noise growing with perplexity, plateau and escape), at the seed counts the profiles
use (`naseval.analysis.coverage`). Prints one Markdown table (a row per method and sample size, a
column per population) marking every value more than 0.02 from nominal, and with --json writes
the rows: {"method", "n", "population", "nominal", "coverage" or "false_positive_rate"}.

    python bench/coverage.py [--cases 1000] [--json coverage.json]   (about 25 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from naseval.analysis.coverage import coverage_table  # noqa: E402
from naseval.analysis.synthetic import POPULATIONS  # noqa: E402

TOLERANCE = 0.02


def measured(row: dict) -> float:
    return row["coverage"] if "coverage" in row else row["false_positive_rate"]


def mark(row: dict) -> str:
    """The measured value, with † where it is more than TOLERANCE from nominal."""
    value = round(measured(row), 3)
    return f"{value:.3f}{'' if round(abs(value - row['nominal']), 3) <= TOLERANCE else ' †'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000, help="synthetic draws per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows = coverage_table(args.cases, args.seed)
    populations = [p for p in POPULATIONS if any(row["population"] == p for row in rows)]
    table: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        table.setdefault((row["method"], row["n"]), {})[row["population"]] = row
    print(f"{args.cases} synthetic cases a cell; coverage of 95% intervals, false-positive rate of tests at "
          f"α = 0.05; †: more than {TOLERANCE} from nominal\n")
    print(f"| method | n | {' | '.join(populations)} |\n|---|---|{'---:|' * len(populations)}")
    for (method, n), by_population in table.items():
        cells = [mark(by_population[p]) if p in by_population else "" for p in populations]
        print(f"| {method} | {n} | {' | '.join(cells)} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
