"""Benchmark pipeline for optuna-dyhpo (issue 3).

Modules:
    problems: the benchmark problems (LCBench via the YAHPO surrogate, a torch MLP on digits).
    methods: the compared optimisers, all recorded into Optuna studies.
    run: the runner CLI (``python -m benchmarks.run``).
    report: the report CLI (``python -m benchmarks.report``).
    merge: copies finished runs into one journal file for optuna-dashboard.

The library ``optuna_dyhpo`` never imports anything from here.
"""

from __future__ import annotations
