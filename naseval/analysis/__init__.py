"""From runs to findings: the summary of an experiment, rankings and their statistics, the reliability
of the ground truth, the report, its figures, and the comparison of experiments."""
