"""The one incumbent: ``best_configuration``, ``dyhpo:best``, the progress bar and the plot."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
import random

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
import pytest

from optuna_dyhpo import BestConfiguration
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import best_configuration
from optuna_dyhpo import epochs_spent
from optuna_dyhpo._budget import _Run
from optuna_dyhpo._incumbent import BEST_KEY
from optuna_dyhpo.visualization import plot_incumbent
from tests.synthetic import make_objective
from tests.synthetic import make_study
from tests.visualization.dyhpo_studies import Seg
from tests.visualization.dyhpo_studies import add_segment

SEEDS = range(40)


def random_study(seed: int, direction: str) -> optuna.Study:
    """Random pause/resume chains with crashed continuations, divergence, objective failures
    and ties (values on a 0.05 grid)."""
    rng = random.Random(seed)
    study = optuna.create_study(direction=direction)
    curves: dict[int, list[float]] = {}
    last_live: dict[int, int] = {}
    paused: list[int] = []
    for _ in range(rng.randint(0, 25)):
        number = len(study._storage.get_all_trials(study._study_id, deepcopy=False))
        if paused and rng.random() < 0.5:
            config = rng.choice(paused)
            parent: int | None = last_live[config]
        else:
            config, parent = number, None
            curves[config] = []
        old = curves[config]
        new = [round(rng.uniform(0.0, 1.0) * 20) / 20 for _ in range(rng.randint(1, 3))]
        kind = rng.choices(
            ["paused", "completed", "crashed", "diverged", "failed"], weights=[6, 1, 1, 1, 1]
        )[0]
        if kind == "diverged":
            new[-1] = math.nan
        state = {
            "paused": TrialState.PRUNED,
            "completed": TrialState.COMPLETE,
            "crashed": TrialState.FAIL,
            "diverged": TrialState.PRUNED,
            "failed": TrialState.FAIL,
        }[kind]
        seg = Seg(
            config,
            old + new,
            start=len(old) + 1,
            parent=parent,
            state=state,
            status=None if kind == "crashed" else kind,
        )
        add_segment(study, seg)
        if kind == "crashed":  # the configuration stays where it was (a new one is lost)
            continue
        curves[config] = old + new
        last_live[config] = number
        if kind == "paused" and config not in paused:
            paused.append(config)
        elif kind != "paused" and config in paused:
            paused.remove(config)
    return study


def brute_force(study: optuna.Study) -> tuple[float, int, int] | None:
    """(value, trial number, step) of the best finite value of a non-crashed trial's own
    steps, the first one in (trial number, step) order on ties."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best: tuple[float, int, int] | None = None
    for t in sorted(study.trials, key=lambda t: t.number):
        crashed = t.state == TrialState.FAIL and t.user_attrs.get("dyhpo_status") != "failed"
        if crashed:
            continue
        start = t.user_attrs["dyhpo_start_epoch"]
        for step in sorted(s for s in t.intermediate_values if s >= start):
            v = t.intermediate_values[step]
            if not math.isfinite(v):
                break
            if best is None or (v > best[0] if maximize else v < best[0]):
                best = (v, t.number, step)
    return best


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_best_configuration_is_the_best_epoch_of_any_live_trial(direction: str) -> None:
    for seed in SEEDS:
        study = random_study(seed, direction)
        expected = brute_force(study)
        if expected is None:
            with pytest.raises(ValueError, match="no epoch with a finite reported value"):
                best_configuration(study)
            continue
        best = best_configuration(study)
        value, number, step = expected
        assert (best.value, best.trial.number, best.epoch) == (value, number, step), seed
        assert best.trial.intermediate_values[best.epoch] == best.value
        assert best.config_id == best.trial.user_attrs["dyhpo_config"]
        assert best.params == best.trial.params
        # The checkpoint is one saved at exactly that epoch by a trial of the configuration.
        saved = {
            t.system_attrs["dyhpo:checkpoint"]["artifact_id"]
            for t in study.trials
            if t.user_attrs["dyhpo_config"] == best.config_id
            and t.system_attrs.get("dyhpo:checkpoint", {}).get("step") == best.epoch
        }
        assert (best.checkpoint in saved) if saved else best.checkpoint is None


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_plot_incumbent_ends_at_best_configuration(direction: str) -> None:
    for seed in SEEDS:
        study = random_study(seed, direction)
        if brute_force(study) is None:
            continue
        best = best_configuration(study)
        fig = plot_incumbent(study)
        (line,) = [t for t in fig.data if t.name == "Best Value"]
        assert line.y[-1] == best.value, seed
        assert f"Trial #{best.trial.number}" in line.text[-1]
        assert f"Configuration's epoch: {best.epoch}" in line.text[-1]


