"""Usage mistakes DyHPO detects, each reported once per study with a :class:`DyHPOWarning`.

The sampler, pruner and budget call these where a mistake shows; the texts say what happened
and what to change.
"""

from __future__ import annotations

import optuna

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._warnings import OncePerStudy
from optuna_dyhpo._warnings import warn_once

_logger = get_logger("mistakes")


def check_pruner(study: optuna.Study, once: OncePerStudy) -> None:
    """Warn when DyHPOSampler runs without DyHPOPruner (nothing would ever be paused)."""
    from optuna_dyhpo._pruner import DyHPOPruner

    if isinstance(study.pruner, DyHPOPruner):
        return
    if once.first(study._storage, study._study_id, "pruner"):
        warn_once(
            _logger,
            f"The study's pruner is {type(study.pruner).__name__}, not DyHPOPruner: "
            "DyHPOSampler then never pauses a configuration, so nothing is ever resumed (and "
            "what that pruner prunes is stopped for good). Create the study with "
            "`pruner=DyHPOPruner()`.",
        )


def finished_early(
    study: optuna.Study, once: OncePerStudy, trial_number: int, last: int, max_budget: int
) -> None:
    """Warn (once) that an objective returned before ``max_budget``."""
    if once.first(study._storage, study._study_id, "finished_early"):
        what = f"after epoch {last}" if last else "without reporting an epoch"
        warn_once(
            _logger,
            f"Trial {trial_number} returned {what}, before max_budget={max_budget}: "
            "its configuration is 'finished_early' and is never resumed. To let DyHPO train "
            "it further, loop over TrialResume(trial).steps() and return only after "
            "max_budget.",
        )


def resume_forgotten(
    study: optuna.Study, once: OncePerStudy, trial_number: int, config_id: int, start: int
) -> None:
    """Warn (once) that a resumed trial asked ``should_prune`` before reporting a new epoch."""
    if once.first(study._storage, study._study_id, "resume"):
        warn_once(
            _logger,
            f"Trial {trial_number} resumes configuration {config_id} at epoch {start}, but "
            f"asked should_prune() before reporting epoch {start}: did the objective start "
            f"again from epoch 1? Epochs 1-{start - 1} were copied from the paused trial, so "
            "Optuna ignores them when they are reported again, and epochs trained again are "
            "not counted in the budget. Use TrialResume(trial): load() the checkpoint and "
            "loop over steps().",
        )
