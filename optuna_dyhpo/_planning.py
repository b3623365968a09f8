"""How a starting trial is planned: a fresh configuration (the model's or an enqueued one),
the continuation of a paused configuration, or nothing when the epoch budget is spent."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from optuna_dyhpo._budget import budget_reached
from optuna_dyhpo._budget import has_budget
from optuna_dyhpo._continuation import claim_continuation
from optuna_dyhpo._decision import Decision
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import BUDGET_SPENT
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CONFIG
from optuna_dyhpo._state import USER_START
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._study_io import write_trial
from optuna_dyhpo._warnings import warn_once

if TYPE_CHECKING:
    from optuna_dyhpo._sampler import DyHPOSampler

_logger = get_logger("sampler")


def plan_trial(sampler: DyHPOSampler, study: optuna.Study, trial: FrozenTrial) -> None:
    """Decide what ``trial`` trains and write its segment (``_state``)."""
    storage = study._storage
    if SEGMENT_KEY in trial.system_attrs:
        # Copied from another trial (e.g. by RetryFailedTrialCallback). DyHPO recovers
        # crashed configurations itself, so this trial is planned afresh.
        _logger.warning(
            f"Trial {trial.number} carries copied DyHPO attributes; ignoring them "
            "(DyHPO resumes crashed configurations itself)."
        )
        del trial.system_attrs[SEGMENT_KEY]
    enqueued = "fixed_params" in trial.system_attrs
    # One read of the study serves the budget check and the first decision.
    trials = None if enqueued else storage.get_all_trials(study._study_id, deepcopy=False)
    if not enqueued and budget_spent(sampler, study, trial, trials):
        return
    if enqueued:
        decision = Decision(
            "fresh", None, dict(trial.system_attrs["fixed_params"]), 1, math.nan, "enqueued"
        )
    else:
        for _ in range(3):
            configs = sampler._configurations(study, trials)
            trials = None  # after a lost claim: read again
            decision = sampler._decide(study, configs, running=None)
            if budget_spent(sampler, study, trial):  # spent by others during a slow decision
                return
            if decision.kind != "resume":
                break
            assert decision.config_id is not None
            if claim_continuation(sampler, study, trial, configs[decision.config_id], decision):
                return
            # Another worker resumed it first: decide again on fresh data.
        else:
            decision = Decision("fresh", None, None, 1, math.nan, "claims lost")
    sampler._plans[trial._trial_id] = dict(decision.params or {})
    segment = {"config": trial.number, "start": 1, "parent": None}
    write_trial(
        storage,
        trial._trial_id,
        system_attrs={SEGMENT_KEY: segment},
        user_attrs={USER_CONFIG: trial.number, USER_START: 1},
    )
    trial.system_attrs[SEGMENT_KEY] = segment
    why = f"{decision.reason}, log EI {decision.log_ei:.3g}"
    sampler._start_notes[trial._trial_id] = f"new; {why}"
    _logger.debug(f"Trial {trial.number} starts a new configuration ({why}).")


def budget_spent(
    sampler: DyHPOSampler,
    study: optuna.Study,
    trial: FrozenTrial,
    trials: list[FrozenTrial] | None = None,
) -> bool:
    """Whether this ``study.optimize``'s budget is already spent (another worker spent it
    while this one was between trials, or the call was given a budget the study has
    spent); if so the study stops and the trial trains nothing. ``trials``: the study's
    trials as just read (else they are read)."""
    if not has_budget():
        return False  # nothing to count the epochs for
    spent = sampler._epochs_spent(study, trials)
    budget = budget_reached(study, spent)
    if budget is None:
        return False
    budget.stop(study, spent)
    sampler._over_budget.add(trial._trial_id)
    study._storage.set_trial_user_attr(trial._trial_id, USER_STATUS, BUDGET_SPENT)
    return True


def stop_resume(trial: FrozenTrial, why: str) -> None:
    """A resumed configuration keeps exactly its parameters (its checkpoint was trained
    with them): when the objective now asks for something else, the continuation stops
    before training and the configuration is never resumed again."""
    seg = trial.system_attrs[SEGMENT_KEY]
    message = (
        f"Trial {trial.number} does not resume configuration {seg['config']}: {why}. "
        "The configuration is stopped (a resumed configuration keeps exactly its "
        "parameters); new configurations use the new search space."
    )
    warn_once(_logger, message)
    raise optuna.TrialPruned(message)
