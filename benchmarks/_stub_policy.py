"""A cheap, deterministic stand-in for DyHPO's model, for measuring storage work.

The storage work of a decision (reading the study, claims, writing a continuation) does not
depend on how the winner is chosen, only on the kind of decision. This policy makes every
kind happen throughout a run, and keeps resuming the deepest paused configuration, so that
resumed curves grow as the study does: a continuation's copied curve that cost one write per
value would show up as storage work growing with the history.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Any

import optuna

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import TrialResume
from optuna_dyhpo._decision import Decision
from optuna_dyhpo._state import Configuration


def stub_decide(
    sampler: DyHPOSampler, pause_every: int = 2, fresh_every: int = 3
) -> Callable[..., Decision]:
    """A replacement for ``sampler._decide``.

    A running configuration pauses every ``pause_every`` steps; a new trial starts a fresh
    configuration every ``fresh_every`` decisions of that kind, and otherwise resumes the paused
    configuration with the longest curve.
    """
    starts = [0]

    def decide(
        study: optuna.Study, configs: dict[int, Configuration], running: int | None
    ) -> Decision:
        if running is not None:
            step = configs[running].last_step
            kind = "fresh" if step % pause_every == 0 else "continue"
            cid = None if kind == "fresh" else running
            return Decision(kind, cid, None, step + 1, math.nan, "stub")  # type: ignore[arg-type]
        starts[0] += 1
        paused = [
            c
            for c in configs.values()
            if c.status == "paused" and c.last_step < sampler.max_budget
        ]
        if paused and starts[0] % fresh_every:
            c = max(paused, key=lambda c: (c.last_step, -c.config_id))
            return Decision("resume", c.config_id, None, c.last_step + 1, math.nan, "stub")
        return Decision("fresh", None, None, 1, math.nan, "stub")

    return decide


def stub_study(max_budget: int, storage: Any = None, **kwargs: Any) -> optuna.Study:
    """A maximising DyHPO study whose sampler decides with :func:`stub_decide`."""
    sampler = DyHPOSampler(max_budget, seed=0, n_candidates=8, **kwargs)
    sampler._decide = stub_decide(sampler)  # type: ignore[method-assign]
    return optuna.create_study(
        direction="maximize", storage=storage, sampler=sampler, pruner=DyHPOPruner()
    )


def objective(trial: optuna.Trial) -> float:
    """A rising learning curve; pauses when the pruner says so (no checkpoints)."""
    x = trial.suggest_float("x", 0.0, 1.0)
    value = 0.0
    for epoch in TrialResume(trial).steps():
        value = x * (1.0 - 0.9**epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value
