"""DyHPOPruner: step rules, NaN and failures, and its pairing with DyHPOSampler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
import warnings

import optuna
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import get_configurations
from optuna_dyhpo._engine import Decision
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


# ------------------------------------------------------------------------- mistakes caught
def test_a_study_without_dyhpo_pruner_is_warned_once() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=DyHPOSampler(4, seed=0, n_startup_configs=20)
    )  # Optuna's default pruner: MedianPruner
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(make_objective(), n_trials=4)
    ours = [w for w in caught if issubclass(w.category, DyHPOWarning)]
    assert len([w for w in ours if "not DyHPOPruner" in str(w.message)]) == 1
    assert "MedianPruner" in str(ours[0].message)
    assert "pruner=DyHPOPruner()" in str(ours[0].message)

    with warnings.catch_warnings():
        warnings.simplefilter("error", DyHPOWarning)
        make_study(4, n_startup_configs=20).optimize(make_objective(), n_trials=2)


def _resume_first_paused(sampler: DyHPOSampler, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next trial resumes the oldest paused configuration (whatever DyHPO would pick)."""
    decide = sampler._decide

    def resume(study: optuna.Study, configs: dict[int, Any], running: int | None) -> Decision:
        paused = [c for c in configs.values() if c.status == "paused"]
        if running is not None or not paused:
            return decide(study, configs, running)
        c = min(paused, key=lambda c: c.config_id)
        return Decision("resume", c.config_id, None, c.last_step + 1, 0.0, "test")

    monkeypatch.setattr(sampler, "_decide", resume)


def test_a_resumed_trial_that_restarts_from_epoch_one_is_warned_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = make_study(6, n_startup_configs=20)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(3)])  # 3 paused configurations
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    _resume_first_paused(sampler, monkeypatch)

    def forgets_trial_resume(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        value = 0.0
        for epoch in range(1, 7):  # should be TrialResume(trial).steps()
            value = curve_value(x, lr, epoch)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(forgets_trial_resume, n_trials=2)
    ours = [str(w.message) for w in caught if issubclass(w.category, DyHPOWarning)]
    assert len([m for m in ours if "did the objective start again from epoch 1" in m]) == 1
    assert "Use TrialResume(trial)" in ours[0]
    assert all(t.user_attrs.get("dyhpo_continues_trial") is not None for t in study.trials[3:])


def test_an_early_return_is_finished_early_and_warned_once() -> None:
    study = make_study(5, n_startup_configs=20)

    def returns_after_two(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for epoch in TrialResume(trial).steps():
            trial.report(x * epoch, epoch)
            if epoch == 2:
                return x * epoch  # before max_budget=5, and without asking the pruner
        return x

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(returns_after_two, n_trials=3)
    ours = [str(w.message) for w in caught if issubclass(w.category, DyHPOWarning)]
    assert len([m for m in ours if "before max_budget=5" in m]) == 1
    assert "'finished_early'" in ours[0]
    assert all(t.user_attrs["dyhpo_status"] == "finished_early" for t in study.trials)
    assert all(c.status == "finished_early" for c in get_configurations(study))

    done = make_study(2, n_startup_configs=20)
    done.optimize(returns_after_two, n_trials=2)  # returns at max_budget=2
    assert all(t.user_attrs["dyhpo_status"] == "completed" for t in done.trials)
    assert all(c.status == "completed" for c in get_configurations(done))


def test_a_finished_early_configuration_is_never_resumed() -> None:
    study = make_study(5, n_startup_configs=2, n_candidates=32)

    def early_for_the_first(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = curve_value(x, lr, epoch)
            trial.report(value, epoch)
            if trial.number == 0:
                return value
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DyHPOWarning)
        study.optimize(early_for_the_first, callbacks=[StopAfterEpochs(25)])
    configs = {c.config_id: c for c in get_configurations(study)}
    assert configs[0].status == "finished_early" and configs[0].trial_numbers == [0]
