from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_learning_curves(
    study: optuna.Study, *, target_name: str = "Objective Value"
) -> go.Figure:
    """Plot every configuration's whole learning curve, across its paused and resumed trials.

    There is one line (trace) per configuration, joining the intermediate values of all its
    trials, coloured by the configuration's best value (darker = better; the colour bar shows
    the scale; ``study.direction`` decides what "best" means). Filled triangles mark the first
    epoch of each resumed trial, so one can see where the configuration was paused. Hover over a
    point for the configuration, the trial that ran that epoch, the value and the parameters.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_learning_curves

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            plot_learning_curves(study).write_html("curves.html")

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values.
        target_name: Name of the reported metric, for the y axis and the colour bar.

    Returns:
        A :class:`plotly.graph_objects.Figure` with one trace per configuration.

    Raises:
        ImportError: If plotly is not installed.
        ValueError: If the study is multi-objective.
    """
    go = _utils.import_plotly_go()
    data = _utils.read_study(study)
    minimize = data.direction == StudyDirection.MINIMIZE
    configs = [c for c in data.configs if c.curve]
    best = {c.config_id: c.best_value(data.direction) for c in configs}
    finite_best = [b for b in best.values() if b is not None]
    layout = go.Layout(
        title="DyHPO Learning Curves",
        xaxis={"title": "Epoch"},
        yaxis={"title": target_name},
        showlegend=False,
        hovermode="closest",
    )
    if not configs:
        _utils.empty_warning("plot_learning_curves")
        return go.Figure(data=[], layout=layout)

    vmin = min(finite_best) if finite_best else 0.0
    vmax = max(finite_best) if finite_best else 1.0
    layout.coloraxis = {
        "colorscale": _utils.COLORSCALE,
        "reversescale": minimize,
        "cmin": vmin,
        "cmax": vmax,
        "colorbar": {"title": {"text": f"Best {target_name}"}},
    }
    traces = []
    for c in configs:
        b = best[c.config_id]
        line_color = (
            "lightgrey"
            if b is None
            else _utils.sample_colors([b], vmin, vmax, reverse=minimize)[0]
        )
        steps = list(c.curve)
        resumed_starts = {s.start for s in c.segments if s.parent is not None}
        owner: dict[int, _utils.Segment] = {}
        for seg in c.segments:
            for step in seg.new_steps:
                owner[step] = seg
        texts = []
        for step in steps:
            ran = owner.get(step)
            ran_by = _utils.segment_text(ran) if ran is not None else "copied step"
            texts.append(
                f"Configuration {c.config_id} ({c.status})<br>{ran_by}<br>Epoch: {step}<br>"
                f"{target_name}: {_utils.format_value(c.curve[step])}<br>"
                f"Best: {_utils.format_value(b)}{_utils.params_text(c.params)}"
            )
        marker: dict[str, object] = {
            "size": [9 if s in resumed_starts else 4 for s in steps],
            "symbol": ["triangle-right" if s in resumed_starts else "circle" for s in steps],
        }
        if b is None:
            marker["color"] = line_color
        else:
            marker.update(color=[b] * len(steps), coloraxis="coloraxis")
        traces.append(
            go.Scatter(
                x=steps,
                y=[c.curve[s] for s in steps],
                mode="lines+markers",
                name=f"Configuration {c.config_id}",
                line={"color": line_color, "width": 1.5},
                marker=marker,
                text=texts,
                hovertemplate="%{text}<extra></extra>",
            )
        )
    return go.Figure(data=traces, layout=layout)
