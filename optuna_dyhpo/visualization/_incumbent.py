from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_incumbent(study: optuna.Study, *, target_name: str = "Objective Value") -> go.Figure:
    """Plot the anytime incumbent: the best value observed so far against epochs spent.

    Epochs are counted continuation-aware: the steps a resumed trial copies from its parent are
    not counted (nor compared) again, so the x axis is the real training cost. Every epoch's
    reported value is shown as a marker ("Objective Value"); the step line ("Best Value") is the
    best of them so far, by ``study.direction``. NaN and infinite values cost an epoch but never
    become the incumbent. Epochs are ordered as in :func:`plot_race`.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_incumbent

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            plot_incumbent(study).write_html("incumbent.html")

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values.
        target_name: Name of the reported metric, for the y axis and the legend.

    Returns:
        A :class:`plotly.graph_objects.Figure` with two traces: the observed values and the
        incumbent.

    Raises:
        ImportError: If plotly is not installed.
        ValueError: If the study is multi-objective.
    """
    go = _utils.import_plotly_go()
    data = _utils.read_study(study)
    layout = go.Layout(
        title="DyHPO Anytime Incumbent",
        xaxis={"title": "Epochs spent", "rangemode": "tozero"},
        yaxis={"title": target_name},
        hovermode="closest",
    )
    if not data.epochs:
        _utils.empty_warning("plot_incumbent")
        return go.Figure(data=[], layout=layout)

    maximize = data.direction == StudyDirection.MAXIMIZE
    segments = {s.trial.number: s for c in data.configs for s in c.segments}
    obs_x: list[int] = []
    obs_y: list[float] = []
    obs_text: list[str] = []
    inc_x: list[int] = []
    inc_y: list[float] = []
    inc_text: list[str] = []
    best: float | None = None
    best_label = ""
    for e in data.epochs:
        label = (
            f"Configuration {e.config_id}<br>{_utils.segment_text(segments[e.trial_number])}"
            f"<br>Configuration's epoch: {e.step}"
        )
        if not math.isfinite(e.value):
            if best is None:
                continue
        else:
            obs_x.append(e.index)
            obs_y.append(e.value)
            obs_text.append(
                f"{label}<br>Epochs spent: {e.index}<br>{target_name}: {e.value:.6g}"
                f"{_utils.params_text(data.config(e.config_id).params)}"
            )
            if best is None or (e.value > best if maximize else e.value < best):
                best = e.value
                best_label = label
        assert best is not None
        inc_x.append(e.index)
        inc_y.append(best)
        inc_text.append(f"Best after {e.index} epochs: {best:.6g}<br>held by {best_label}")
    traces = [
        go.Scatter(
            x=obs_x,
            y=obs_y,
            mode="markers",
            name=target_name,
            marker={"color": "#1f77b4", "size": 5, "opacity": 0.6},
            text=obs_text,
            hovertemplate="%{text}<extra></extra>",
        ),
        go.Scatter(
            x=inc_x,
            y=inc_y,
            mode="lines",
            name="Best Value",
            line={"color": "#ef553b", "shape": "hv", "width": 2},
            text=inc_text,
            hovertemplate="%{text}<extra></extra>",
        ),
    ]
    return go.Figure(data=traces, layout=layout)
