"""The README-objective SGD script runs and reports what DyHPO did."""

from __future__ import annotations

import re

from benchmarks.readme_sgd import run


def test_a_short_run_reports_configurations_and_best_accuracy() -> None:
    line = run(epochs=12, seed=0)
    match = re.match(
        r"seed 0: (\d+) configurations, (\d+) of one epoch, longest \[.*\], "
        r"best accuracy (\d\.\d+), \d+ s$",
        line,
    )
    assert match, line
    n_configs, one_epoch, best = int(match[1]), int(match[2]), float(match[3])
    assert 0 <= one_epoch <= n_configs <= 12 and 0.0 <= best <= 1.0
