from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import SEGMENT_KEY

_logger = get_logger("budget")


def trial_epochs(trial: FrozenTrial) -> int:
    """Steps this trial trained itself: a continuation's copied steps are not counted."""
    seg = trial.system_attrs.get(SEGMENT_KEY)
    start = int(seg["start"]) if isinstance(seg, dict) else 0
    return sum(1 for s in trial.intermediate_values if s >= start)


def epochs_spent(study: optuna.Study) -> int:
    """Total steps (epochs) trained in the study, counting resumed configurations once.

    A trial that continues a paused configuration costs only the steps it trained itself.
    Trials of other samplers count all their reported steps (they retrain from scratch).
    """
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    return sum(trial_epochs(t) for t in trials if t.state != TrialState.WAITING)


class StopAfterEpochs:
    """``study.optimize`` callback: stop once the study has spent ``n_epochs`` epochs.

    Counting is continuation-aware (see :func:`epochs_spent`), like HPO4DL's ``max_budget``.
    The check runs after each trial, so the last trial may finish a few epochs past the
    budget; :func:`epochs_spent` reports the exact figure.

    Example:

        .. code::

            study.optimize(objective, callbacks=[StopAfterEpochs(1000)])

    Args:
        n_epochs: The total budget in epochs (an integer >= 1).
    """

    def __init__(self, n_epochs: int) -> None:
        if isinstance(n_epochs, bool) or not isinstance(n_epochs, int) or n_epochs < 1:
            raise ValueError(f"`n_epochs` must be an integer >= 1, but got {n_epochs!r}.")
        self.n_epochs = n_epochs

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        spent = epochs_spent(study)
        if spent >= self.n_epochs:
            _logger.info(f"Spent {spent} of {self.n_epochs} epochs: stopping the study.")
            study.stop()
