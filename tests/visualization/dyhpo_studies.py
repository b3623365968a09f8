"""Hand-built DyHPO-like studies, written with the storage schema of ``docs/contract.md``.

They do not need the sampler: each trial is added with ``study.add_trial`` carrying the
contract's system attrs, user attrs and intermediate values (a continuation carries its parent's
values for the steps before its ``start``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState


@dataclass
class Seg:
    """One trial of the schedule.

    Attributes:
        config: Configuration id (number of its first trial).
        curve: The configuration's whole curve so far: values for steps 1..end.
        start: First step this trial runs itself.
        parent: Trial it continues (None for a root).
        state: Final Optuna state.
        status: ``dyhpo_status`` user attr (None: not written, e.g. still running).
    """

    config: int
    curve: list[float]
    start: int = 1
    parent: int | None = None
    state: TrialState = TrialState.PRUNED
    status: str | None = "paused"


PARAMS: dict[int, dict[str, float]] = {
    0: {"lr": 0.1, "wd": 0.001},
    1: {"lr": 0.01, "wd": 0.0001},
    2: {"lr": 0.5, "wd": 0.01},
}
DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "wd": FloatDistribution(0.0, 0.1)}

# Three configurations, max budget 4. Trial numbers are the list positions.
#   trial 0: config 0, epochs 1-2, paused      trial 3: config 1 resumed, epochs 3-4, paused
#   trial 1: config 1, epochs 1-2, paused      trial 4: config 0 resumed, epochs 3-4, completed
#   trial 2: config 2, epochs 1-2, paused
SCHEDULE: list[Seg] = [
    Seg(0, [0.9, 0.7]),
    Seg(1, [0.8, 0.5]),
    Seg(2, [1.0, 0.95]),
    Seg(1, [0.8, 0.5, 0.45, 0.6], start=3, parent=1),
    Seg(0, [0.9, 0.7, 0.4, 0.3], start=3, parent=0, state=TrialState.COMPLETE, status="completed"),
]
# The study's epochs in order, as (config, step, value): 10 epochs, copied steps excluded.
EPOCHS = [
    (0, 1, 0.9),
    (0, 2, 0.7),
    (1, 1, 0.8),
    (1, 2, 0.5),
    (2, 1, 1.0),
    (2, 2, 0.95),
    (1, 3, 0.45),
    (1, 4, 0.6),
    (0, 3, 0.4),
    (0, 4, 0.3),
]
INCUMBENT_MINIMIZE = [0.9, 0.7, 0.7, 0.5, 0.5, 0.5, 0.45, 0.45, 0.4, 0.3]
INCUMBENT_MAXIMIZE = [0.9, 0.9, 0.9, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def add_segment(
    study: optuna.Study,
    seg: Seg,
    *,
    user_attrs_only: bool = False,
    params: dict[str, float] | None = None,
) -> int:
    """Add one trial for ``seg``; returns its number."""
    number = len(study._storage.get_all_trials(study._study_id, deepcopy=False))
    end = len(seg.curve)
    user_attrs: dict[str, Any] = {
        "dyhpo_config": seg.config,
        "dyhpo_continues_trial": seg.parent,
        "dyhpo_start_epoch": seg.start,
    }
    system_attrs: dict[str, Any] = {
        "dyhpo:segment": {"config": seg.config, "start": seg.start, "parent": seg.parent}
    }
    if seg.status is not None:
        user_attrs["dyhpo_status"] = seg.status
    if seg.status == "paused":
        system_attrs["dyhpo:paused_at"] = end
        system_attrs["dyhpo:checkpoint"] = {"artifact_id": f"ckpt-{number}", "step": end}
        user_attrs["dyhpo_checkpoint"] = f"ckpt-{number}"
    trial = optuna.trial.create_trial(
        state=seg.state,
        value=seg.curve[-1] if seg.state == TrialState.COMPLETE else None,
        params=params or PARAMS.get(seg.config, {"lr": 0.05, "wd": 0.05}),
        distributions=DISTRIBUTIONS,
        user_attrs=user_attrs,
        system_attrs={} if user_attrs_only else system_attrs,
        intermediate_values={step: v for step, v in enumerate(seg.curve, start=1)},
    )
    study.add_trial(trial)
    return number


def make_study(
    direction: str = "minimize",
    schedule: list[Seg] | None = None,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
    user_attrs_only: bool = False,
) -> optuna.Study:
    """A study holding ``schedule`` (default :data:`SCHEDULE`)."""
    study = optuna.create_study(direction=direction, storage=storage, study_name=study_name)
    for seg in SCHEDULE if schedule is None else schedule:
        add_segment(study, seg, user_attrs_only=user_attrs_only)
    return study


def simulate_study(
    n_epochs: int = 40,
    *,
    n_configs: int = 8,
    max_budget: int = 10,
    seed: int = 0,
    direction: str = "minimize",
    storage: str | optuna.storages.BaseStorage | None = None,
    study_name: str | None = None,
) -> optuna.Study:
    """A freeze-thaw-like study: greedy resumption of the best paused configuration.

    Curves are ``floor + scale * exp(-rate * epoch)`` (negated for maximisation); each segment
    runs 1-3 epochs, then pauses. Deterministic for a given ``seed``.
    """
    import math
    import random

    rng = random.Random(seed)
    study = optuna.create_study(direction=direction, storage=storage, study_name=study_name)
    sign = 1.0 if direction == "minimize" else -1.0
    shapes: dict[int, tuple[float, float, float]] = {}
    curves: dict[int, list[float]] = {}
    last_trial: dict[int, int] = {}
    spent = 0
    previous: int | None = None
    while spent < n_epochs:
        open_configs = [c for c in curves if len(curves[c]) < max_budget]
        # a configuration that just ran would have kept running: resume another one
        others = [c for c in open_configs if c != previous]
        if len(shapes) < n_configs and (not others or rng.random() < 0.4):
            config = len(study._storage.get_all_trials(study._study_id, deepcopy=False))
            shapes[config] = (rng.uniform(0.1, 0.5), rng.uniform(0.5, 1.5), rng.uniform(0.1, 0.6))
            curves[config] = []
            parent = None
        elif open_configs:
            config = min(others or open_configs, key=lambda c: sign * curves[c][-1])
            parent = last_trial[config]
        else:
            break
        floor, scale, rate = shapes[config]
        start = len(curves[config]) + 1
        n = min(rng.randint(1, 3), max_budget - start + 1, n_epochs - spent)
        for b in range(start, start + n):
            curves[config].append(sign * (floor + scale * math.exp(-rate * b)))
        done = len(curves[config]) == max_budget
        last_trial[config] = add_segment(
            study,
            Seg(
                config,
                list(curves[config]),
                start=start,
                parent=parent,
                state=TrialState.COMPLETE if done else TrialState.PRUNED,
                status="completed" if done else "paused",
            ),
            params={"lr": 10 ** -(1 + 3 * rate), "wd": floor / 10},
        )
        spent += n
        previous = config
    return study
