from __future__ import annotations

from itertools import pairwise
import json
import math
from pathlib import Path
import re
import subprocess
import sys

import optuna
from optuna.trial import TrialState
import pytest

from optuna_dyhpo.visualization import plot_incumbent
from optuna_dyhpo.visualization import plot_learning_curves
from optuna_dyhpo.visualization import plot_race
from tests.visualization.dyhpo_studies import DISTRIBUTIONS
from tests.visualization.dyhpo_studies import EPOCHS
from tests.visualization.dyhpo_studies import INCUMBENT_MAXIMIZE
from tests.visualization.dyhpo_studies import INCUMBENT_MINIMIZE
from tests.visualization.dyhpo_studies import SCHEDULE
from tests.visualization.dyhpo_studies import Seg
from tests.visualization.dyhpo_studies import make_study
from tests.visualization.dyhpo_studies import require_png_export
from tests.visualization.dyhpo_studies import simulate_study
from tests.visualization.dyhpo_studies import to_png

optuna.logging.set_verbosity(optuna.logging.WARNING)

REPO = Path(__file__).resolve().parents[2]


def _trace(fig: object, name: str) -> object:
    matches = [t for t in fig.data if t.name == name]  # type: ignore[attr-defined]
    assert len(matches) == 1, [t.name for t in fig.data]  # type: ignore[attr-defined]
    return matches[0]


def _luminance(color: str) -> float:
    r, g, b = (float(x) for x in re.findall(r"[\d.]+", color)[:3])
    return 0.299 * r + 0.587 * g + 0.114 * b


# ---------------------------------------------------------------- race


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_race_has_one_point_per_epoch_in_order(direction: str) -> None:
    fig = plot_race(make_study(direction))
    epochs = _trace(fig, "Epoch")
    assert list(epochs.x) == list(range(1, len(EPOCHS) + 1))
    assert list(epochs.y) == [c for c, _, _ in EPOCHS]
    assert list(epochs.marker.color) == pytest.approx([v for _, _, v in EPOCHS])
    # Colour: darker = better, so the scale is reversed only when minimising.
    assert epochs.marker.reversescale is (direction == "minimize")
    assert "Trial #3 (continues #1)" in epochs.text[6]
    assert "lr: 0.01" in epochs.text[6]
    assert fig.layout.xaxis.title.text == "Epochs spent (in order)"
    assert list(fig.layout.yaxis.categoryarray) == [0, 1, 2]


def test_race_marks_segment_boundaries() -> None:
    fig = plot_race(make_study())
    paused = _trace(fig, "Paused")
    resumed = _trace(fig, "Resumed")
    # Trials 0, 1, 2 and 3 were paused after their last epoch (global epochs 2, 4, 6, 8).
    assert sorted(zip(paused.x, paused.y, strict=True)) == [(2, 0), (4, 1), (6, 2), (8, 1)]
    # Trials 3 and 4 resumed configurations 1 and 0 at global epochs 7 and 9.
    assert sorted(zip(resumed.x, resumed.y, strict=True)) == [(7, 1), (9, 0)]


def test_race_counts_running_failed_and_plain_trials_but_not_waiting() -> None:
    schedule = [
        *SCHEDULE,
        # config 2 resumed and still running: 1 new epoch so far
        Seg(2, [1.0, 0.95, 0.9], start=3, parent=2, state=TrialState.RUNNING, status=None),
    ]
    study = make_study(schedule=schedule)
    # A trial without any DyHPO attrs (e.g. another sampler): its own configuration.
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.FAIL,
            params={"lr": 0.2, "wd": 0.0},
            distributions=DISTRIBUTIONS,
            intermediate_values={1: 2.0, 2: 1.5},
        )
    )
    study.enqueue_trial({"lr": 0.3, "wd": 0.02})  # WAITING: spent nothing
    fig = plot_race(study)
    epochs = _trace(fig, "Epoch")
    assert len(epochs.x) == len(EPOCHS) + 1 + 2
    assert list(epochs.y[-3:]) == [2, 6, 6]
    assert list(fig.layout.yaxis.categoryarray) == [0, 1, 2, 6]
    resumed = _trace(fig, "Resumed")
    assert (11, 2) in set(zip(resumed.x, resumed.y, strict=True))


