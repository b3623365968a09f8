"""Successive-halving promotions: the model-free rule that DyHPO mixes into its decisions.

Plain DyHPO scores a paused configuration at its next budget against the best value seen at
that budget, and a new configuration at budget 1 against the best first step. When the model
cannot yet tell configurations apart (chance-level first epochs, a model that has not learnt
how curves grow), the bar at budget 1 is always the lowest and DyHPO keeps starting new
configurations. Syne Tune's DyHPO mixes in asynchronous successive-halving promotions for that
reason; DyHPOSampler does the same, and uses the same rule when its model is unavailable.

Rungs are ``1, eta, eta^2, ...`` below ``max_budget``, then ``max_budget``. A configuration at a
rung may be promoted when its value there is among the top ``1/eta`` of every configuration
that reached that rung; once promoted it keeps the right to train up to the next rung.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import functools
import math

import numpy as np

from optuna_dyhpo._state import Configuration


def rungs(max_budget: int, eta: int) -> list[int]:
    """The rung budgets ``1, eta, eta^2, ... < max_budget`` and ``max_budget``."""
    out = [1]
    while out[-1] * eta < max_budget:
        out.append(out[-1] * eta)
    if out[-1] != max_budget:
        out.append(max_budget)
    return out


@functools.lru_cache(maxsize=1 << 16)
def bracket_floor(seed: int, config_id: int, max_budget: int, eta: int) -> int:
    """The budget a configuration trains before successive halving judges it.

    Hyperband's hedge against misleading early epochs: a configuration falls into bracket
    ``s`` (judged first at ``max_budget / eta^s``) with probability proportional to the number
    of configurations Hyperband starts in that bracket, ``ceil((s_max + 1) / (s + 1) eta^s)``.
    Most configurations are judged after one epoch; a few train to the maximum budget.
    """
    s_max = max(0, math.floor(math.log(max_budget) / math.log(eta) + 1e-9))
    weights = np.array([math.ceil((s_max + 1) / (s + 1) * eta**s) for s in range(s_max + 1)])
    u = float(np.random.default_rng([seed, config_id & 0x7FFFFFFF, 7]).random())
    s = int(np.searchsorted(np.cumsum(weights) / weights.sum(), u, side="right"))
    return max(1, round(max_budget / eta ** min(s, s_max)))


def promotion(
    observed: Sequence[Configuration],
    candidates: Sequence[Configuration],
    sign: float,
    max_budget: int,
    eta: int,
    running: int | None = None,
    floors: Mapping[int, int] | None = None,
) -> Configuration | None:
    """The configuration successive halving gives the next step to, or ``None`` (start a new
    one).

    Args:
        observed: Every configuration with at least one observation (they define the rungs'
            populations).
        candidates: The configurations that may get the step (paused ones and the running one).
        sign: ``1`` to maximise, ``-1`` to minimise.
        max_budget: The largest budget.
        eta: Reduction factor between rungs.
        running: The configuration whose trial asks, if any: it keeps training while it is on
            its way to the next rung or may be promoted from its rung.
        floors: Per configuration id, the budget it trains before it is judged (Hyperband
            brackets, see :func:`bracket_floor`); configurations below it come first.

    Returns:
        The running configuration if it keeps its right to train; else a paused configuration
        on its way to a rung (highest rung first), else the best promotable paused
        configuration (highest rung first); else ``None``.
    """
    levels = rungs(max_budget, eta)
    top: dict[int, set[int]] = {}
    for r in levels[:-1]:
        reached = [c for c in observed if len(c.curve) >= r]
        n = len(reached)
        worse = -sign * np.fromiter((c.curve[r - 1] for c in reached), np.float64, n)
        ids = np.fromiter((c.config_id for c in reached), np.int64, n)
        top[r] = set(ids[np.lexsort((ids, worse))[: n // eta]].tolist())

    def key(c: Configuration) -> tuple[int, int, float] | None:
        """(priority, rung, value): below its bracket's first rung beats on its way to a rung
        beats promotable; None if none of these."""
        step = c.last_step
        if step >= max_budget or step < 1:
            return None
        floor = 1 if floors is None else floors.get(c.config_id, 1)
        if step < floor:
            return (3, floor, sign * c.curve[-1])
        rung = max(r for r in levels if r <= step)
        if step > rung:
            return (2, rung, sign * c.curve[-1])
        if c.config_id in top.get(rung, ()):
            return (1, rung, sign * c.curve[-1])
        return None

    best: tuple[tuple[int, int, float], Configuration] | None = None
    for c in candidates:
        k = key(c)
        if k is None:
            continue
        if c.config_id == running:
            return c
        if best is None or k > best[0]:
            best = (k, c)
    return None if best is None else best[1]