def test_progress_bar_shows_best_configuration() -> None:
    # A crashed continuation holds the best value: the bar must not show it.
    study = optuna.create_study()
    add_segment(study, Seg(0, [0.5, 0.4]))
    add_segment(study, Seg(0, [0.5, 0.4, 0.1], start=3, parent=0, state=TrialState.FAIL,
                           status=None))  # fmt: skip
    add_segment(study, Seg(0, [0.5, 0.4, 0.3], start=3, parent=0))
    assert best_configuration(study).value == 0.3
    bar = StopAfterEpochs(1000, show_progress_bar=True)
    # As inside study.optimize (the bar is drawn for a running optimize call only).
    run = _Run([bar], datetime.datetime.now(), show=True)
    bar._progress(study, run, epochs_spent(study))
    try:
        assert bar._bar.postfix == "best value 0.3"
    finally:
        bar._bar.close()


def test_ties_go_to_the_epoch_spent_first() -> None:
    study = optuna.create_study(direction="maximize")
    add_segment(study, Seg(0, [0.5, 0.9]))
    add_segment(study, Seg(1, [0.9]))
    add_segment(study, Seg(0, [0.5, 0.9, 0.9], start=3, parent=0))
    best = best_configuration(study)
    assert (best.config_id, best.epoch, best.trial.number) == (0, 2, 0)
    assert best.checkpoint == "ckpt-0"  # trial 0 paused at epoch 2 with a checkpoint


def test_trials_of_other_samplers_count_from_their_first_step() -> None:
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(4):  # steps 0..3, best at step 2
            trial.report(abs(step - 2) + x, step)
        return 0.0

    study.optimize(objective, n_trials=3)
    best = best_configuration(study)
    assert best.epoch == 2 and best.trial.intermediate_values[2] == best.value
    assert best.value == min(t.params["x"] for t in study.trials)


def test_best_configuration_rejects_multi_objective_studies() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match="single-objective studies only; this study has 2"):
        best_configuration(study)


def _check_record(study: optuna.Study, best: BestConfiguration) -> None:
    assert study.user_attrs[BEST_KEY] == best.to_dict()
    assert best.to_dict()["trial"] == best.trial.number
    assert set(best.to_dict()) == {"value", "params", "config_id", "epoch", "trial", "checkpoint"}


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_sampler_records_the_best_as_the_race_goes(tmp_path: Path, direction: str) -> None:
    study = make_study(6, tmp_path=tmp_path, direction=direction)
    seen: list[dict[str, object]] = []

    def watch(study: optuna.Study, trial: FrozenTrial) -> None:
        seen.append(dict(study.user_attrs[BEST_KEY]))
        assert study.user_attrs[BEST_KEY] == best_configuration(study).to_dict()

    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(25), watch])
    best = best_configuration(study)
    _check_record(study, best)
    values = [float(s["value"]) for s in seen]  # type: ignore[arg-type]
    assert values == sorted(values, reverse=direction == "minimize")  # only improves
    if best.trial.system_attrs.get("dyhpo:paused_at") == best.epoch:
        saved = best.trial.system_attrs["dyhpo:checkpoint"]["artifact_id"]
        # The checkpoint saved at the best epoch, unless the configuration was resumed and
        # paused again later: then its later checkpoint supersedes that one once the sweep
        # has seen it (see ``BestConfiguration.checkpoint``).
        later = [
            t.system_attrs["dyhpo:checkpoint"]["step"]
            for t in study.trials
            if t.user_attrs.get("dyhpo_config") == best.config_id
            and t.number > best.trial.number
            and "dyhpo:checkpoint" in t.system_attrs
        ]
        if later:
            assert best.checkpoint in (None, saved) and max(later) > best.epoch
        else:
            assert best.checkpoint == saved


def test_a_study_of_paused_trials_only(tmp_path: Path) -> None:
    # max_budget 50 and 12 epochs in all: no configuration can complete.
    study = make_study(50, tmp_path=tmp_path)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(12)])
    assert {t.state for t in study.trials} == {TrialState.PRUNED}
    with pytest.raises(ValueError):
        study.best_trial  # noqa: B018  (Optuna: no COMPLETE trial)
    best = best_configuration(study)
    assert best.status == "paused" and best.checkpoint is not None
    _check_record(study, best)
