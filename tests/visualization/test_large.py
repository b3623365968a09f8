"""The plots read at 300 configurations: top-k highlighted, the rest faded, robust y ranges.

The studies are synthetic and DyHPO-like (:func:`crowded_study`: 300 configurations, a few
dozen resumed, a few blowing up or diverging), for several seeds and both directions; every
assertion is a property checked against the raw trials, never a recorded trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
import functools
import math
import re
import struct
import time
from typing import Any

import numpy as np
import optuna
import pytest

from optuna_dyhpo.visualization import plot_incumbent
from optuna_dyhpo.visualization import plot_learning_curves
from optuna_dyhpo.visualization import plot_race
from tests.visualization.dyhpo_studies import crowded_study
from tests.visualization.dyhpo_studies import require_png_export
from tests.visualization.dyhpo_studies import to_png

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_CONFIGS = 300
TOP_K = 10
CLIP = 0.02
BUILD_BUDGET_S = 5.0  # the bound for building the three figures
STUDIES = [("minimize", 0), ("maximize", 1), ("minimize", 2), ("maximize", 3)]
PLOTS = [plot_race, plot_learning_curves, plot_incumbent]
# A labelled row of the race must be at least this tall (px) for an 11-12 px tick label.
MIN_LABEL_PITCH_PX = 16


@functools.cache
def _study(direction: str, seed: int) -> optuna.Study:
    return crowded_study(N_CONFIGS, seed=seed, direction=direction)


def _configs(study: optuna.Study) -> dict[int, dict[int, float]]:
    """Configuration id -> whole curve, from the raw trials (a later trial wins a step)."""
    curves: dict[int, dict[int, float]] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        curves.setdefault(t.user_attrs["dyhpo_config"], {}).update(t.intermediate_values)
    return curves


def _finite_prefix(curve: dict[int, float]) -> int:
    n = 0
    for step in sorted(curve):
        if not math.isfinite(curve[step]):
            break
        n += 1
    return n


def _best(curve: dict[int, float], maximize: bool) -> float | None:
    finite = [v for v in curve.values() if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if maximize else min(finite)


def _top(study: optuna.Study, k: int) -> list[int]:
    """The k best configurations by best finite value (ties: lower id), computed independently."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    scored = [(_best(c, maximize), cid) for cid, c in _configs(study).items()]
    ranked = sorted(((-b if maximize else b), cid) for b, cid in scored if b is not None)
    return [cid for _, cid in ranked[:k]]


def _epoch_values(study: optuna.Study) -> list[float]:
    """Every epoch's value, copied steps of continuations excluded."""
    return [
        v
        for t in study.get_trials(deepcopy=False)
        for step, v in t.intermediate_values.items()
        if step >= t.user_attrs["dyhpo_start_epoch"]
    ]


def _legend_entries(fig: Any) -> list[str]:
    shown = [t for t in fig.data if t.showlegend is not False]
    return [t.name for t in shown if fig.layout.showlegend is not False]


def _faded(trace: Any) -> bool:
    """A trace drawn in translucent grey."""
    colors = [trace.line.color, trace.marker.color]
    colors = [c for c in colors if isinstance(c, str)]
    assert colors, trace.name
    for c in colors:
        m = re.fullmatch(r"rgba\((\d+),(\d+),(\d+),([\d.]+)\)", c.replace(" ", ""))
        assert m, c
        r, g, b, a = (float(x) for x in m.groups())
        if not (max(r, g, b) - min(r, g, b) < 10 and a <= 0.5):
            return False
    return True


