"""Continuation-aware epoch accounting, the exact total-budget stop and the epoch bar."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
import re
import sys
import threading
import time
from typing import Any
import warnings

import optuna
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from optuna_dyhpo._budget import _Run
from optuna_dyhpo._engine import Decision
from optuna_dyhpo._logging import _TqdmHandler
from tests.synthetic import make_objective
from tests.synthetic import make_study


def test_stop_after_epochs_validates() -> None:
    with pytest.raises(ValueError, match="`n_epochs` must be an integer >= 1, but got 0"):
        StopAfterEpochs(0)
    with pytest.raises(ValueError, match="`max_empty_trials` must be an integer >= 1, but got 0"):
        StopAfterEpochs(5, max_empty_trials=0)
    with pytest.raises(ValueError, match="`show_progress_bar` must be True, False or None"):
        StopAfterEpochs(5, show_progress_bar="yes")  # type: ignore[arg-type]


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


def _always_continue(sampler: DyHPOSampler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every configuration is worth its next epoch: without the budget check in the pruner, a
    trial would train to ``max_budget`` whatever the budget."""
    decide = sampler._decide

    def always(study: optuna.Study, configs: dict[int, Any], running: int | None) -> Decision:
        if running is None:
            return decide(study, configs, running)
        return Decision("continue", running, None, 0, 0.0, "test")

    monkeypatch.setattr(sampler, "_decide", always)


@pytest.mark.parametrize("budget", [3, 7, 10, 11, 17])
def test_the_budget_is_spent_exactly_and_the_last_configuration_paused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    study = make_study(5, tmp_path=tmp_path, n_startup_configs=1)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    _always_continue(sampler, monkeypatch)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(budget)])
    assert epochs_spent(study) == budget
    last = study.trials[-1]
    assert last.state in (TrialState.PRUNED, TrialState.COMPLETE)
    if budget % 5:  # the budget ran out inside a configuration: paused, its checkpoint saved
        assert last.user_attrs["dyhpo_status"] == "paused"
        assert "dyhpo_checkpoint" in last.user_attrs
    else:  # it ran out at max_budget: the configuration completed
        assert last.user_attrs["dyhpo_status"] == "completed"

    # A later run (which may resume it from its checkpoint) is exact again.
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(budget + 4)])
    assert epochs_spent(study) == budget + 4


def test_a_trial_started_after_the_budget_is_spent_trains_nothing(tmp_path: Path) -> None:
    study = make_study(6, tmp_path=tmp_path, n_candidates=32)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(12)])
    n_trials = len(study.trials)
    # Another optimize call whose budget this study has already spent (as a worker finds it
    # when others spent the budget while it was between trials): one trial, no epoch.
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(12)])
    assert epochs_spent(study) == 12
    assert len(study.trials) == n_trials + 1
    extra = study.trials[-1]
    assert extra.state == TrialState.PRUNED and not extra.intermediate_values
    assert all(c.last_step >= 1 for c in get_configurations(study))


def test_a_real_race_spends_the_budget_exactly(tmp_path: Path) -> None:
    study = make_study(6, tmp_path=tmp_path, n_candidates=32)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(23)])
    assert epochs_spent(study) == 23
    assert all(t.state.is_finished() for t in study.trials)


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_with_threads_at_most_one_epoch_per_other_worker_is_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n_jobs: int
) -> None:
    study = make_study(50, tmp_path=tmp_path, n_startup_configs=1)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    _always_continue(sampler, monkeypatch)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(30)], n_jobs=n_jobs)
    assert 30 <= epochs_spent(study) <= 30 + n_jobs - 1
    assert all(t.state.is_finished() for t in study.trials)
    # Every configuration that lost the budget is paused, not lost.
    assert all(c.status == "paused" for c in get_configurations(study))


