"""Continuation-aware epoch accounting and the total-budget stop."""

from __future__ import annotations

import optuna
import pytest

from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent


def test_stop_after_epochs_validates() -> None:
    with pytest.raises(ValueError, match="`n_epochs` must be an integer >= 1, but got 0"):
        StopAfterEpochs(0)


def test_budget_counts_only_new_epochs_of_other_samplers_too() -> None:
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        for step in range(1, 4):
            trial.report(float(step), step)
        return 0.0

    study.optimize(objective, n_trials=3)
    assert epochs_spent(study) == 9
    study.optimize(objective, n_trials=100, callbacks=[StopAfterEpochs(15)])
    assert epochs_spent(study) == 15