def test_race_reads_user_attrs_when_system_attrs_are_missing() -> None:
    fig = plot_race(make_study(user_attrs_only=True))
    epochs = _trace(fig, "Epoch")
    assert list(epochs.y) == [c for c, _, _ in EPOCHS]
    resumed = _trace(fig, "Resumed")
    assert sorted(zip(resumed.x, resumed.y, strict=True)) == [(7, 1), (9, 0)]


@pytest.mark.skipif(
    not hasattr(__import__("optuna_dyhpo"), "epochs_spent"), reason="core not built yet"
)
def test_race_agrees_with_core_epochs_spent() -> None:
    import optuna_dyhpo

    study = make_study()
    assert len(_trace(plot_race(study), "Epoch").x) == optuna_dyhpo.epochs_spent(study)


@pytest.mark.parametrize(
    ("direction", "top", "faded"), [("minimize", [0, 1], [2]), ("maximize", [0, 2], [1])]
)
def test_top_k_splits_the_hand_built_study(
    direction: str, top: list[int], faded: list[int]
) -> None:
    """Best values: minimising 0.3, 0.45, 0.95; maximising 0.9, 0.8, 1.0 (configs 0, 1, 2)."""
    study = make_study(direction)
    race = plot_race(study, top_k=2)
    assert list(race.layout.yaxis.categoryarray) == top
    assert list(race.layout.yaxis.tickvals) == top
    assert list(race.layout.yaxis2.categoryarray) == faded
    assert set(_trace(race, "Epoch").y) == set(top)
    rest = _trace(race, "Epoch, other configurations")
    assert list(rest.x) == [i + 1 for i, (c, _, _) in enumerate(EPOCHS) if c in faded]
    assert rest.yaxis == "y2" and rest.showlegend is False

    curves = plot_learning_curves(study, top_k=2)
    assert {t.name for t in curves.data} == {
        "Other configurations",
        *(f"Configuration {c}" for c in top),
    }
    other = _trace(curves, "Other configurations")
    assert list(other.y) == [v for c, _, v in EPOCHS if c in faded]
    assert other.showlegend is False
    # Legend best first.
    named = sorted(
        (t for t in curves.data if t.showlegend is not False), key=lambda t: t.legendrank
    )
    best_first = top if direction == "minimize" else top[::-1]
    assert [t.name for t in named] == [f"Configuration {c}" for c in best_first]

    incumbent = plot_incumbent(study, top_k=2)
    highlighted = _trace(incumbent, "Objective Value (top 2)")
    assert list(highlighted.y) == pytest.approx([v for c, _, v in EPOCHS if c in top])
    assert list(_trace(incumbent, "Other configurations").y) == pytest.approx(
        [v for c, _, v in EPOCHS if c in faded]
    )
    expected = INCUMBENT_MINIMIZE if direction == "minimize" else INCUMBENT_MAXIMIZE
    assert list(_trace(incumbent, "Best Value").y) == pytest.approx(expected)


def test_race_labels_every_row_of_a_small_study_and_marks_the_best() -> None:
    fig = plot_race(make_study("minimize"))
    axis = fig.layout.yaxis
    assert axis.tickmode == "array"
    assert list(axis.tickvals) == [0, 1, 2]
    assert list(axis.ticktext) == ["<b>0 (best)</b>", "1", "2"]
    assert "yaxis2" not in fig.layout.to_plotly_json()


# ---------------------------------------------------------------- learning curves


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_learning_curves_one_trace_per_configuration(direction: str) -> None:
    fig = plot_learning_curves(make_study(direction))
    assert len(fig.data) == 3
    curves = {t.name: (list(t.x), list(t.y)) for t in fig.data}
    # Whole curves, joined across paused and resumed trials.
    assert curves["Configuration 0"] == ([1, 2, 3, 4], [0.9, 0.7, 0.4, 0.3])
    assert curves["Configuration 1"] == ([1, 2, 3, 4], [0.8, 0.5, 0.45, 0.6])
    assert curves["Configuration 2"] == ([1, 2], [1.0, 0.95])
    best = {t.name: t.marker.color[0] for t in fig.data}
    if direction == "minimize":
        assert best == {"Configuration 0": 0.3, "Configuration 1": 0.45, "Configuration 2": 0.95}
    else:
        assert best == {"Configuration 0": 0.9, "Configuration 1": 0.8, "Configuration 2": 1.0}
    # Darker line = better configuration, whatever the direction.
    lum = {t.name: _luminance(t.line.color) for t in fig.data}
    if direction == "minimize":
        assert lum["Configuration 0"] < lum["Configuration 1"] < lum["Configuration 2"]
    else:
        assert lum["Configuration 2"] < lum["Configuration 0"] < lum["Configuration 1"]
    assert fig.layout.coloraxis.colorbar.title.text == "Best Objective Value"
    # The first epoch of each resumed trial is marked.
    c0 = next(t for t in fig.data if t.name == "Configuration 0")
    assert list(c0.marker.symbol) == ["circle", "circle", "triangle-right", "circle"]
    assert "Trial #4 (continues #0)" in c0.text[2]


