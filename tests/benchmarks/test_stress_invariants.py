"""The stress benchmark's invariant (b): what a study may hold in RUNNING and WAITING."""

from __future__ import annotations

from pathlib import Path

from benchmarks.stress import check_invariants
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo._state import SEGMENT_KEY
from tests.synthetic import make_objective
from tests.synthetic import make_study

MAX_BUDGET = 4


def test_an_unstarted_enqueued_trial_is_allowed_a_started_or_running_one_is_not(
    tmp_path: Path,
) -> None:
    study = make_study(MAX_BUDGET, seed=0, tmp_path=tmp_path)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(10)])
    storage, name = study._storage, study.study_name
    assert check_invariants(storage, name, MAX_BUDGET) == []

    study.enqueue_trial({"x": 0.5})  # the budget ran out before any worker reached it
    waiting = study.trials[-1]
    assert check_invariants(storage, name, MAX_BUDGET) == []

    # A WAITING trial that holds DyHPO state, and a RUNNING trial, are violations.
    storage.set_trial_system_attr(
        waiting._trial_id, SEGMENT_KEY, {"config": waiting.number, "start": 1, "parent": None}
    )
    assert f"(b) trial {waiting.number} is still WAITING" in check_invariants(
        storage, name, MAX_BUDGET
    )
    running = study.ask()
    assert f"(b) trial {running.number} is still RUNNING" in check_invariants(
        storage, name, MAX_BUDGET
    )
