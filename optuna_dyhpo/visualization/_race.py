from __future__ import annotations

import math
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo.visualization import _format
from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go

# Pixel heights of the race's configuration axes: a highlighted (labelled) row is tall enough for
# its tick label; the faded rows share a panel that grows with their number up to a cap.
LABELLED_ROW_PX = 22
FADED_ROW_PX = 3
FADED_PANEL_MIN_PX = 90
FADED_PANEL_MAX_PX = 420
PANEL_GAP_PX = 36
MARGIN_TOP_PX = 110
MARGIN_BOTTOM_PX = 80
DEFAULT_HEIGHT_PX = 450


def plot_race(
    study: optuna.Study,
    *,
    target_name: str = "Objective Value",
    top_k: int | None = 10,
    clip_quantile: float = 0.02,
) -> go.Figure:
    """Plot which configuration received each epoch, in the order the study spent them.

    The x axis is the study's global sequence of epochs (1 = the first epoch any trial ran,
    continuation-aware: a resumed trial's copied steps are not epochs it spent); the y axis is the
    configuration id (the number of the configuration's first trial), in id order. There is
    exactly one marker per epoch spent; a thin grey line joins the epochs one trial ran in a row
    (a segment). Hover over a marker for the trial number, the configuration's own epoch, the
    value, the configuration's rank and the parameters.

    The ``top_k`` configurations with the best value (by ``study.direction``) are highlighted:
    each has a labelled row (every label is drawn: the tick labels are explicit and each row is
    tall enough for one), its markers are coloured by the value reported at that epoch (darker =
    better), vertical bars mark the last epoch of a paused segment, open triangles the first
    epoch of a resumed one. The other configurations share a second, compact panel below,
    drawn faint grey and unlabelled (hover still tells which configuration a marker is). Red
    crosses mark epochs that reported NaN or infinity (they still cost an epoch), in both panels.
    With at most ``top_k`` configurations there is a single panel, as before.

    Epochs are ordered by trial number, then step: exact for a sequential ``study.optimize``;
    with parallel workers, concurrently running trials are ordered by trial number.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_race

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            fig = plot_race(study, top_k=10)
            fig.write_html("race.html")
            fig.write_image("race.png", width=1000)  # keep the figure's own height

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values
            (normally optimised with :class:`~optuna_dyhpo.DyHPOSampler`; other studies work
            too, each trial being one configuration).
        target_name: Name of the reported metric, for the colour bar.
        top_k: How many configurations to highlight and label (the best ``top_k`` by best
            value), or None to highlight every configuration with a finite value.
        clip_quantile: Fraction in ``[0, 0.5)`` of the worst finite values left out of the
            colour scale's range (they get its worst colour); 0 spans every value.

    Returns:
        A :class:`plotly.graph_objects.Figure`. Its height grows with the number of
        configurations (22 px per highlighted one, 3 px per other one up to 420 px in all);
        pass no ``height`` to ``write_image`` to keep it.

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
    raced = [c for c in data.configs if any(s.new_steps for s in c.segments)]
    all_ranks = _format.ranks(raced, data.direction)
    raced_ids = [c.config_id for c in raced]
    # (no finite value at all: label every row rather than none)
    top_ids = _format.highlighted(raced_ids, all_ranks, top_k) or raced_ids
    top = set(top_ids)
    faded_ids = [i for i in raced_ids if i not in top]
    layout = go.Layout(
        title="DyHPO Race: Epochs per Configuration",
        xaxis={"title": "Epochs spent (in order)", "rangemode": "tozero"},
        yaxis=_category_axis(top_ids, "Configuration (first trial #)", all_ranks),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hovermode="closest",
    )
    top_px = LABELLED_ROW_PX * max(len(top_ids), 1)
    faded_px = 0
    if faded_ids:
        faded_px = min(max(FADED_ROW_PX * len(faded_ids), FADED_PANEL_MIN_PX), FADED_PANEL_MAX_PX)
        plot_px = top_px + PANEL_GAP_PX + faded_px
        split = (faded_px + PANEL_GAP_PX) / plot_px
        layout.yaxis.domain = [split, 1.0]
        layout.yaxis.title.text = f"Top {len(top_ids)} (first trial #)"
        layout.yaxis2 = {
            **_category_axis(faded_ids, f"Other {len(faded_ids)} configurations", None),
            "domain": [0.0, faded_px / plot_px],
            "showticklabels": False,
            "showgrid": False,
        }
        layout.xaxis.anchor = "y2"
        layout.height = MARGIN_TOP_PX + plot_px + MARGIN_BOTTOM_PX
    elif MARGIN_TOP_PX + top_px + MARGIN_BOTTOM_PX > DEFAULT_HEIGHT_PX:
        layout.height = MARGIN_TOP_PX + top_px + MARGIN_BOTTOM_PX
    if layout.height is not None:
        layout.margin = {"t": MARGIN_TOP_PX, "b": MARGIN_BOTTOM_PX}
    if not data.epochs:
        _utils.empty_warning("plot_race")
        return go.Figure(data=[], layout=layout)

    segments = {s.trial.number: s for c in data.configs for s in c.segments}
    params = {c.config_id: c.params for c in data.configs}
    top_epochs = [e for e in data.epochs if e.config_id in top]
    faded_epochs = [e for e in data.epochs if e.config_id not in top]
    color_range = _format.robust_range(
        [e.value for e in data.epochs], not minimize, clip_quantile, margin=0.0
    )

    def hover(e: _utils.Epoch) -> str:
        return (
            f"Configuration {e.config_id}{_format.rank_text(e.config_id, all_ranks)}<br>"
            f"{_format.segment_text(segments[e.trial_number])}<br>"
            f"Epoch spent: {e.index}<br>Configuration's epoch: {e.step}<br>"
            f"{target_name}: {_format.format_value(e.value)}"
            f"{_format.params_text(params[e.config_id])}"
        )

    marker: dict[str, object] = {"size": 7, "line": {"width": 0.5, "color": "Grey"}}
    if color_range is not None:
        marker.update(
            color=[e.value if math.isfinite(e.value) else math.nan for e in top_epochs],
            colorscale=_utils.COLORSCALE,
            reversescale=minimize,
            cmin=color_range[0],
            cmax=color_range[1],
            colorbar={
                "title": {"text": target_name},
                # beside the highlighted panel only
                "y": 1.0,
                "yanchor": "top",
                "len": 1.0 - (layout.yaxis.domain[0] if faded_ids else 0.0),
            },
            showscale=True,
        )
    traces = [
        go.Scatter(
            **_segment_lines(top_epochs),
            mode="lines",
            name="Trial (segment)",
            line={"color": "rgba(90,90,90,0.5)", "width": 2},
            hoverinfo="skip",
            showlegend=False,
        ),
    ]
    if faded_epochs:
        traces += [
            go.Scatter(
                **_segment_lines(faded_epochs),
                yaxis="y2",
                mode="lines",
                name="Trial (segment), other configurations",
                line={"color": _utils.FADED_LINE, "width": 1},
                hoverinfo="skip",
                showlegend=False,
            ),
            go.Scatter(
                x=[e.index for e in faded_epochs],
                y=[e.config_id for e in faded_epochs],
                yaxis="y2",
                mode="markers",
                name="Epoch, other configurations",
                marker={"size": 4, "color": _utils.FADED_MARKER},
                text=[hover(e) for e in faded_epochs],
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            ),
        ]

    # Segment boundaries of the highlighted configurations: last epoch of a paused segment,
    # first epoch of a resumed segment.
    last_index: dict[int, int] = {}
    first_index: dict[int, int] = {}
    for e in top_epochs:
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
                    f"{name}: configuration {s.config_id}<br>{_format.segment_text(s)}<br>"
                    f"Epoch spent: {where[s.trial.number]}"
                    for s in segs
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    # The epochs over the boundary marks, so that their colour shows.
    traces.append(
        go.Scatter(
            x=[e.index for e in top_epochs],
            y=[e.config_id for e in top_epochs],
            mode="markers",
            name="Epoch",
            marker=marker,
            text=[hover(e) for e in top_epochs],
            hovertemplate="%{text}<extra></extra>",
            showlegend=False,
        )
    )
    shown = False
    for epochs, yaxis, name in (
        (top_epochs, "y", "NaN/inf value"),
        (faded_epochs, "y2", "NaN/inf value"),
    ):
        bad = [e for e in epochs if not math.isfinite(e.value)]
        if not bad:
            continue
        traces.append(
            go.Scatter(
                x=[e.index for e in bad],
                y=[e.config_id for e in bad],
                yaxis=yaxis,
                mode="markers",
                name=name,
                legendgroup="nan",
                showlegend=not shown,
                marker={"symbol": "x-thin-open", "size": 12, "color": "crimson"},
                hoverinfo="skip",
            )
        )
        shown = True
    return go.Figure(data=traces, layout=layout)


def _category_axis(ids: list[int], title: str, all_ranks: dict[int, int] | None) -> dict[str, Any]:
    """A category axis of configurations in id order; with ``all_ranks``, every row labelled."""
    axis: dict[str, Any] = {
        "title": title,
        "type": "category",
        "categoryorder": "array",
        "categoryarray": ids,
    }
    if all_ranks is not None:
        # Explicit ticks: plotly never skips them (it would skip automatic category labels).
        axis.update(
            tickmode="array",
            tickvals=ids,
            ticktext=[f"<b>{i} (best)</b>" if all_ranks.get(i) == 1 else str(i) for i in ids],
        )
    return axis


def _segment_lines(epochs: list[_utils.Epoch]) -> dict[str, list[int | None]]:
    """x and y of lines joining the consecutive epochs of one trial (segment)."""
    xs: list[int | None] = []
    ys: list[int | None] = []
    previous: _utils.Epoch | None = None
    for e in epochs:
        if previous is not None and previous.trial_number != e.trial_number:
            xs.append(None)
            ys.append(None)
        xs.append(e.index)
        ys.append(e.config_id)
        previous = e
    return {"x": xs, "y": ys}