def _strict_json(text: str) -> object:
    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=reject)


def test_learning_curves_keep_a_diverged_configuration() -> None:
    schedule = [*SCHEDULE, Seg(5, [2.0, math.nan], state=TrialState.PRUNED, status="diverged")]
    fig = plot_learning_curves(make_study(schedule=schedule))
    assert len(fig.data) == 4
    diverged = next(t for t in fig.data if t.name == "Configuration 5")
    assert diverged.marker.color[0] == 2.0  # best finite value
    assert "(diverged)" in diverged.text[0]
    _strict_json(fig.to_json())


# ---------------------------------------------------------------- incumbent


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("minimize", INCUMBENT_MINIMIZE), ("maximize", INCUMBENT_MAXIMIZE)],
)
def test_incumbent_matches_hand_computed_trajectory(direction: str, expected: list[float]) -> None:
    fig = plot_incumbent(make_study(direction))
    best = _trace(fig, "Best Value")
    assert list(best.x) == list(range(1, 11))  # copied steps of trials 3 and 4 not counted
    assert list(best.y) == pytest.approx(expected)
    ys = list(best.y)
    if direction == "minimize":
        assert all(a >= b for a, b in pairwise(ys))
    else:
        assert all(a <= b for a, b in pairwise(ys))
    observed = _trace(fig, "Objective Value")
    assert list(observed.y) == pytest.approx([v for _, _, v in EPOCHS])
    holder = "Configuration 0<br>Trial #4" if direction == "minimize" else "Configuration 2"
    assert f"held by {holder}" in best.text[-1]


def test_incumbent_ignores_non_finite_values_but_counts_their_epochs() -> None:
    schedule = [Seg(0, [math.nan, 3.0]), Seg(1, [2.0, math.inf]), Seg(2, [2.5])]
    fig = plot_incumbent(make_study("minimize", schedule))
    best = _trace(fig, "Best Value")
    assert list(best.x) == [2, 3, 4, 5]  # epoch 1 (NaN) has no incumbent yet
    assert list(best.y) == [3.0, 2.0, 2.0, 2.0]


def test_race_keeps_epochs_with_non_finite_values() -> None:
    schedule = [Seg(0, [math.nan, 3.0]), Seg(1, [2.0, math.inf]), Seg(2, [2.5])]
    fig = plot_race(make_study("minimize", schedule))
    epochs = _trace(fig, "Epoch")
    assert list(epochs.y) == [0, 0, 1, 1, 2]
    assert [math.isnan(c) for c in epochs.marker.color] == [True, False, False, True, False]
    bad = _trace(fig, "NaN/inf value")
    assert list(bad.x) == [1, 4]
    _strict_json(fig.to_json())  # the dashboard's JSON.parse rejects NaN/Infinity


# ---------------------------------------------------------------- general


@pytest.mark.parametrize("plot", [plot_race, plot_learning_curves, plot_incumbent])
def test_empty_study_gives_empty_figure(plot: object) -> None:
    fig = plot(optuna.create_study())  # type: ignore[operator]
    assert len(fig.data) == 0
    assert fig.layout.title.text


def test_multi_objective_study_is_rejected() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    with pytest.raises(ValueError, match="single-objective"):
        plot_race(study)


