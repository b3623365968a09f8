"""DashboardUpdater: what it writes (read back with optuna-dashboard's own readers), its
throttling, and that it never stops a study."""

from __future__ import annotations

import json
import math
from pathlib import Path
import re
from typing import Any
import warnings

import optuna
import optuna_dashboard
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
import pytest

from optuna_dyhpo import DashboardUpdater
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import best_configuration
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
import optuna_dyhpo._dashboard as dashboard_module
from optuna_dyhpo._dashboard_format import FIGURE_CHUNK
from optuna_dyhpo._dashboard_format import save_figure
from optuna_dyhpo._dashboard_format import save_note
from optuna_dyhpo._incumbent import BEST_KEY
from tests.synthetic import make_objective
from tests.synthetic import make_study
from tests.visualization.dyhpo_studies import make_study as hand_made_study

PLOT_IDS = {"plot_race", "plot_learning_curves", "plot_incumbent"}


def _figures(study: optuna.Study) -> dict[str, Any]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {k: json.loads(v) for k, v in get_plotly_graph_objects(attrs).items()}


def _system_attrs(study: optuna.Study) -> dict[str, Any]:
    return study._storage.get_study_system_attrs(study._study_id)


# ------------------------------------------------------------------ optuna-dashboard's format
@pytest.mark.parametrize("storage", [None, "sqlite"])
def test_format_reads_back_with_optuna_dashboard(tmp_path: Path, storage: str | None) -> None:
    url = None if storage is None else f"sqlite:///{tmp_path / 'db.sqlite'}"
    study = optuna.create_study(storage=url)
    long = "x" * (2 * FIGURE_CHUNK + 17)
    for body in ["## note\n" + "é" * 5000, "short", ""]:
        save_note(study, body, _system_attrs(study))
        assert optuna_dashboard.get_note(study) == body
    optuna_dashboard.save_note(study, "y" * 9000)  # the dashboard's own write, then ours
    save_note(study, "mine", _system_attrs(study))
    assert optuna_dashboard.get_note(study) == "mine"
    for text in [long, '{"a": 1}', long[:FIGURE_CHUNK]]:
        save_figure(study, "plot_race", text, _system_attrs(study))
        attrs = _system_attrs(study)
        assert get_plotly_graph_objects(attrs)["plot_race"] == text
    # A figure saved by optuna-dashboard itself (2,045-character chunks) is replaced cleanly.
    import plotly.graph_objects as go

    fig = go.Figure(data=[go.Scatter(x=list(range(3000)), y=list(range(3000)))])
    optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id="plot_race")
    save_figure(study, "plot_race", '{"b": 2}', _system_attrs(study))
    assert get_plotly_graph_objects(_system_attrs(study))["plot_race"] == '{"b": 2}'


# ------------------------------------------------------------------------------ the content
def test_update_writes_plots_note_and_best(tmp_path: Path) -> None:
    study = make_study(6, tmp_path=tmp_path, storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    updater = DashboardUpdater(n_epochs=30, target_name="accuracy")
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(30), updater])
    assert updater.n_updates >= 2  # the first call and the one after study.stop()

    figures = _figures(study)
    assert set(figures) == PLOT_IDS
    assert figures["plot_incumbent"]["layout"]["title"]["text"] == "DyHPO Anytime Incumbent"
    best = best_configuration(study)
    assert figures["plot_incumbent"]["data"][-1]["y"][-1] == best.value
    assert study.user_attrs[BEST_KEY] == best.to_dict()

    note = optuna_dashboard.get_note(study)
    configs = get_configurations(study)
    spent = epochs_spent(study)
    assert f"**Epochs spent:** {spent} of 30 ({100 * spent / 30:.0f} %)" in note
    n_paused = sum(c.status == "paused" for c in configs)
    assert f"**Configurations:** {len(configs)}: " in note
    assert f"{n_paused} paused" in note
    trials = study.trials
    paused_trials = sum(t.user_attrs.get("dyhpo_status") == "paused" for t in trials)
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    assert f"**Shown as Pruned:** {pruned} trials: {paused_trials} **paused**" in note
    resumes = sum(t.user_attrs.get("dyhpo_continues_trial") is not None for t in trials)
    assert f"**Trials:** {len(trials)}, of which {resumes} resume" in note
    assert (
        f"**accuracy {best.value:.6g}** at epoch {best.epoch} of configuration "
        f"{best.config_id} (trial {best.trial.number}; configuration {best.status}"
    ) in note
    # The top table is ordered best first.
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (\d+) \| ([-\d.e]+) \|", note, flags=re.M)
    values = [float(r[3]) for r in rows]
    assert rows and values == sorted(values, reverse=True)
    assert int(rows[0][0]) == best.config_id
    paused_latest = {c.trial_numbers[-1] for c in configs if c.status == "paused"}
    for number in sorted(paused_latest)[:30]:
        assert f"#{number}" in note.split("**Paused**")[1]


