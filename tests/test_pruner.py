"""DyHPOPruner: step rules, NaN and failures, and its pairing with DyHPOSampler."""

from __future__ import annotations

from collections.abc import Callable

import optuna
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import get_configurations
from tests.synthetic import curve_value
from tests.synthetic import make_objective
from tests.synthetic import make_study


def test_pruner_without_dyhpo_sampler_is_rejected() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(), pruner=DyHPOPruner())

    def objective(trial: optuna.Trial) -> float:
        trial.report(1.0, 1)
        trial.should_prune()
        return 1.0

    with pytest.raises(RuntimeError, match="DyHPOPruner needs DyHPOSampler"):
        study.optimize(objective, n_trials=1)


@pytest.mark.parametrize(
    "steps,message",
    [
        ([1, 3], r"must report steps 1, 2, \.\.\. in order without gaps; steps \[2\]"),
        ([0], "counts steps \\(epochs\\) from 1"),
        ([1, 2, 3, 4, 5, 6], "reported step 6, beyond the sampler's max_budget=5"),
    ],
)
def test_steps_out_of_order_fail_only_that_trial(steps: list[int], message: str) -> None:
    study = make_study(5, direction="minimize", n_candidates=32)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(8)])
    before = {t.number: (t.state, t.intermediate_values) for t in study.trials}

    def bad(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        for s in steps:
            trial.report(0.5, s)
            trial.should_prune()
        return 0.5

    study.enqueue_trial({"x": 0.5})  # an enqueued trial starts a new configuration at step 1
    with pytest.raises(ValueError, match=message):
        study.optimize(bad, n_trials=1)
    assert study.trials[-1].state == TrialState.FAIL
    after = {t.number: (t.state, t.intermediate_values) for t in study.trials[:-1]}
    assert after == before


def _bad_objective(kind: str) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)

        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = curve_value(x, lr, epoch)
            if kind == "nan" and trial.number == 1 and epoch == 1:
                value = float("nan")
            if kind == "fail" and trial.number == 1 and epoch == 1:
                raise RuntimeError("simulated crash in the objective")
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


@pytest.mark.parametrize("kind,status", [("nan", "diverged"), ("fail", "failed")])
def test_diverged_and_failed_configurations_are_never_resumed(kind: str, status: str) -> None:
    study = optuna.create_study(
        direction="maximize",
        sampler=DyHPOSampler(8, seed=0, n_candidates=64, n_startup_configs=2),
        pruner=DyHPOPruner(),
    )
    study.optimize(_bad_objective(kind), callbacks=[StopAfterEpochs(40)], catch=(RuntimeError,))
    configs = {c.config_id: c for c in get_configurations(study)}
    assert configs[1].status == status and configs[1].trial_numbers == [1]
    others = [c for cid, c in configs.items() if cid != 1]
    assert all(c.status != status for c in others)  # nothing else was touched
    assert study.trials[1].user_attrs["dyhpo_status"] == status
