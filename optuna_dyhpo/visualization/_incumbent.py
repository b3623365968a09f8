from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.study import StudyDirection

from optuna_dyhpo._incumbent import improves
from optuna_dyhpo.visualization import _format
from optuna_dyhpo.visualization import _utils

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plot_incumbent(
    study: optuna.Study,
    *,
    target_name: str = "Objective Value",
    top_k: int | None = 10,
    clip_quantile: float = 0.02,
) -> go.Figure:
    """Plot the anytime incumbent: the best value observed so far against epochs spent.

    Epochs are counted continuation-aware: the steps a resumed trial copies from its parent are
    not counted (nor compared) again, so the x axis is the real training cost. Every epoch's
    reported value is shown as a marker; the step line ("Best Value") is the best of them so
    far, by ``study.direction``: the package's one incumbent, so its last point is
    :func:`optuna_dyhpo.best_configuration`. NaN and infinite values, and the epochs of a crashed
    continuation (trained again later), cost an epoch but never become the incumbent. Epochs are
    ordered as in :func:`plot_race`; ties go to the epoch spent first.

    The markers of the ``top_k`` configurations with the best value are the trace named
    ``target_name``; those of every other configuration are drawn small and faint grey (trace
    ``Other configurations``, no legend entry, still hoverable). The y axis leaves out the worst
    ``clip_quantile`` of the finite values, never the incumbent, and a note above the plot
    counts the values left out.

    Example:

        .. code::

            import optuna
            from optuna_dyhpo.visualization import plot_incumbent

            study = optuna.load_study(study_name="dyhpo", storage="sqlite:///dyhpo.db")
            plot_incumbent(study, clip_quantile=0.05).write_html("incumbent.html")

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values.
        target_name: Name of the reported metric, for the y axis and the legend.
        top_k: How many configurations' markers to highlight (the best ``top_k`` by best
            value), or None to highlight every configuration with a finite value.
        clip_quantile: Fraction in ``[0, 0.5)`` of the worst finite values that may fall
            outside the y range; 0 shows every value.

    Returns:
        A :class:`plotly.graph_objects.Figure` with the observed values of the highlighted
        configurations, the incumbent and, when some configurations are not highlighted, their
        observed values.

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
    all_ranks = _format.ranks(data.configs, data.direction)
    top = set(_format.highlighted([c.config_id for c in data.configs], all_ranks, top_k))
    segments = {s.trial.number: s for c in data.configs for s in c.segments}
    params = {c.config_id: c.params for c in data.configs}
    observed: dict[bool, tuple[list[int], list[float], list[str]]] = {
        True: ([], [], []),
        False: ([], [], []),
    }
    inc_x: list[int] = []
    inc_y: list[float] = []
    inc_text: list[str] = []
    best: float | None = None
    best_label = ""
    for e in data.epochs:
        where = (
            f"<br>{_format.segment_text(segments[e.trial_number])}"
            f"<br>Configuration's epoch: {e.step}"
        )
        label = f"Configuration {e.config_id}{where}"
        crashed = segments[e.trial_number].status == "crashed"
        if math.isfinite(e.value):
            xs, ys, texts = observed[e.config_id in top]
            xs.append(e.index)
            ys.append(e.value)
            texts.append(
                f"Configuration {e.config_id}{_format.rank_text(e.config_id, all_ranks)}{where}"
                f"<br>Epochs spent: {e.index}<br>{target_name}: {e.value:.6g}"
                f"{_format.params_text(params[e.config_id])}"
            )
            # The package's one incumbent (optuna_dyhpo._incumbent): a crashed continuation's
            # epochs are trained again, so they are shown but never become the incumbent.
            if not crashed and improves(e.value, best, maximize):
                best = e.value
                best_label = label
        if best is None:
            continue
        inc_x.append(e.index)
        inc_y.append(best)
        inc_text.append(f"Best after {e.index} epochs: {best:.6g}<br>held by {best_label}")

    all_values = [e.value for e in data.epochs]
    y_range = _format.robust_range(all_values, maximize, clip_quantile)
    if y_range is not None:
        layout.yaxis.range = list(y_range)
        note = _format.clipped_note(all_values, y_range, clip_quantile)
        if note is not None:
            layout.annotations = [note]
    traces = []
    if observed[False][0]:
        xs, ys, texts = observed[False]
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="Other configurations",
                marker={"color": _utils.FADED_MARKER, "size": 4},
                text=texts,
                hovertemplate="%{text}<extra></extra>",
                showlegend=False,
            )
        )
    xs, ys, texts = observed[True]
    traces += [
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            name=f"{target_name} (top {len(top)})" if observed[False][0] else target_name,
            marker={"color": "#1f77b4", "size": 6, "opacity": 0.8},
            text=texts,
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