def test_note_without_values_and_without_plots() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: 0.0, n_trials=2)  # no epochs reported
    updater = DashboardUpdater(plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        updater.update(study)
    note = optuna_dashboard.get_note(study)
    assert "**Epochs spent:** 0\n" in note and "No finite value reported yet." in note
    assert _figures(study) == {} and BEST_KEY not in study.user_attrs


def test_minimising_study_ranks_lowest_first() -> None:
    study = hand_made_study("minimize")
    DashboardUpdater(min_interval_seconds=0).update(study)
    note = optuna_dashboard.get_note(study)
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (\d+) \| ([-\d.e]+) \|", note, flags=re.M)
    assert [int(r[0]) for r in rows] == [0, 1, 2]  # best values 0.3, 0.45, 0.95
    assert set(_figures(study)) == PLOT_IDS


# ------------------------------------------------------------------------------ throttling
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fake_run(
    monkeypatch: pytest.MonkeyPatch, updater_kwargs: dict[str, Any], n_calls: int, cost: float
) -> tuple[DashboardUpdater, list[float], _Clock]:
    """Call an updater ``n_calls`` times, one simulated second and one epoch apart, each
    update costing ``cost`` simulated seconds; returns the update times."""
    clock = _Clock()
    monkeypatch.setattr(dashboard_module.time, "perf_counter", clock)
    updater = DashboardUpdater(plots=False, **updater_kwargs)
    times: list[float] = []
    real = dashboard_module.save_note

    def slow_save_note(study: optuna.Study, body: str, existing: dict[str, Any]) -> None:
        times.append(clock.now)
        clock.now += cost
        real(study, body, existing)

    monkeypatch.setattr(dashboard_module, "save_note", slow_save_note)
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        trial.report(0.5, 1)  # one epoch per trial
        return 0.0

    for _ in range(n_calls):
        study.optimize(objective, n_trials=1)
        clock.now += 1.0
        updater(study, study.trials[-1])
    return updater, times, clock


@pytest.mark.parametrize(("every_n_epochs", "min_interval", "gap"), [(5, 0.0, 5), (1, 12.0, 12)])
def test_throttle_by_epochs_and_interval(
    monkeypatch: pytest.MonkeyPatch, every_n_epochs: int, min_interval: float, gap: int
) -> None:
    kwargs = {
        "every_n_epochs": every_n_epochs,
        "min_interval_seconds": min_interval,
        "max_overhead": 1.0,
    }
    updater, times, _ = _fake_run(monkeypatch, kwargs, 60, cost=0.0)
    assert times[0] == 1001.0  # the first call updates
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]  # one epoch per second
    assert gaps and all(g == gap for g in gaps)
    assert len(times) == updater.n_updates


def test_throttle_keeps_the_overhead_share(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {"every_n_epochs": 1, "min_interval_seconds": 0.0, "max_overhead": 0.02}
    cost = 0.5
    updater, times, clock = _fake_run(monkeypatch, kwargs, 400, cost=cost)
    assert len(times) >= 10  # it does update, about every cost / max_overhead seconds
    # Apart from the first update, the time spent never exceeds the share of the time since
    # the updater was created (1000.0 on the fake clock).
    assert updater.seconds == pytest.approx(cost * len(times))
    assert updater.seconds <= 0.02 * (clock.now - 1000.0) + cost
    for k, t in enumerate(times[1:], start=1):  # k updates made, one more to come
        assert (k + 1) * cost <= 0.02 * (t - 1000.0) + 1e-9


def test_stop_forces_a_final_update(tmp_path: Path) -> None:
    study = make_study(6, tmp_path=tmp_path)
    updater = DashboardUpdater(min_interval_seconds=1e9, plots=False)
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(15), updater])
    assert updater.n_updates == 2  # the first call and the one after study.stop()
    spent = epochs_spent(study)
    assert f"**Epochs spent:** {spent}\n" in optuna_dashboard.get_note(study)
    assert updater.seconds > 0


def test_an_error_never_stops_the_study(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(dashboard_module, "render_note", broken)
    study = make_study(6, tmp_path=tmp_path)
    updater = DashboardUpdater(min_interval_seconds=0, every_n_epochs=1, plots=False)
    with pytest.warns(DyHPOWarning, match="could not update the study: OSError") as record:
        study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(10), updater])
    assert epochs_spent(study) >= 10
    assert sum(issubclass(w.category, DyHPOWarning) for w in record) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every_n_epochs": 0}, "`every_n_epochs` must be an integer >= 1, but got 0"),
        ({"min_interval_seconds": -1}, "`min_interval_seconds` must be a number >= 0, but got -1"),
        ({"max_overhead": 0}, r"`max_overhead` must be a number in \(0, 1\], but got 0"),
        ({"max_overhead": 1.5}, r"`max_overhead` must be a number in \(0, 1\], but got 1.5"),
        ({"max_overhead": math.nan}, r"`max_overhead` must be a number in \(0, 1\], but got nan"),
        ({"n_epochs": 0}, "`n_epochs` must be an integer >= 1 or None, but got 0"),
        ({"target_name": 3}, "`target_name` must be a str, but got 3"),
        ({"plots": "yes"}, "`plots` must be True or False, but got 'yes'"),
    ],
)
def test_arguments_are_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DashboardUpdater(**kwargs)
