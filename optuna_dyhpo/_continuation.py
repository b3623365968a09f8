"""How a trial becomes the continuation of a paused configuration, exactly once."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._decision import Decision
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import CLAIM_MARK
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CONFIG
from optuna_dyhpo._state import USER_PARENT
from optuna_dyhpo._state import USER_START
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import acquire_claim
from optuna_dyhpo._state import claim_name
from optuna_dyhpo._state import release_claim
from optuna_dyhpo._study_io import write_trial

if TYPE_CHECKING:
    from optuna_dyhpo._sampler import DyHPOSampler

_logger = get_logger("sampler")


class _HideClaimStudies(logging.Filter):
    """Drops Optuna's "A new study created ..." line for DyHPO's transient claim studies."""

    def filter(self, record: logging.LogRecord) -> bool:
        return CLAIM_MARK not in record.getMessage()


for _name in (
    "optuna.storages._in_memory",
    "optuna.storages._rdb.storage",
    "optuna.storages.journal._storage",
):
    logging.getLogger(_name).addFilter(_HideClaimStudies())


def claim_continuation(
    sampler: DyHPOSampler,
    study: optuna.Study,
    trial: FrozenTrial,
    config: Configuration,
    decision: Decision | None = None,
) -> bool:
    """Make ``trial`` the continuation of the paused ``config``, exactly once.

    Several workers may decide to resume the same configuration at the same moment. The
    claim is a mutex that every Optuna storage makes atomic (``_state.acquire_claim``).
    The winner re-reads the configuration's trials (another worker may have resumed it
    since this worker read the study), writes the continuation's attributes (from then
    on, everyone sees the configuration running) and releases the claim.

    Returns:
        Whether this trial won the claim.
    """
    storage = study._storage
    parent_trial = storage.get_trial(config.last_trial_id)
    if parent_trial.state != TrialState.PRUNED:
        return False
    # As of the decision's read; checked again, fresh, once the claim is held.
    children = sampler._reader.continuations(study, parent_trial.number, fresh=False)
    if any(not crashed for crashed in children.values()):
        return False
    n_children = len(children)
    name = claim_name(study.study_name, parent_trial.number, n_children)
    claim_id = acquire_claim(storage, name, sampler._claim_timeout)
    if claim_id is None:
        _logger.debug(f"Configuration {config.config_id} was claimed by another worker.")
        return False
    try:
        children = sampler._reader.continuations(study, parent_trial.number)
        # A continuation made since the count above belongs to the holder of another
        # claim name: only the holder of the current count's claim may resume.
        if len(children) != n_children or any(not c for c in children.values()):
            return False
        _write_continuation(sampler, study, trial, config, parent_trial, decision)
    finally:
        release_claim(storage, claim_id)
    return True


def _write_continuation(
    sampler: DyHPOSampler,
    study: optuna.Study,
    trial: FrozenTrial,
    config: Configuration,
    parent_trial: FrozenTrial,
    decision: Decision | None,
) -> None:
    storage = study._storage
    start = config.last_step + 1
    sampler._plans[trial._trial_id] = dict(config.params)
    sampler._resumes.add(trial._trial_id)
    segment = {"config": config.config_id, "start": start, "parent": parent_trial.number}
    # The continuation carries the whole curve so far, so the latest trial of a
    # configuration always shows its complete learning curve; segment, curve and user
    # attributes are one write (one transaction on an RDB storage).
    curve = dict(enumerate(config.curve, start=1))
    write_trial(
        storage,
        trial._trial_id,
        values=curve,
        system_attrs={SEGMENT_KEY: segment},
        user_attrs={
            USER_CONFIG: config.config_id,
            USER_PARENT: parent_trial.number,
            USER_START: start,
        },
    )
    trial.system_attrs[SEGMENT_KEY] = segment
    trial.intermediate_values.update(curve)
    why = "" if decision is None else f"; {decision.reason}, log EI {decision.log_ei:.3g}"
    sampler._start_notes[trial._trial_id] = f"resumed at epoch {start}{why}"
    _logger.debug(
        f"Trial {trial.number} resumes configuration {config.config_id} at step {start} "
        f"(continues trial {parent_trial.number}{why})."
    )