@pytest.mark.parametrize("dyhpo", [False, True])
def test_empty_trials_stop_the_study_with_a_warning(dyhpo: bool) -> None:
    study = make_study(5, n_startup_configs=30) if dyhpo else optuna.create_study()

    def reports_nothing(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0.0, 1.0)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(reports_nothing, callbacks=[StopAfterEpochs(10, max_empty_trials=6)])
    assert len(study.trials) == 6
    ours = [str(w.message) for w in caught if issubclass(w.category, DyHPOWarning)]
    assert len([m for m in ours if "The last 6 trials reported no epoch" in m]) == 1

    def reports_once_in_three(trial: optuna.Trial) -> float:
        if trial.number % 3 == 0:
            trial.report(1.0, 1)
        return 0.0

    # Trials with epochs in between reset the count: the budget ends this run.
    other = optuna.create_study()
    other.optimize(reports_once_in_three, callbacks=[StopAfterEpochs(4, max_empty_trials=3)])
    assert epochs_spent(other) == 4


def _shown_rate(bar: Any) -> float:
    """The rate the bar prints, in epochs per second (tqdm prints s/epoch below 1)."""
    shown = bar.format_meter(**bar.format_dict)
    match = re.search(r"([\d.]+)(epoch/s|s/epoch)", shown)
    assert match is not None, shown
    value = float(match.group(1))
    return value if match.group(2) == "epoch/s" else 1.0 / value


def test_bar_rate_counts_only_the_epochs_of_this_call(tmp_path: Path) -> None:
    study = make_study(5, tmp_path=tmp_path, n_startup_configs=50)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(20)])
    assert epochs_spent(study) == 20
    time.sleep(0.01)  # the earlier trials started strictly before the new call
    callback = StopAfterEpochs(40, show_progress_bar=True)
    # A new study.optimize call that has spent 3 epochs so far.
    run = _Run([], datetime.datetime.now(), True)
    try:
        callback._progress(study, run, 23)
        bar = callback._bar
        assert bar is not None
        assert bar.initial == 20 and bar.n == 23
        assert bar.start_t == pytest.approx(run.start.timestamp())  # the call's clock
        bar._time = lambda: bar.start_t + 10.0  # seen 10 s into the call
        assert _shown_rate(bar) == pytest.approx(0.3, rel=0.01)  # 3 epochs, not 23
    finally:
        callback.stop(study, 23, log=False)
    assert callback._bar is None


def test_bar_moves_per_epoch_and_log_lines_print_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    study = make_study(6, tmp_path=tmp_path, n_startup_configs=1)
    sampler = study.sampler
    assert isinstance(sampler, DyHPOSampler)
    _always_continue(sampler, monkeypatch)
    optuna_logger = logging.getLogger("optuna")
    console = logging.StreamHandler(sys.stderr)  # like Optuna's default handler, on capfd
    console.setFormatter(optuna.logging.create_default_formatter())
    optuna_logger.addHandler(console)
    before = list(optuna_logger.handlers)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        study.optimize(
            make_objective(checkpoint=True),
            callbacks=[StopAfterEpochs(15)],
            show_progress_bar=True,
        )
    finally:
        optuna.logging.set_verbosity(previous)
        after = list(optuna_logger.handlers)
        optuna_logger.removeHandler(console)
    err = capfd.readouterr().err
    counts = [int(n) for n in re.findall(r"\b(\d+)/15 \[", err)]
    # Trials train up to 6 epochs each here; the bar still shows every epoch.
    assert set(range(1, 16)) <= set(counts) and counts == sorted(counts)
    assert "best value" in err and "Progress bar won't be displayed" not in err
    # Every INFO line starts a line of its own (tqdm.write clears the bar first).
    starts = [m.start() for m in re.finditer(r"\[I \d{4}-", err)]
    assert len(starts) >= 3
    assert all(i == 0 or err[i - 1] in "\r\n" for i in starts)
    # The console handler is restored once the bar is closed.
    assert after == before
    assert not any(isinstance(h, _TqdmHandler) for h in after)


def test_no_bar_without_show_progress_bar(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    study = make_study(4, tmp_path=tmp_path, n_startup_configs=13)
    study.optimize(make_objective(), callbacks=[StopAfterEpochs(6)])
    assert "/6 [" not in capfd.readouterr().err


def test_the_callback_outlives_a_thread_and_a_pickle() -> None:
    import pickle

    callback = StopAfterEpochs(5, show_progress_bar=True)
    copy = pickle.loads(pickle.dumps(callback))
    assert copy.n_epochs == 5 and copy._bar is None
    assert isinstance(copy._lock, type(threading.Lock()))
