"""The epoch budget: continuation-aware accounting, the exact stop, and the epoch progress bar.

:class:`StopAfterEpochs` is a ``study.optimize`` callback, but callbacks only run when a trial
ends. To spend the budget exactly, :class:`~optuna_dyhpo.DyHPOPruner` asks
:func:`budget_reached` after every reported epoch: it finds the ``StopAfterEpochs`` of the
``study.optimize`` call it runs in (among that call's callbacks), moves the progress bar, and
when the budget is spent the pruner pauses the running configuration and the study stops.
"""

from __future__ import annotations

import datetime
import sys
import threading
from typing import Any
import warnings

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._incumbent import find_best
from optuna_dyhpo._logging import TqdmLogging
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import parse_trial
from optuna_dyhpo._study_io import segment_epochs
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import warn_once

_logger = get_logger("budget")


def trial_epochs(trial: FrozenTrial) -> int:
    """Steps this trial trained itself: a continuation's copied steps are not counted."""
    return segment_epochs(parse_trial(trial, foreign=True))


def epochs_spent(study: optuna.Study) -> int:
    """Total steps (epochs) trained in the study, counting resumed configurations once.

    A trial that continues a paused configuration costs only the steps it trained itself.
    Trials of other samplers count all their reported steps (they retrain from scratch).

    Example:

        .. code::

            study.optimize(objective, callbacks=[StopAfterEpochs(300)])
            assert epochs_spent(study) == 300  # one process, one thread

    Args:
        study: Any study.

    Returns:
        The number of epochs spent.
    """
    return _epochs(study._storage.get_all_trials(study._study_id, deepcopy=False))


def _epochs(trials: list[FrozenTrial]) -> int:
    return sum(trial_epochs(t) for t in trials if t.state != TrialState.WAITING)


# ----------------------------------------------------------------- the running study.optimize
class _Run:
    """What this thread's ``study.optimize`` call knows: its callbacks, when it started and
    whether it shows a progress bar (``None``: not known on this thread)."""

    def __init__(self, callbacks: list[Any], start: datetime.datetime, show: bool | None) -> None:
        self.callbacks = callbacks
        self.start = start
        self.show = show


def _current_run() -> _Run | None:
    """The ``study.optimize`` call of this thread, read from Optuna's frames.

    ``optuna.study._optimize._optimize_sequential`` runs every trial (on the calling thread,
    or on a pool thread with ``n_jobs > 1``) with the call's ``callbacks`` and ``time_start``;
    ``_optimize`` (calling thread only) has ``show_progress_bar``. ``None`` outside
    ``study.optimize`` (e.g. ask-and-tell).
    """
    frame = sys._getframe(1)
    run: _Run | None = None
    while frame is not None:
        if frame.f_globals.get("__name__") == "optuna.study._optimize":
            local = frame.f_locals
            if frame.f_code.co_name == "_optimize_sequential" and run is None:
                start = local.get("time_start")
                callbacks = local.get("callbacks")
                run = _Run(
                    # Never iterate anything but a list or tuple: a generator is Optuna's.
                    list(callbacks) if isinstance(callbacks, (list, tuple)) else [],
                    start if isinstance(start, datetime.datetime) else datetime.datetime.now(),
                    None,
                )
            elif frame.f_code.co_name == "_optimize" and run is not None:
                run.show = bool(local.get("show_progress_bar", False))
        frame = frame.f_back  # type: ignore[assignment]
    return run


def _budget_of(run: _Run | None) -> StopAfterEpochs | None:
    """The first :class:`StopAfterEpochs` among the callbacks of ``run``, if any."""
    if run is None:
        return None
    return next((c for c in run.callbacks if isinstance(c, StopAfterEpochs)), None)


def has_budget() -> bool:
    """Whether the running ``study.optimize`` has a :class:`StopAfterEpochs` callback (else
    there is no budget to check, nor epochs to count for one)."""
    return _budget_of(_current_run()) is not None


def budget_reached(study: optuna.Study, spent: int) -> StopAfterEpochs | None:
    """Called by :class:`~optuna_dyhpo.DyHPOPruner` after every reported epoch.

    Moves the epoch bar of the running ``study.optimize``'s :class:`StopAfterEpochs` (if it
    has one) to ``spent`` and returns that callback when its budget is spent.
    """
    run = _current_run()
    callback = _budget_of(run)
    if run is None or callback is None:
        return None
    callback._progress(study, run, spent)
    return callback if spent >= callback.n_epochs else None