def test_importing_does_not_import_plotly() -> None:
    code = (
        "import sys, optuna_dyhpo.visualization\n"
        "assert 'plotly' not in sys.modules, 'plotly imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_missing_plotly_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(ImportError, match="pip install plotly"):
        plot_race(make_study())


def test_figures_save_to_html_and_dashboard(tmp_path: Path) -> None:
    import optuna_dashboard

    study = make_study(storage=f"sqlite:///{tmp_path / 'd.db'}")
    fig = plot_race(study)
    fig.write_html(tmp_path / "race.html")
    assert "Epochs spent (in order)" in (tmp_path / "race.html").read_text()
    graph_id = optuna_dashboard.save_plotly_graph_object(study, plot_incumbent(study))
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any(graph_id in key for key in attrs)


def test_figure_saves_to_png(tmp_path: Path) -> None:
    require_png_export()
    out = tmp_path / "curves.png"
    out.write_bytes(to_png(plot_learning_curves(make_study()), width=700, height=450))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_plots_agree_with_the_raw_trials_of_a_simulated_study(direction: str) -> None:
    study = simulate_study(50, n_configs=9, max_budget=8, seed=7, direction=direction)
    trials = study.get_trials(deepcopy=False)
    configs = {t.user_attrs["dyhpo_config"] for t in trials}
    spent = sum(
        len(t.intermediate_values) - (t.user_attrs["dyhpo_start_epoch"] - 1) for t in trials
    )
    assert spent == 50
    assert any(t.user_attrs["dyhpo_continues_trial"] is not None for t in trials)

    race = plot_race(study)
    assert len(_trace(race, "Epoch").x) == spent
    assert set(_trace(race, "Epoch").y) == configs

    curves = plot_learning_curves(study)
    assert len(curves.data) == len(configs)
    for trace in curves.data:
        cid = int(trace.name.split()[-1])
        longest = max(
            (t for t in trials if t.user_attrs["dyhpo_config"] == cid),
            key=lambda t: len(t.intermediate_values),
        )
        assert list(trace.y) == [longest.intermediate_values[s] for s in trace.x]

    best = list(_trace(plot_incumbent(study), "Best Value").y)
    assert len(best) == spent
    values = [v for t in trials for v in t.intermediate_values.values()]
    assert best[-1] == (min(values) if direction == "minimize" else max(values))
    steps = list(pairwise(best))
    assert all((a >= b) if direction == "minimize" else (a <= b) for a, b in steps)


def test_plots_of_a_real_dyhpo_study(tmp_path: Path) -> None:
    """End to end with the core: DyHPOSampler + DyHPOPruner + TrialResume checkpoints."""
    from optuna.artifacts import FileSystemArtifactStore

    import optuna_dyhpo

    store = FileSystemArtifactStore(str(tmp_path))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        resume = optuna_dyhpo.TrialResume(trial, artifact_store=store)
        resume.load()
        value = 0.0
        for epoch in resume.steps():
            value = (1.0 - (x - 0.7) ** 2) * (1.0 - math.exp(-0.8 * epoch))
            trial.report(value, epoch)
            if trial.should_prune():
                resume.save({"epoch": epoch})
                raise optuna.TrialPruned()
        return value

    sampler = optuna_dyhpo.DyHPOSampler(
        max_budget=4, seed=1, n_startup_configs=3, artifact_store=store
    )
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=optuna_dyhpo.DyHPOPruner()
    )
    study.optimize(objective, callbacks=[optuna_dyhpo.StopAfterEpochs(14)], n_trials=40)
    configs = optuna_dyhpo.get_configurations(study)
    assert any(len(c.trial_numbers) > 1 for c in configs), "no configuration was resumed"

    epochs = _trace(plot_race(study, top_k=None), "Epoch")
    assert len(epochs.x) == optuna_dyhpo.epochs_spent(study)
    curves = {t.name: t for t in plot_learning_curves(study, top_k=None).data}
    assert len(curves) == len(configs)
    for c in configs:
        trace = curves[f"Configuration {c.config_id}"]
        assert list(trace.y) == pytest.approx(c.curve)
        assert f"({c.status})" in trace.text[0]
        # The legend lists each configuration under its status (paused is not pruned).
        assert trace.legendgroup == c.status
        assert trace.legendgrouptitle.text == c.status.replace("_", " ")
    best = list(_trace(plot_incumbent(study), "Best Value").y)
    assert best[-1] == pytest.approx(max(max(c.curve) for c in configs))
