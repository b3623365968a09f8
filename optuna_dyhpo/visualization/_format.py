"""Presentation helpers of the plots: argument checks, ranks, axis ranges and hover text."""

from __future__ import annotations

import json
import math
from typing import Any

from optuna.study import StudyDirection

from optuna_dyhpo.visualization._utils import ConfigInfo
from optuna_dyhpo.visualization._utils import Segment


def check_top_k(top_k: int | None) -> None:
    """Raise for a ``top_k`` that is not a positive int or None.

    Example:
        >>> check_top_k(10)
        >>> check_top_k(0)
        Traceback (most recent call last):
        ...
        ValueError: top_k must be a positive int or None (highlight every configuration); got 0.
    """
    message = (
        f"top_k must be a positive int or None (highlight every configuration); got {top_k!r}."
    )
    if top_k is None:
        return
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(message)
    if top_k < 1:
        raise ValueError(message)


def check_clip_quantile(clip_quantile: float) -> None:
    """Raise for a ``clip_quantile`` that is not a number in ``[0, 0.5)``.

    Example:
        >>> check_clip_quantile(0.02)
        >>> check_clip_quantile(0.5)
        Traceback (most recent call last):
        ...
        ValueError: clip_quantile must be a float in [0, 0.5) (0 shows every value); got 0.5.
    """
    message = (
        f"clip_quantile must be a float in [0, 0.5) (0 shows every value); got {clip_quantile!r}."
    )
    if isinstance(clip_quantile, bool) or not isinstance(clip_quantile, (int, float)):
        raise TypeError(message)
    if not 0.0 <= clip_quantile < 0.5:  # also rejects NaN
        raise ValueError(message)


def ranks(configs: list[ConfigInfo], direction: StudyDirection) -> dict[int, int]:
    """1-based rank of each configuration with a finite value, by its best value.

    Ties go to the lower configuration id; configurations without a finite value are left out.

    Example:
        >>> cs = [ConfigInfo(i, {}, curve={1: v}) for i, v in enumerate([0.5, 0.2, math.nan])]
        >>> ranks(cs, StudyDirection.MINIMIZE)
        {1: 1, 0: 2}
    """
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    scored = [(c.best_value(direction), c.config_id) for c in configs]
    ordered = sorted((sign * b, cid) for b, cid in scored if b is not None)
    return {cid: rank for rank, (_, cid) in enumerate(ordered, start=1)}


def highlighted(ids: list[int], all_ranks: dict[int, int], top_k: int | None) -> list[int]:
    """The configurations among ``ids`` to highlight, in the order of ``ids``.

    All of them when ``top_k`` is None or there are at most ``top_k``; otherwise those ranked
    within the ``top_k`` by :func:`ranks` (a configuration without a finite value has no rank).

    Example:
        >>> highlighted([0, 1, 2], {1: 1, 0: 2, 2: 3}, 2)
        [0, 1]
        >>> highlighted([0, 1, 2], {1: 1}, 3)
        [0, 1, 2]
    """
    if top_k is None or len(ids) <= top_k:
        return list(ids)
    return [i for i in ids if all_ranks.get(i, top_k + 1) <= top_k]


def rank_text(config_id: int, all_ranks: dict[int, int]) -> str:
    """`` (rank 3 of 300)`` for hover text; empty for a configuration without a rank.

    Example:
        >>> rank_text(1, {1: 1, 0: 2})
        ' (rank 1 of 2)'
    """
    rank = all_ranks.get(config_id)
    return "" if rank is None else f" (rank {rank} of {len(all_ranks)})"


def robust_range(
    values: list[float], maximize: bool, clip_quantile: float, margin: float = 0.05
) -> tuple[float, float] | None:
    """An axis range for ``values`` that leaves out at most the worst ``clip_quantile`` of them.

    Of the ``n`` finite values, the ``floor(clip_quantile * n)`` worst (the lowest when
    maximising, the highest when minimising) may fall outside; the best value (the incumbent) is
    always inside. The kept span is padded by ``margin`` of its width on each side (or by 5% of
    the value, or 1, when all kept values are equal). None when no value is finite.

    Example:
        >>> robust_range([1.0, 2.0, 3.0, 100.0], maximize=False, clip_quantile=0.25, margin=0.0)
        (1.0, 3.0)
        >>> robust_range([1.0, 2.0, 3.0, 100.0], maximize=True, clip_quantile=0.25, margin=0.0)
        (2.0, 100.0)
    """
    finite = sorted(v for v in values if math.isfinite(v))
    if not finite:
        return None
    cut = math.floor(clip_quantile * len(finite))
    kept = finite[cut:] if maximize else finite[: len(finite) - cut]
    lo, hi = kept[0], kept[-1]
    pad = margin * (hi - lo) if hi > lo else (0.05 * abs(hi) or 1.0)
    return lo - pad, hi + pad


def clipped_note(
    values: list[float], y_range: tuple[float, float], clip_quantile: float
) -> dict[str, Any] | None:
    """A layout annotation telling how many finite values fall outside ``y_range`` (or None).

    Example:
        >>> clipped_note([1.0, 2.0, 50.0], (0.0, 3.0), 0.4)["text"]
        '1 value outside the y range (clip_quantile=0.4)'
    """
    n = sum(1 for v in values if math.isfinite(v) and not y_range[0] <= v <= y_range[1])
    if n == 0:
        return None
    return {
        "text": f"{n} value{'s' if n > 1 else ''} outside the y range "
        f"(clip_quantile={clip_quantile:g})",
        "xref": "paper",
        "yref": "paper",
        "x": 0.0,
        "y": 1.0,
        "xanchor": "left",
        "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 11, "color": "dimgrey"},
        "name": "clipped",
    }


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def params_text(params: dict[str, Any]) -> str:
    """Parameters as ``name: value`` lines for hover text."""
    if not params:
        return ""
    lines = []
    for name, value in params.items():
        shown = f"{value:.6g}" if isinstance(value, float) else json.dumps(value, default=str)
        lines.append(f"&nbsp;&nbsp;{name}: {shown}")
    return "<br>params:<br>" + "<br>".join(lines)


def segment_text(seg: Segment) -> str:
    """``Trial #7 (continues #3)`` style text for hover labels."""
    if seg.parent is None:
        return f"Trial #{seg.trial.number}"
    return f"Trial #{seg.trial.number} (continues #{seg.parent})"
