"""Coverage of every interval and false-positive rate of every test the report uses (docs/statistics.md).

On synthetic ground truths shaped like naseval's (`naseval.analysis.synthetic`: Gaussian, noisy,
heavy-tailed, noise growing with perplexity, plateau and escape), at the seed counts the profiles
use (`naseval.analysis.coverage`). Prints one Markdown table, flags every row more than 0.02 from
nominal, and with --json writes the rows: {"method", "n", "population", "nominal", "coverage" or
"false_positive_rate"}.

    python bench/coverage.py [--cases 1000] [--json coverage.json]   (about 25 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from naseval.analysis.coverage import coverage_table  # noqa: E402

TOLERANCE = 0.02


def measured(row: dict) -> float:
    return row["coverage"] if "coverage" in row else row["false_positive_rate"]


def verdict(row: dict) -> str:
    """Within TOLERANCE of nominal, conservative (more coverage, fewer false positives), or off."""
    off = measured(row) - row["nominal"]
    if abs(off) <= TOLERANCE:
        return "ok"
    conservative = off > 0 if "coverage" in row else off < 0
    return "conservative" if conservative else "**anti-conservative**"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=1000, help="synthetic draws per row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows = coverage_table(args.cases, args.seed)
    print(f"{args.cases} synthetic cases per row; within {TOLERANCE} of nominal: ok\n")
    print("| method | n | population | nominal | measured | |\n|---|---|---|---:|---:|---|")
    for row in rows:
        kind = "coverage" if "coverage" in row else "false positives"
        print(f"| {row['method']} | {row['n']} | {row['population']} | {row['nominal']:.2f} | "
              f"{measured(row):.3f} ({kind}) | {verdict(row)} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
