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


def crowded_study(
    n_configs: int = 300,
    *,
    seed: int = 0,
    direction: str = "minimize",
    max_budget: int = 12,
    storage: str | optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """A DyHPO-like study with many configurations, built quickly with ``study.add_trial``.

    Each new configuration runs 1-2 epochs and is paused; after about every other new one, one
    of the three best paused configurations (by its last value) is resumed for 1-3 epochs, so a
    few dozen configurations are resumed, some up to ``max_budget``. Curves are noisy
    exponential decays of a loss (``1 - loss`` for maximisation). Besides, ``n_configs // 50``
    configurations blow up after one epoch (finite values 20-200 times worse than a typical
    loss: the outliers a robust y range leaves out) and ``n_configs // 50`` diverge to NaN.

    Example:
        >>> study = crowded_study(60, seed=1)
        >>> len({t.user_attrs["dyhpo_config"] for t in study.trials})
        60
    """
    import math
    import random

    rng = random.Random(seed)
    study = optuna.create_study(direction=direction, storage=storage)
    minimize = direction == "minimize"
    n_odd = n_configs // 50
    blow_up = set(rng.sample(range(n_configs), n_odd))
    diverge = set(rng.sample(sorted(set(range(n_configs)) - blow_up), n_odd))
    shapes: dict[int, tuple[float, float, float]] = {}
    losses: dict[int, list[float]] = {}
    last_trial: dict[int, int] = {}
    paused: list[int] = []
    n_trials = 0

    def run(config: int, n: int, parent: int | None) -> None:
        nonlocal n_trials
        floor, scale, rate = shapes[config]
        start = len(losses[config]) + 1
        for b in range(start, start + n):
            losses[config].append(floor + scale * math.exp(-rate * b) + rng.gauss(0.0, 0.01))
        done = len(losses[config]) == max_budget
        values = [v if minimize else 1.0 - v for v in losses[config]]
        last_trial[config] = add_segment(
            study,
            Seg(
                config,
                values,
                start=start,
                parent=parent,
                state=TrialState.COMPLETE if done else TrialState.PRUNED,
                status="completed" if done else "paused",
            ),
            params={"lr": 10 ** -(1 + 3 * rate), "wd": floor / 10},
        )
        n_trials += 1
        if not done:
            paused.append(config)

    for i in range(n_configs):
        config = n_trials
        shapes[config] = (rng.uniform(0.05, 0.6), rng.uniform(0.3, 1.5), rng.uniform(0.05, 0.8))
        losses[config] = []
        if i in blow_up or i in diverge:
            loss = rng.uniform(20.0, 200.0) if i in blow_up else math.nan
            add_segment(
                study,
                Seg(
                    config,
                    [loss if minimize else 1.0 - loss],
                    status="stopped" if i in blow_up else "diverged",
                ),
                params={"lr": 0.9, "wd": 0.09},
            )
            n_trials += 1
            continue
        run(config, rng.randint(1, 2), None)
        if rng.random() < 0.5 and len(paused) > 1:
            paused.sort(key=lambda c: losses[c][-1])
            config = paused.pop(rng.randrange(min(3, len(paused))))
            n = min(rng.randint(1, 3), max_budget - len(losses[config]))
            run(config, n, last_trial[config])
    return study


# ---------------------------------------------------------------- PNG export in tests


def require_png_export() -> None:
    """Skip (fail on CI) unless kaleido and a Chromium are installed."""
    import os
    import shutil

    import pytest

    try:
        import kaleido  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: kaleido missing (a dev dependency: PNG export needs it)")
        pytest.skip("PNG export needs `pip install kaleido`")
    if (shutil.which("chromium") or shutil.which("chromium-browser")) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI: chromium missing (run scripts/install-browser.sh)")
        pytest.skip("kaleido needs Chrome/Chromium (scripts/install-browser.sh)")


def to_png(fig: Any, **kwargs: Any) -> bytes:
    """``fig.to_image(format="png", **kwargs)``, tried a second time on kaleido's page-load race.

    On a loaded machine kaleido (1.x) sometimes evaluates before its page script has run
    (``ReferenceError: kaleido_scopes is not defined``); any other error is raised at once.
    """
    try:
        return bytes(fig.to_image(format="png", **kwargs))
    except Exception as err:
        if "kaleido_scopes is not defined" not in str(err):
            raise
    return bytes(fig.to_image(format="png", **kwargs))