def _check_robust_range(y_range: tuple[float, float], values: list[float], maximize: bool) -> None:
    """The y range holds the best value and all but at most the worst ``CLIP`` of the values,
    and is no wider than the nearest-rank quantile span plus a 5% margin on each side."""
    finite = np.array([v for v in values if math.isfinite(v)])
    lo, hi = y_range
    best = finite.max() if maximize else finite.min()
    assert lo < best < hi
    inside = ((finite >= lo) & (finite <= hi)).mean()
    assert inside >= 1.0 - CLIP
    if maximize:
        q = float(np.quantile(finite, CLIP, method="lower"))
        span = best - q
        assert lo >= q - 0.05 * span - 1e-9 and hi <= best + 0.05 * span + 1e-9
    else:
        q = float(np.quantile(finite, 1.0 - CLIP, method="higher"))
        span = q - best
        assert hi <= q + 0.05 * span + 1e-9 and lo >= best - 0.05 * span - 1e-9
    # The study's blown-up runs are left out: the full range would be many times wider.
    assert finite.max() - finite.min() > 5 * (hi - lo)


# ---------------------------------------------------------------- the study itself


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
def test_crowded_study_has_300_configurations_some_resumed(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    trials = study.get_trials(deepcopy=False)
    assert len(_configs(study)) == N_CONFIGS
    resumed = {
        t.user_attrs["dyhpo_config"]
        for t in trials
        if t.user_attrs["dyhpo_continues_trial"] is not None
    }
    assert len(resumed) >= 15


# ---------------------------------------------------------------- speed


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
def test_three_plots_build_under_5_s_at_300_configurations(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    start = time.perf_counter()
    figures = [plot(study) for plot in PLOTS]
    elapsed = time.perf_counter() - start
    assert elapsed < BUILD_BUDGET_S, f"{elapsed:.2f} s"
    assert all(len(f.data) > 0 for f in figures)


# ---------------------------------------------------------------- learning curves


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
@pytest.mark.parametrize("top_k", [1, 5, TOP_K, 25])
def test_learning_curves_highlight_the_top_k_and_fade_the_rest(
    direction: str, seed: int, top_k: int
) -> None:
    study = _study(direction, seed)
    fig = plot_learning_curves(study, top_k=top_k)
    top = _top(study, top_k)
    named = {t.name for t in fig.data if t.name != "Other configurations"}
    assert named == {f"Configuration {cid}" for cid in top}
    legend = _legend_entries(fig)
    assert sorted(legend) == sorted(named) and len(legend) <= top_k
    # Legend best first.
    by_name = {t.name: t for t in fig.data}
    assert sorted(legend, key=lambda n: by_name[n].legendrank) == [
        f"Configuration {cid}" for cid in top
    ]
    # The rest: one faint grey thin trace without a legend entry, holding every other curve.
    (rest,) = [t for t in fig.data if t.name == "Other configurations"]
    assert rest.showlegend is False and _faded(rest)
    assert rest.line.width < min(by_name[n].line.width for n in named)
    # A curve is its finite prefix (a diverged configuration's NaN ends it).
    prefixes = {cid: _finite_prefix(c) for cid, c in _configs(study).items()}
    others = {cid: n for cid, n in prefixes.items() if cid not in top and n}
    assert sum(x is not None for x in rest.x) == sum(others.values())
    # ... and hoverable: each point names its configuration.
    texts = [s for s in rest.text if s is not None]
    assert {int(s.split("<br>")[0].split()[1]) for s in texts} == set(others)


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
def test_learning_curves_y_range_from_robust_quantiles(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    fig = plot_learning_curves(study, top_k=TOP_K, clip_quantile=CLIP)
    values = [v for c in _configs(study).values() for v in c.values()]
    y_range = tuple(fig.layout.yaxis.range)
    _check_robust_range(y_range, values, direction == "maximize")
    n_out = sum(1 for v in values if math.isfinite(v) and not y_range[0] <= v <= y_range[1])
    (note,) = fig.layout.annotations
    assert note.text.startswith(f"{n_out} values outside the y range")


# ---------------------------------------------------------------- race


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
@pytest.mark.parametrize("top_k", [1, 5, TOP_K, 25])
def test_race_labels_every_highlighted_configuration(
    direction: str, seed: int, top_k: int
) -> None:
    study = _study(direction, seed)
    fig = plot_race(study, top_k=top_k)
    top = sorted(_top(study, top_k))
    ya = fig.layout.yaxis
    # Rows of the highlighted configurations, in id order, every one with an explicit label.
    assert list(ya.categoryarray) == top
    assert ya.tickmode == "array" and list(ya.tickvals) == top
    assert len(ya.ticktext) == len(top)
    assert all(re.search(rf"\b{cid}\b", text) for cid, text in zip(top, ya.ticktext, strict=True))
    # Each labelled row is tall enough for its label (so none overlap).
    margin = fig.layout.margin
    plot_px = fig.layout.height - margin.t - margin.b
    pitch = (ya.domain[1] - ya.domain[0]) * plot_px / len(top)
    assert pitch >= MIN_LABEL_PITCH_PX
    # The other raced configurations: an unlabelled panel below, of bounded height.
    y2 = fig.layout.yaxis2
    raced = {c for c, curve in _configs(study).items()} - set(top)
    assert set(y2.categoryarray) == raced and y2.showticklabels is False
    assert y2.domain[1] < ya.domain[0]
    assert fig.layout.height <= 110 + 80 + 22 * top_k + 36 + 420
    # One marker per epoch spent, split between the two panels; the rest faint and hoverable.
    epochs = next(t for t in fig.data if t.name == "Epoch")
    rest = next(t for t in fig.data if t.name == "Epoch, other configurations")
    assert set(epochs.y) == set(top) and set(rest.y) == raced
    assert len(epochs.x) + len(rest.x) == len(_epoch_values(study))
    assert sorted([*epochs.x, *rest.x]) == list(range(1, len(_epoch_values(study)) + 1))
    assert rest.yaxis == "y2" and rest.showlegend is False and _faded(rest)
    assert all(
        s.split("<br>")[0].split()[1] == str(cid) for cid, s in zip(rest.y, rest.text, strict=True)
    )
    assert len(_legend_entries(fig)) <= 3  # Paused, Resumed, NaN/inf value


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
def test_race_colour_range_is_robust(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    marker = next(t for t in plot_race(study).data if t.name == "Epoch").marker
    values = _epoch_values(study)
    finite = sorted(v for v in values if math.isfinite(v))
    best = finite[-1] if direction == "maximize" else finite[0]
    assert marker.cmin <= best <= marker.cmax
    inside = sum(marker.cmin <= v <= marker.cmax for v in finite) / len(finite)
    assert 1.0 - CLIP <= inside < 1.0


# ---------------------------------------------------------------- incumbent


@pytest.mark.parametrize(("direction", "seed"), STUDIES)
def test_incumbent_highlights_the_top_k_with_a_robust_y_range(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    fig = plot_incumbent(study, top_k=TOP_K)
    values = _epoch_values(study)
    maximize = direction == "maximize"
    top = _top(study, TOP_K)
    highlighted = next(t for t in fig.data if t.name == f"Objective Value (top {TOP_K})")
    rest = next(t for t in fig.data if t.name == "Other configurations")
    best = next(t for t in fig.data if t.name == "Best Value")
    assert rest.showlegend is False and _faded(rest)
    assert sorted(_legend_entries(fig)) == sorted([highlighted.name, "Best Value"])
    assert {int(s.split("<br>")[0].split()[1]) for s in highlighted.text} == set(top)
    assert len(highlighted.x) + len(rest.x) == sum(math.isfinite(v) for v in values)
    finite = [v for v in values if math.isfinite(v)]
    assert best.y[-1] == (max(finite) if maximize else min(finite))
    _check_robust_range(tuple(fig.layout.yaxis.range), values, maximize)


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("plot", PLOTS)
def test_top_k_none_and_clip_quantile_zero_show_everything(plot: Callable[..., Any]) -> None:
    study = crowded_study(40, seed=5)
    fig = plot(study, top_k=None, clip_quantile=0.0)
    names = [t.name for t in fig.data]
    assert not any("other" in n.lower() for n in names), names
    if plot is plot_race:
        assert "yaxis2" not in fig.layout.to_plotly_json()  # a single panel
        assert len(fig.layout.yaxis.tickvals) == 40
    else:
        values = [v for v in _epoch_values(study) if math.isfinite(v)]
        lo, hi = fig.layout.yaxis.range
        assert lo < min(values) and max(values) < hi
        assert not fig.layout.annotations
    if plot is plot_learning_curves:
        assert len(fig.data) == 40


@pytest.mark.parametrize("plot", PLOTS)
@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"top_k": 0}, ValueError, ["top_k", "positive int or None", "got 0"]),
        ({"top_k": -3}, ValueError, ["top_k", "positive int or None", "got -3"]),
        ({"top_k": 2.5}, TypeError, ["top_k", "positive int or None", "got 2.5"]),
        ({"top_k": True}, TypeError, ["top_k", "positive int or None", "got True"]),
        ({"top_k": "10"}, TypeError, ["top_k", "positive int or None", "got '10'"]),
        ({"clip_quantile": 0.5}, ValueError, ["clip_quantile", "[0, 0.5)", "got 0.5"]),
        ({"clip_quantile": -0.01}, ValueError, ["clip_quantile", "[0, 0.5)", "got -0.01"]),
        ({"clip_quantile": math.nan}, ValueError, ["clip_quantile", "[0, 0.5)", "got nan"]),
        ({"clip_quantile": "0.1"}, TypeError, ["clip_quantile", "[0, 0.5)", "got '0.1'"]),
    ],
)
def test_invalid_arguments_are_rejected(
    plot: Callable[..., Any], kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        plot(optuna.create_study(), **kwargs)
    for word in words:
        assert word in str(info.value)


def test_curves_colour_bar_falls_back_below_the_plot_without_container_refs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plotly < 5.16 has no ``yref`` on colour bars: the bar goes below the plot instead."""
    import plotly.graph_objects as go

    real = go.layout.coloraxis.ColorBar

    def old_colorbar(*args: Any, **kwargs: Any) -> Any:
        if "yref" in kwargs:
            raise ValueError("Invalid property specified for ColorBar: 'yref'")
        return real(*args, **kwargs)

    monkeypatch.setattr(go.layout.coloraxis, "ColorBar", old_colorbar)
    bar = plot_learning_curves(crowded_study(20, seed=2)).layout.coloraxis.colorbar
    assert bar.yref is None and bar.y < 0 and bar.orientation == "h"


# ---------------------------------------------------------------- HTML and PNG


@pytest.fixture(scope="module")
def png_server() -> Iterator[None]:
    """One browser for every PNG of the module."""
    require_png_export()
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    try:
        yield
    finally:
        kaleido.stop_sync_server(silence_warnings=True)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize(("direction", "seed"), STUDIES[:2])
def test_figures_at_300_configurations_export_to_html(direction: str, seed: int) -> None:
    study = _study(direction, seed)
    race, curves, incumbent = (plot(study) for plot in PLOTS)
    html = race.to_html(include_plotlyjs=False, full_html=False)
    assert '"tickmode":"array"' in html
    for cid in _top(study, TOP_K):
        assert f"Configuration {cid}" in curves.to_html(include_plotlyjs=False)
    assert "values outside the y range" in incumbent.to_html(include_plotlyjs=False)


@pytest.mark.filterwarnings("ignore:The kopts argument is ignored")  # one shared browser
@pytest.mark.parametrize(("direction", "seed"), STUDIES[:2])
def test_figures_at_300_configurations_export_to_png(
    png_server: None, direction: str, seed: int
) -> None:
    study = _study(direction, seed)
    race, curves, incumbent = (plot(study) for plot in PLOTS)
    # The race keeps its own height (labelled rows + a capped faded panel).
    width, height = _png_size(to_png(race, width=1000))
    assert (width, height) == (1000, race.layout.height)
    for fig in (curves, incumbent):
        data = to_png(fig, width=1000, height=560)
        assert _png_size(data) == (1000, 560)
        assert len(data) > 20_000
