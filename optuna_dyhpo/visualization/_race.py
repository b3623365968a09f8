from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_race(study: optuna.Study, *, target_name: str = "Objective Value") -> go.Figure:
    """Plot which configuration received each epoch, in the order the study spent them.

    The x axis is the study's global sequence of epochs (1 = the first epoch any trial ran,
    continuation-aware: a resumed trial's copied steps are not epochs it spent); the y axis is the
    configuration id (the number of the configuration's first trial). There is exactly one marker
    per epoch spent, coloured by the value reported at that epoch (darker = better); a thin grey
    line joins the epochs one trial ran in a row (a segment). Vertical bars mark the last epoch
    of a paused segment, open triangles the first epoch of a resumed one, red crosses epochs
    that reported NaN or infinity (they still cost an epoch). Hover over a marker
    for the trial number, the configuration's own epoch, the value and the parameters.

    Epochs are ordered by trial number, then step: exact for a sequential ``study.optimize``;
    with parallel workers, concurrently running trials are ordered by trial number.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_race

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            fig = plot_race(study)
            fig.write_html("race.html")

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values
            (normally optimised with :class:`~optuna_dyhpo.DyHPOSampler`; other studies work
            too, each trial being one configuration).
        target_name: Name of the reported metric, for the colour bar.

    Returns:
        A :class:`plotly.graph_objects.Figure`.

    Raises:
        ImportError: If plotly is not installed.
        ValueError: If the study is multi-objective.
    """
    go = _utils.import_plotly_go()
    data = _utils.read_study(study)
    minimize = data.direction == StudyDirection.MINIMIZE
    config_ids = [c.config_id for c in data.configs if any(s.new_steps for s in c.segments)]
    layout = go.Layout(
        title="DyHPO Race: Epochs per Configuration",
        xaxis={"title": "Epochs spent (in order)", "rangemode": "tozero"},
        yaxis={
            "title": "Configuration (first trial #)",
            "type": "category",
            "categoryorder": "array",
            "categoryarray": config_ids,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="closest",
    )
    if not data.epochs:
        _utils.empty_warning("plot_race")
        return go.Figure(data=[], layout=layout)

    segments = {s.trial.number: s for c in data.configs for s in c.segments}
    finite = [e.value for e in data.epochs if math.isfinite(e.value)]
    colors = [e.value if math.isfinite(e.value) else math.nan for e in data.epochs]
    hover = []
    for e in data.epochs:
        seg = segments[e.trial_number]
        params = data.config(e.config_id).params
        hover.append(
            f"Configuration {e.config_id}<br>{_utils.segment_text(seg)}<br>"
            f"Epoch spent: {e.index}<br>Configuration's epoch: {e.step}<br>"
            f"{target_name}: {_utils.format_value(e.value)}{_utils.params_text(params)}"
        )
    marker: dict[str, object] = {"size": 7, "line": {"width": 0.5, "color": "Grey"}}
    if finite:
        marker.update(
            color=colors,
            colorscale=_utils.COLORSCALE,
            reversescale=minimize,
            cmin=min(finite),
            cmax=max(finite),
            colorbar={"title": {"text": target_name}},
            showscale=True,
        )
    # Thin horizontal lines join the consecutive epochs of one trial (segment).
    seg_x: list[int | None] = []
    seg_y: list[int | None] = []
    previous: _utils.Epoch | None = None
    for e in data.epochs:
        if previous is not None and previous.trial_number != e.trial_number:
            seg_x.append(None)
            seg_y.append(None)
        seg_x.append(e.index)
        seg_y.append(e.config_id)
        previous = e
    traces = [
        go.Scatter(
            x=seg_x,
            y=seg_y,
            mode="lines",
            name="Trial (segment)",
            line={"color": "rgba(90,90,90,0.5)", "width": 2},
            hoverinfo="skip",
            showlegend=False,
        ),
        go.Scatter(
            x=[e.index for e in data.epochs],
            y=[e.config_id for e in data.epochs],
            mode="markers",
            name="Epoch",
            marker=marker,
            text=hover,
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        ),
    ]

    # Segment boundaries: last epoch of a paused segment, first epoch of a resumed segment.
    last_index: dict[int, int] = {}
    first_index: dict[int, int] = {}
    for e in data.epochs:
        last_index[e.trial_number] = e.index
        first_index.setdefault(e.trial_number, e.index)
    paused = [s for s in segments.values() if s.paused and s.trial.number in last_index]
    resumed = [
        s for s in segments.values() if s.parent is not None and s.trial.number in first_index
    ]
    for name, segs, where, symbol, size in (
        ("Paused", paused, last_index, "line-ns-open", 12),
        ("Resumed", resumed, first_index, "triangle-right-open", 10),
    ):
        if not segs:
            continue
        traces.append(
            go.Scatter(
                x=[where[s.trial.number] for s in segs],
                y=[s.config_id for s in segs],
                mode="markers",
                name=name,
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": "dimgrey",
                    "line": {"width": 1.5},
                },
                text=[
                    f"{name}: configuration {s.config_id}<br>{_utils.segment_text(s)}<br>"
                    f"Epoch spent: {where[s.trial.number]}"
                    for s in segs
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    bad = [e for e in data.epochs if not math.isfinite(e.value)]
    if bad:
        traces.append(
            go.Scatter(
                x=[e.index for e in bad],
                y=[e.config_id for e in bad],
                mode="markers",
                name="NaN/inf value",
                marker={"symbol": "x-thin-open", "size": 12, "color": "crimson"},
                hoverinfo="skip",
            )
        )
    return go.Figure(data=traces, layout=layout)
