"""New configurations proposed by Optuna's TPE over the configurations' learning curves.

With ``DyHPOSampler(proposal="tpe")``, DyHPO's surrogate still decides *whether* the next step
goes to a new configuration, but in a flat search space *which* new configuration is Optuna's
:class:`~optuna.samplers.TPESampler`'s proposal, given every configuration as a trial that was
stopped at the step its curve reached (the view TPE + a successive-halving pruner has of the
same curves). A configuration that diverged counts as a trial whose next step had the worst
value observed, as it does for the surrogate. The measurements behind the option are in
``benchmarks/README.md`` (*Findings*)."""

from __future__ import annotations

from collections.abc import Sequence
import copy
import logging
import math
from typing import TYPE_CHECKING

import optuna

from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration

if TYPE_CHECKING:
    import torch

_STUDY_PREFIX = "optuna-dyhpo-proposal-"


class _QuietProposalStudies(logging.Filter):
    """Drops Optuna's "A new study created in memory" line for the proposal's scratch studies."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _STUDY_PREFIX not in record.getMessage()


logging.getLogger("optuna.storages._in_memory").addFilter(_QuietProposalStudies())


class _ScratchTrial(optuna.trial.FrozenTrial):
    """A trial of a proposal's scratch study: never changed once added, so the in-memory
    storage's defensive deep copy (most of a proposal's cost) is a shallow one."""

    def __deepcopy__(self, memo: dict[int, object]) -> _ScratchTrial:
        return copy.copy(self)


def _as_trial(
    c: Configuration,
    distributions: dict[str, optuna.distributions.BaseDistribution],
    sign: float,
    worst: float,
    max_budget: int,
) -> optuna.trial.FrozenTrial | None:
    values = [sign * v for v in c.curve]
    if c.status == "diverged":
        values.append(worst)
    if not values or not all(math.isfinite(v) for v in values):
        return None
    # TPE ranks a stopped trial by its last step and the value there (its other steps are
    # never read), so only that one is copied into the scratch study.
    steps = {len(values): values[-1]}
    complete = c.status != "diverged" and len(values) >= max_budget
    try:
        trial = optuna.trial.create_trial(
            params=dict(c.params),
            distributions=distributions,
            value=values[-1] if complete else None,
            state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.PRUNED,
            intermediate_values=steps,
        )
    except ValueError:  # a value outside the current distribution
        return None
    trial.__class__ = _ScratchTrial
    return trial


def tpe_proposal(
    encoder: SearchSpaceEncoder,
    configs: Sequence[Configuration],
    sign: float,
    max_budget: int,
    seed: int,
) -> torch.Tensor:
    """TPE's proposal as a ``(1, n_params)`` unit-cube point (``(0, n_params)`` if fewer than
    two configurations of the current flat search space have values).

    Args:
        encoder: The search space (flat: every configuration has every parameter).
        configs: The configurations (diverged ones included).
        sign: ``1`` to maximise, ``-1`` to minimise.
        max_budget: The budget at which a configuration is complete.
        seed: Seed of TPE's sampling.
    """
    import torch

    distributions = dict(encoder.distributions)
    names = set(distributions)
    finite = [sign * v for c in configs for v in c.curve if math.isfinite(v)]
    worst = min(finite, default=0.0)
    trials = [
        t
        for c in configs
        if set(c.params) == names
        and (t := _as_trial(c, distributions, sign, worst, max_budget)) is not None
    ]
    empty = torch.zeros((0, encoder.n_params), dtype=torch.float64)
    if len(trials) < 2 or not names:
        return empty
    study = optuna.create_study(
        study_name=f"{_STUDY_PREFIX}{seed}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=0),
    )
    study.add_trials(trials)
    proposal = encoder.to_unit(study.ask(distributions).params)
    if proposal is None:
        return empty
    return torch.tensor([proposal], dtype=torch.float64)
