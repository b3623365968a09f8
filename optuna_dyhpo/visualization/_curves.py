from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo.visualization import _format
from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_learning_curves(
    study: optuna.Study,
    *,
    target_name: str = "Objective Value",
    top_k: int | None = 10,
    clip_quantile: float = 0.02,
) -> go.Figure:
    """Plot every configuration's whole learning curve, across its paused and resumed trials.

    The ``top_k`` configurations with the best value (by ``study.direction``) get one line
    (trace) each, named ``Configuration <id>`` and listed in the legend best first under its
    status (``paused``, ``running``, ``completed``, ...: a paused configuration is not a pruned
    one, it may be resumed), coloured by the configuration's best value (darker = better; the
    colour bar spans the highlighted configurations' best values). Filled triangles mark the
    first epoch of each resumed trial, so one can see where the configuration was paused. Every
    other configuration is drawn thin and light grey in a single trace ``Other configurations``
    without a legend entry, still hoverable. Hover over a point for the configuration, its
    rank, the trial that ran that epoch, the value and the parameters.

    The y axis leaves out the worst ``clip_quantile`` of the finite values (e.g. a few diverging
    runs), never the best one, and a note above the plot counts the values left out; the full
    range is one double-click (autoscale) away in the HTML.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_learning_curves

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            plot_learning_curves(study, top_k=5).write_html("curves.html")

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values.
        target_name: Name of the reported metric, for the y axis and the colour bar.
        top_k: How many configurations to highlight (the best ``top_k`` by best value), or None
            to highlight every configuration with a finite value.
        clip_quantile: Fraction in ``[0, 0.5)`` of the worst finite values that may fall
            outside the y range; 0 shows every value.

    Returns:
        A :class:`plotly.graph_objects.Figure` with one trace per highlighted configuration
        and, when some configurations are not highlighted, the trace ``Other configurations``.

    Raises:
        ImportError: If plotly is not installed.
        TypeError: If ``top_k`` or ``clip_quantile`` has the wrong type.
        ValueError: If the study is multi-objective, ``top_k`` is below 1 or ``clip_quantile``
            is outside ``[0, 0.5)``.
    """
    _format.check_top_k(top_k)
    _format.check_clip_quantile(clip_quantile)
    go = _utils.import_plotly_go()
    data = _utils.read_study(study)
    minimize = data.direction == StudyDirection.MINIMIZE
    configs = [c for c in data.configs if c.curve]
    best = {c.config_id: c.best_value(data.direction) for c in configs}
    all_ranks = _format.ranks(configs, data.direction)
    top = set(_format.highlighted([c.config_id for c in configs], all_ranks, top_k))
    others = [c for c in configs if c.config_id not in top]
    # Best first; a configuration without a finite value last.
    order = sorted(top, key=lambda i: (all_ranks.get(i, len(configs) + 1), i))
    layout = go.Layout(
        title="DyHPO Learning Curves",
        xaxis={"title": "Epoch"},
        margin={"b": 60},
        yaxis={"title": target_name},
        showlegend=False,
        hovermode="closest",
    )
    if not configs:
        _utils.empty_warning("plot_learning_curves")
        return go.Figure(data=[], layout=layout)

    all_values = [v for c in configs for v in c.curve.values()]
    y_range = _format.robust_range(all_values, not minimize, clip_quantile)
    if y_range is not None:
        layout.yaxis.range = list(y_range)
        note = _format.clipped_note(all_values, y_range, clip_quantile)
        if note is not None:
            layout.annotations = [note]
    highlighted_best = [b for b in (best[i] for i in top) if b is not None]
    vmin = min(highlighted_best, default=0.0)
    vmax = max(highlighted_best, default=1.0)
    layout.coloraxis = {
        "colorscale": _utils.HIGHLIGHT_COLORSCALE,
        "reversescale": minimize,
        "cmin": vmin,
        "cmax": vmax,
        "colorbar": _bottom_colorbar(go, f"Best {target_name}"),
    }
    if top:
        layout.showlegend = True
        layout.legend = {
            "title": {"text": f"Top {len(top)} of {len(configs)}" if others else "Best first"},
            "traceorder": "grouped",
        }

    def hover(c: _utils.ConfigInfo, steps: list[int]) -> list[str]:
        owner: dict[int, _utils.Segment] = {}
        for seg in c.segments:
            for step in seg.new_steps:
                owner[step] = seg
        ranked = _format.rank_text(c.config_id, all_ranks)
        texts = []
        for step in steps:
            ran = owner.get(step)
            ran_by = _format.segment_text(ran) if ran is not None else "copied step"
            texts.append(
                f"Configuration {c.config_id} ({c.status})<br>{ran_by}<br>Epoch: {step}<br>"
                f"{target_name}: {_format.format_value(c.curve[step])}<br>"
                f"Best: {_format.format_value(best[c.config_id])}{ranked}"
                f"{_format.params_text(c.params)}"
            )
        return texts

    traces = []
    if others:
        xs: list[int | None] = []
        ys: list[float | None] = []
        texts: list[str | None] = []
        for c in others:
            steps = list(c.curve)
            if xs:
                xs.append(None)
                ys.append(None)
                texts.append(None)
            xs.extend(steps)
            ys.extend(c.curve[s] for s in steps)
            texts.extend(hover(c, steps))
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name="Other configurations",
                line={"color": _utils.FADED_LINE, "width": 1},
                marker={"color": _utils.FADED_MARKER, "size": 3},
                text=texts,
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            )
        )
    # Worst highlighted first, so that the best configuration is drawn on top.
    by_id = {c.config_id: c for c in configs}
    for legend_rank, cid in reversed(list(enumerate(order, start=1))):
        c = by_id[cid]
        b = best[cid]
        steps = list(c.curve)
        resumed_starts = {s.start for s in c.segments if s.parent is not None}
        marker: dict[str, object] = {
            "size": [9 if s in resumed_starts else 4 for s in steps],
            "symbol": ["triangle-right" if s in resumed_starts else "circle" for s in steps],
        }
        if b is None:  # no finite value (e.g. diverged at once): no colour on the scale
            line_color = "lightgrey"
            marker["color"] = line_color
        else:
            line_color = _utils.sample_colors(
                [b], vmin, vmax, reverse=minimize, colorscale=_utils.HIGHLIGHT_COLORSCALE
            )[0]
            marker.update(color=[b] * len(steps), coloraxis="coloraxis")
        traces.append(
            go.Scatter(
                x=steps,
                y=[c.curve[s] for s in steps],
                mode="lines+markers",
                name=f"Configuration {cid}",
                legendrank=legend_rank,
                legendgroup=c.status,
                legendgrouptitle={"text": c.status.replace("_", " ")},
                line={"color": line_color, "width": 2},
                marker=marker,
                text=hover(c, steps),
                hovertemplate="%{text}<extra></extra>",
            )
        )
    return go.Figure(data=traces, layout=layout)


def _bottom_colorbar(go: Any, title: str) -> dict[str, Any]:
    """A horizontal colour bar at the bottom of the figure (the legend is at the right)."""
    bar: dict[str, Any] = {
        "title": {"text": title, "side": "right"},
        "orientation": "h",
        "x": 0.5,
        "xanchor": "center",
        "y": 0.0,
        "yanchor": "bottom",
        "yref": "container",
        "len": 0.6,
        "thickness": 12,
    }
    try:
        go.layout.coloraxis.ColorBar(**bar)
    except ValueError:  # plotly < 5.16 has no "yref": below the plot area instead
        del bar["yref"]
        bar.update(y=-0.3, yanchor="top")
    return bar
