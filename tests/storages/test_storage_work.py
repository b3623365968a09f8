"""Storage work per decision does not grow with the study's history.

SQL statements are counted with a SQLAlchemy ``before_cursor_execute`` listener on the
storage's engine, for the statements issued inside ``DyHPOSampler.before_trial`` and
``DyHPOPruner.prune``. The model is replaced by ``benchmarks._stub_policy`` (the storage work of a
decision depends on its kind, not on how the winner was chosen), so the test is fast and its
figures are counts, not timings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
import functools
from pathlib import Path
import statistics
from typing import Any

import optuna
from sqlalchemy import event

from benchmarks._stub_policy import objective
from benchmarks._stub_policy import stub_study
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo._decision import Decision
from optuna_dyhpo.storages import create_sqlite_storage

# Large enough that the configuration the policy keeps resuming never completes: resumed curves
# grow with the history (about 2/3 of the observations), as they would over a long study.
MAX_BUDGET = 1000
EARLY = (30, 80)  # observations
LATE = (190, 240)


class _Counter:
    def __init__(self) -> None:
        self.obs = 0
        self.inside = 0
        self.kind = ""
        self.records: list[tuple[str, int, int]] = []  # (decision kind, obs, statements)

    def hook(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.inside, self.kind = 1, ""
            try:
                return fn(*args, **kwargs)
            finally:
                self.records.append((f"{name}:{self.kind}", self.obs, self.inside - 1))
                self.inside = 0

        return counted

    def decide(self, fn: Callable[..., Decision]) -> Callable[..., Decision]:
        @functools.wraps(fn)
        def recorded(*args: Any, **kwargs: Any) -> Decision:
            decision = fn(*args, **kwargs)
            self.kind = decision.kind
            return decision

        return recorded

    def on_statement(self, *args: Any) -> None:
        if self.inside:
            self.inside += 1


def _run(tmp_path: Path, epochs: int) -> dict[str, dict[str, float]]:
    storage = create_sqlite_storage(tmp_path / "study.db")
    study = stub_study(MAX_BUDGET, storage=storage)
    sampler, pruner = study.sampler, study.pruner
    assert isinstance(sampler, DyHPOSampler)
    counter = _Counter()
    sampler.before_trial = counter.hook("start", sampler.before_trial)  # type: ignore[method-assign]
    pruner.prune = counter.hook("prune", pruner.prune)  # type: ignore[method-assign]
    sampler._decide = counter.decide(sampler._decide)  # type: ignore[method-assign]
    event.listen(storage.engine, "before_cursor_execute", counter.on_statement)

    def counted(trial: optuna.Trial) -> float:
        report = trial.report

        def report_and_count(value: float, step: int) -> None:
            counter.obs += 1
            report(value, step)

        trial.report = report_and_count  # type: ignore[method-assign]
        return objective(trial)

    def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if counter.obs >= epochs:
            study.stop()

    try:
        study.optimize(counted, callbacks=[stop])
    finally:
        storage.engine.dispose()
    by_window: dict[str, dict[str, float]] = {}
    for label, (lo, hi) in (("early", EARLY), ("late", LATE)):
        per_kind: dict[str, list[int]] = defaultdict(list)
        for kind, obs, n in counter.records:
            if lo < obs <= hi:
                per_kind[kind].append(n)
        by_window[label] = {k: statistics.fmean(v) for k, v in per_kind.items()}
    return by_window


def test_sql_statements_per_decision_do_not_grow_with_history(tmp_path: Path) -> None:
    figures = _run(tmp_path, LATE[1])
    early, late = figures["early"], figures["late"]
    # Every kind of decision happens in both windows: pauses and continues (pruner), fresh
    # and resumed configurations (trial starts).
    kinds = {"prune:continue", "prune:fresh", "start:fresh", "start:resume"}
    assert kinds <= early.keys() and kinds <= late.keys(), figures
    for kind in kinds:
        # Resumed curves are longer late in the run; their copy must not cost more.
        assert late[kind] <= 1.2 * early[kind] + 1, (kind, figures)