# ------------------------------------------------------------------------------ the callback
class StopAfterEpochs:
    """``study.optimize`` callback: stop once the study has spent ``n_epochs`` epochs.

    Counting is continuation-aware (see :func:`epochs_spent`), like HPO4DL's ``max_budget``.

    With :class:`~optuna_dyhpo.DyHPOPruner` the budget is exact: the pruner checks it after
    every reported epoch, pauses the running configuration when the budget is spent (the
    objective saves its checkpoint as on any pause, so a later run can resume it) and stops
    the study. One worker spends exactly ``n_epochs``; ``k`` workers sharing the study (threads
    or processes, each with this callback) spend at most ``n_epochs + k - 1``: a worker that is
    training when the budget runs out reports that one epoch, then pauses. With another pruner
    the check runs when a trial ends, so the last trial may run past the budget.

    It also stops the study, with a :class:`~optuna_dyhpo.DyHPOWarning`, when
    ``max_empty_trials`` trials in a row reported no epoch (an objective that never calls
    ``trial.report`` would otherwise loop forever).

    With ``study.optimize(..., show_progress_bar=True)`` it draws a bar of epochs spent out of
    ``n_epochs`` (Optuna's own bar needs ``n_trials`` or ``timeout``) with the best value so
    far. With DyHPOPruner it moves after every epoch; its rate counts the epochs of this
    ``optimize`` call only. While it is drawn, Optuna's log lines print above it.

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DyHPOPruner, DyHPOSampler, StopAfterEpochs, TrialResume
            from optuna_dyhpo import epochs_spent

            def objective(trial):
                x = trial.suggest_float("x", 0.0, 1.0)
                resume = TrialResume(trial)
                value = 0.0
                for epoch in resume.steps():
                    value = x * (1.0 - 0.5**epoch)
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()  # (save a checkpoint here)
                return value

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(
                direction="maximize",
                sampler=DyHPOSampler(max_budget=5, seed=0, n_startup_configs=10),
                pruner=DyHPOPruner(),
            )
            study.optimize(objective, callbacks=[StopAfterEpochs(12)])
            assert epochs_spent(study) == 12

    Args:
        n_epochs: The total budget in epochs (an integer >= 1).
        show_progress_bar: Draw the bar (``True``/``False``), or follow ``study.optimize``'s
            ``show_progress_bar`` (``None``, the default; with ``n_jobs > 1`` pass ``True``).
        max_empty_trials: Stop after this many consecutive trials that reported no epoch (an
            integer >= 1).
    """

    def __init__(
        self,
        n_epochs: int,
        show_progress_bar: bool | None = None,
        *,
        max_empty_trials: int = 20,
    ) -> None:
        check_int("n_epochs", n_epochs, 1)
        if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
            raise ValueError(
                f"`show_progress_bar` must be True, False or None, but got {show_progress_bar!r}."
            )
        self.n_epochs = n_epochs
        self.max_empty_trials = check_int("max_empty_trials", max_empty_trials, 1)
        self._show = show_progress_bar
        self._lock = threading.Lock()
        self._run_start: datetime.datetime | None = None
        self._stopped = False
        self._empty = 0
        # Epochs of finished trials, counted once (else every trial end parses them all).
        self._finished: dict[tuple[int, int], int] = {}
        self._bar: Any = None
        self._logging = TqdmLogging()
        # This callback draws the bar Optuna declines to draw without n_trials/timeout.
        warnings.filterwarnings(
            "ignore", message="Progress bar won't be displayed because n_trials and timeout"
        )

    def _spent(self, study: optuna.Study, trials: list[FrozenTrial]) -> int:
        """:func:`epochs_spent` of these trials."""
        total = 0
        for t in trials:
            if t.state == TrialState.WAITING:
                continue
            if not t.state.is_finished():
                total += trial_epochs(t)
                continue
            key = (study._study_id, t._trial_id)
            if key not in self._finished:
                self._finished[key] = trial_epochs(t)
            total += self._finished[key]
        return total

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run = _current_run()
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        spent = self._spent(study, trials)
        if run is not None:
            self._progress(study, run, spent, trials)
        self._empty = 0 if trial_epochs(trial) else self._empty + 1
        if self._empty >= self.max_empty_trials and not self._stopped:
            self._stopped = True
            warn_once(
                _logger,
                f"The last {self._empty} trials reported no epoch (trial.report was never "
                f"called): stopping the study after {spent} of {self.n_epochs} epochs. Report "
                "each epoch with trial.report(value, epoch) (raise max_empty_trials if trials "
                "without epochs are intended).",
            )
            self.stop(study, spent, log=False)
        if spent >= self.n_epochs:
            self.stop(study, spent)

    def stop(self, study: optuna.Study, spent: int, *, log: bool = True) -> None:
        """Stop the study (once per ``study.optimize`` call) and close the bar."""
        with self._lock:
            first = not self._stopped
            self._stopped = True
            self._close_bar()
        if first and log:
            _logger.info(f"Spent {spent} of {self.n_epochs} epochs: stopping the study.")
        if study._thread_local.in_optimize_loop:
            study.stop()

    # -------------------------------------------------------------------------- the bar
    def _progress(
        self,
        study: optuna.Study,
        run: _Run,
        spent: int,
        trials: list[FrozenTrial] | None = None,
    ) -> None:
        with self._lock:
            if run.start != self._run_start:  # a new study.optimize call
                self._close_bar()
                self._run_start, self._stopped, self._empty = run.start, False, 0
            show = self._show if self._show is not None else run.show
            if not show or self._stopped:
                return
            if trials is None:
                trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
            if self._bar is None:
                self._open_bar(run, trials)
            self._bar.n = min(spent, self.n_epochs)
            best = find_best(study, trials)  # the package's one incumbent (_incumbent.py)
            if best is not None:
                self._bar.set_postfix_str(f"best value {best.value:.6g}", refresh=False)
            self._bar.refresh()

    def _open_bar(self, run: _Run, trials: list[FrozenTrial]) -> None:
        from tqdm.auto import tqdm

        # The rate counts the epochs of this optimize call: the bar starts at the epochs
        # of trials that started before it, and its clock at the call's start.
        before = _epochs(
            [t for t in trials if t.datetime_start is not None and t.datetime_start < run.start]
        )
        before = min(before, self.n_epochs)
        self._bar = tqdm(total=self.n_epochs, initial=before, unit="epoch", desc="DyHPO")
        self._bar.start_t = self._bar.last_print_t = run.start.timestamp()
        self._logging.enter()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._logging.exit()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bar"] = None
        state["_logging"] = TqdmLogging()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
