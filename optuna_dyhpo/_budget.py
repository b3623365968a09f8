from __future__ import annotations

import sys
from typing import Any
import warnings

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._incumbent import find_best
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import parse_trial
from optuna_dyhpo._validation import check_int

_logger = get_logger("budget")


def trial_epochs(trial: FrozenTrial) -> int:
    """Steps this trial trained itself: a continuation's copied steps are not counted."""
    seg = parse_trial(trial, foreign=True)
    return 0 if seg is None else len(seg.new_steps)


def epochs_spent(study: optuna.Study) -> int:
    """Total steps (epochs) trained in the study, counting resumed configurations once.

    A trial that continues a paused configuration costs only the steps it trained itself.
    Trials of other samplers count all their reported steps (they retrain from scratch).
    """
    return _epochs(study._storage.get_all_trials(study._study_id, deepcopy=False))


def _epochs(trials: list[FrozenTrial]) -> int:
    return sum(trial_epochs(t) for t in trials if t.state != TrialState.WAITING)


def _optimize_shows_progress_bar() -> bool:
    """``show_progress_bar`` of the ``study.optimize`` call this callback runs in.

    Optuna draws its own bar only for ``n_trials`` or ``timeout``; the epoch budget is ours to
    draw. Found on the calling frame of :func:`optuna.study._optimize._optimize` (sequential
    runs; with ``n_jobs > 1`` callbacks run on pool threads and this returns ``False``).
    """
    frame = sys._getframe(1)
    while frame is not None:
        if (
            frame.f_code.co_name == "_optimize"
            and frame.f_globals.get("__name__") == "optuna.study._optimize"
        ):
            return bool(frame.f_locals.get("show_progress_bar", False))
        frame = frame.f_back  # type: ignore[assignment]
    return False


class StopAfterEpochs:
    """``study.optimize`` callback: stop once the study has spent ``n_epochs`` epochs.

    Counting is continuation-aware (see :func:`epochs_spent`), like HPO4DL's ``max_budget``.
    The check runs after each trial, so the last trial may finish a few epochs past the
    budget; :func:`epochs_spent` reports the exact figure.

    With ``study.optimize(..., show_progress_bar=True)`` it draws a progress bar of epochs
    spent out of ``n_epochs`` (Optuna's own bar needs ``n_trials`` or ``timeout``), with the
    best value so far.

    Example:

        .. code::

            study.optimize(objective, callbacks=[StopAfterEpochs(1000)], show_progress_bar=True)

    Args:
        n_epochs: The total budget in epochs (an integer >= 1).
        show_progress_bar: Draw the bar (``True``/``False``), or follow ``study.optimize``'s
            ``show_progress_bar`` (``None``, the default).
    """

    def __init__(self, n_epochs: int, show_progress_bar: bool | None = None) -> None:
        check_int("n_epochs", n_epochs, 1)
        if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
            raise ValueError(
                f"`show_progress_bar` must be True, False or None, but got {show_progress_bar!r}."
            )
        self.n_epochs = n_epochs
        self._show = show_progress_bar
        self._bar: Any = None
        # This callback draws the bar Optuna declines to draw without n_trials/timeout.
        warnings.filterwarnings(
            "ignore", message="Progress bar won't be displayed because n_trials and timeout"
        )

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        spent = _epochs(trials)
        show = self._show if self._show is not None else _optimize_shows_progress_bar()
        if show:
            self._update_bar(study, trials, spent)
        if spent >= self.n_epochs:
            _logger.info(f"Spent {spent} of {self.n_epochs} epochs: stopping the study.")
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            study.stop()

    def _update_bar(self, study: optuna.Study, trials: list[FrozenTrial], spent: int) -> None:
        from tqdm.auto import tqdm

        if self._bar is None:
            self._bar = tqdm(total=self.n_epochs, unit="epoch", desc="DyHPO")
        self._bar.n = min(spent, self.n_epochs)
        best = find_best(study, trials)  # the package's one incumbent (_incumbent.py)
        if best is not None:
            self._bar.set_postfix_str(f"best value {best.value:.6g}", refresh=False)
        self._bar.refresh()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bar"] = None
        return state
