"""Liveness of DyHPO's trials on shared storages.

Three things go wrong when many workers share a study on a loaded machine, and this module
handles them:

- A trial's first heartbeat must exist before any DyHPO state is written for it, or a worker
  killed in between leaves a ``RUNNING`` trial that :func:`optuna.storages.fail_stale_trials`
  never fails (it skips trials without a heartbeat). :func:`first_heartbeat` writes it
  synchronously; :func:`fail_silent_trials` fails ``RUNNING`` trials that never had one
  (their worker died inside ``study.ask()``) once they are older than the grace period.
- Under overload a live trial can miss its heartbeats and be failed as stale by another
  worker. Its own worker then meets ``UpdateFinishedTrialError`` (``trial.report``, the
  sampler's writes) and ``ValueError: Cannot tell a FAIL trial.`` (``study.optimize`` telling
  the result), both of which used to end ``study.optimize``. :func:`install_optimize_hooks`
  makes ``study.optimize`` of a DyHPO study stop such a trial cleanly and go on: the storage
  keeps the trial as failed by the other worker (a crashed segment: its configuration is
  paused again at its last checkpoint, or recorded as crashed if it has none).
- ``sqlite:///`` URLs give a storage whose claims are not atomic; the optimize hook makes
  its transactions ``BEGIN IMMEDIATE`` before the loop's first claim
  (:func:`optuna_dyhpo.storages._sqlite.serialise_sqlite_transactions`).

Optuna has no hook for the second and third point, so :func:`install_optimize_hooks` wraps
two private functions of ``optuna.study._optimize`` (``_run_trial`` and
``_tell_with_warning``). The wrappers change nothing for studies whose sampler is not a
:class:`~optuna_dyhpo.DyHPOSampler` (except that a trial's start forgets the thread's mark of
a ``"Trial N pruned."`` line to drop, see :mod:`optuna_dyhpo._logging`), nor for a DyHPO trial
that is still ``RUNNING`` when telling; if Optuna's signatures change they are not installed
(with a warning).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from datetime import timezone
import inspect
import threading
import time
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from optuna_dyhpo._logging import forget_pruned_line
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._warnings import warn_once

_logger = get_logger("liveness")

README_SECTION = "README: 'Heartbeats on a shared cluster'"


# ------------------------------------------------------------------------------- heartbeats
def heartbeat_settings(storage: BaseStorage) -> tuple[int | None, int | None]:
    """``(heartbeat_interval, grace_period)`` of ``storage`` (``None, None`` without a
    heartbeat); the grace period defaults to twice the interval, as in Optuna."""
    if not is_heartbeat_enabled(storage):
        return None, None
    assert isinstance(storage, BaseHeartbeat)
    interval = storage.get_heartbeat_interval()
    backend = getattr(storage, "_backend", storage)
    grace = getattr(backend, "grace_period", None)
    if grace is None and interval is not None:
        grace = 2 * interval
    return interval, grace


def first_heartbeat(storage: BaseStorage, trial_id: int) -> None:
    """Record ``trial_id``'s heartbeat now, in this thread (no-op without heartbeats).

    A failed write is logged, not raised: the heartbeat thread tries again, and a trial that
    never gets a heartbeat is failed after the grace period like one whose worker died.
    """
    if is_heartbeat_enabled(storage):
        assert isinstance(storage, BaseHeartbeat)
        try:
            storage.record_heartbeat(trial_id)
        except Exception as e:
            _logger.warning(f"Could not record the first heartbeat of trial id {trial_id}: {e!r}")


def _silent_running_trials(storage: BaseStorage, study_id: int) -> list[tuple[int, datetime]]:
    """``(trial_id, datetime_start)`` of the study's RUNNING trials without a heartbeat row
    (``datetime_start`` in naive UTC, as Optuna's RDB schema stores it)."""
    from optuna.storages import RDBStorage
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, RDBStorage):
        return []
    trial: Any = models.TrialModel
    beat: Any = models.TrialHeartbeatModel
    with _create_scoped_session(rdb.scoped_session) as session:
        rows = (
            session.query(trial.trial_id, trial._datetime_start_utc)
            .outerjoin(beat, beat.trial_id == trial.trial_id)
            .filter(trial.study_id == study_id)
            .filter(trial.state == TrialState.RUNNING)
            .filter(beat.trial_heartbeat_id.is_(None))
            .all()
        )
    return [(int(r[0]), r[1]) for r in rows if r[1] is not None]


def fail_silent_trials(study: optuna.Study) -> list[int]:
    """Fail the study's RUNNING trials that never recorded a heartbeat and started more than
    the grace period ago (their worker died inside ``study.ask()``, before its first
    heartbeat); ``fail_stale_trials`` skips them.

    A continuation failed this way is a crashed segment (its configuration is paused again at
    its last checkpoint). An enqueued trial that DyHPO had not started yet is enqueued again
    with the same parameters, unless the storage has a ``heartbeat_stale_trial_callback``,
    which then runs as for any stale trial. Ages use this process's clock, as Optuna's
    trial timestamps do (in UTC).

    Returns:
        The ids of the trials this call failed.
    """
    storage = study._storage
    interval, grace = heartbeat_settings(storage)
    if interval is None or grace is None:
        return []
    oldest = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=grace)
    failed: list[int] = []
    for trial_id, started in _silent_running_trials(storage, study._study_id):
        if started.replace(tzinfo=None) > oldest:
            continue
        try:
            if storage.set_trial_state_values(trial_id, TrialState.FAIL):
                failed.append(trial_id)
        except UpdateFinishedTrialError:
            pass  # another worker finished it first
    if not failed:
        return failed
    assert isinstance(storage, BaseHeartbeat)
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id in failed:
        frozen = storage.get_trial(trial_id)
        seg = frozen.system_attrs.get(SEGMENT_KEY)
        fixed = frozen.system_attrs.get("fixed_params")
        what = (
            f"configuration {seg.get('config')} is recovered from its last checkpoint"
            if isinstance(seg, dict)
            else "no DyHPO state was written for it"
        )
        _logger.warning(
            f"Failed trial {frozen.number}: RUNNING for more than grace_period={grace} s "
            f"without ever recording a heartbeat (its worker died before its first "
            f"heartbeat); {what}."
        )
        if callback is not None:
            callback(study, frozen)
        elif isinstance(fixed, dict) and not isinstance(seg, dict):
            study.enqueue_trial(dict(fixed), user_attrs=dict(frozen.user_attrs))
            _logger.warning(f"Enqueued the parameters of trial {frozen.number} again.")
    return failed


class SilentTrialSweeper:
    """Runs :func:`fail_silent_trials` at most once per heartbeat interval per study."""

    def __init__(self) -> None:
        self._next: dict[tuple[int, int], float] = {}

    def sweep(self, study: optuna.Study) -> None:
        interval, _ = heartbeat_settings(study._storage)
        if interval is None:
            return
        key = (id(study._storage), study._study_id)
        now = time.monotonic()
        if now < self._next.get(key, 0.0):
            return
        self._next[key] = now + interval
        fail_silent_trials(study)


def abandon_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Fail a trial whose start DyHPO rejected (``study.ask()`` raises: nobody will tell it)."""
    try:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass
    except Exception as e:  # the storage itself failed: the original error matters more
        _logger.warning(f"Could not fail rejected trial {trial.number}: {e!r}")


def prepare_storage(study: optuna.Study) -> None:
    """Make a plain ``sqlite:///`` storage claim atomically (idempotent)."""
    from optuna_dyhpo.storages._sqlite import serialise_sqlite_transactions

    if serialise_sqlite_transactions(study._storage):
        _logger.info(
            "The study's SQLite storage now starts every transaction with BEGIN IMMEDIATE "
            "(as optuna_dyhpo.storages.create_sqlite_storage does), so that two processes "
            "cannot claim the same trial."
        )


# ------------------------------------------------------------------- trials finished elsewhere
def stopped_message(storage: BaseStorage, trial: optuna.trial.FrozenTrial) -> str:
    """What happened to a trial that another worker finished while this one ran it."""
    interval, grace = heartbeat_settings(storage)
    seg = trial.system_attrs.get(SEGMENT_KEY)
    head = (
        f"Trial {trial.number} was finished ({trial.state.name}) by another worker while this "
        "worker was running it"
    )
    tail = "This worker stops the trial and goes on with the next one"
    if trial.state != TrialState.FAIL:
        return (
            f"{head}: both claimed it (a storage whose claims are not atomic, e.g. Optuna's "
            f"default SQLite storage; use optuna_dyhpo.storages.create_sqlite_storage). "
            f"{tail}; the other worker's result stands."
        )
    if interval is not None:
        why = (
            f"its heartbeat was not recorded for grace_period={grace} s "
            f"(heartbeat_interval={interval} s), e.g. because the machine or the database "
            "was overloaded"
        )
        fix = f" Raise heartbeat_interval and grace_period ({README_SECTION})."
    else:
        why = "something other than this worker failed it"
        fix = ""
    if not isinstance(seg, dict):
        outcome = "no DyHPO state had been written for it"
    elif seg.get("parent") is not None:
        outcome = (
            f"configuration {seg.get('config')} is paused again at its last checkpoint "
            f"(step {int(seg.get('start', 1)) - 1}) and its next trial trains these steps again"
        )
    else:
        outcome = (
            f"configuration {seg.get('config')} had no checkpoint yet and is recorded as crashed"
        )
    return f"{head}: {why}. {tail}; {outcome}.{fix}"


def _dyhpo_sampler(study: optuna.Study) -> Any:
    from optuna_dyhpo._sampler import DyHPOSampler

    sampler = study.sampler
    return sampler if isinstance(sampler, DyHPOSampler) else None


def _finished_elsewhere(study: optuna.Study, trial_id: int) -> optuna.trial.FrozenTrial | None:
    try:
        frozen = study._storage.get_trial(trial_id)
    except KeyError:
        return None
    return frozen if frozen.state.is_finished() else None


def _wrap_tell(original: Callable[..., Any]) -> Callable[..., Any]:
    def tell(
        study: optuna.Study,
        trial: optuna.Trial | int,
        value_or_values: Any = None,
        state: TrialState | None = None,
        skip_if_finished: bool = False,
        suppress_warning: bool = False,
    ) -> tuple[TrialState, list[float] | None, str | None]:
        def call() -> tuple[TrialState, list[float] | None, str | None]:
            return original(
                study, trial, value_or_values, state, skip_if_finished, suppress_warning
            )

        sampler = _dyhpo_sampler(study)
        if sampler is None or not isinstance(trial, optuna.Trial) or skip_if_finished:
            return call()
        try:
            return call()
        except (UpdateFinishedTrialError, ValueError) as e:
            # "Cannot tell a FAIL trial." (finished before telling) or UpdateFinishedTrialError
            # (finished while telling): both leave the other worker's verdict in storage.
            if isinstance(e, ValueError) and not str(e).startswith("Cannot tell a "):
                raise
            frozen = _finished_elsewhere(study, trial._trial_id)
            if frozen is None:
                raise
        study._thread_local.cached_all_trials = None
        sampler._forget(trial._trial_id)
        warn_once(_logger, stopped_message(study._storage, frozen))
        # The storage keeps the other worker's verdict. PRUNED tells `_run_trial` to log the
        # trial as stopped and go on (FAIL would re-raise the objective's exception, e.g. the
        # UpdateFinishedTrialError of its next `trial.report`).
        return TrialState.PRUNED, None, None

    tell.__dyhpo_wrapped__ = original  # type: ignore[attr-defined]
    return tell


def _wrap_run_trial(original: Callable[..., Any]) -> Callable[..., Any]:
    def run_trial(study: optuna.Study, func: Any, catch: tuple[type[Exception], ...]) -> int:
        forget_pruned_line()  # a mark left by an earlier trial of this thread never applies
        sampler = _dyhpo_sampler(study)
        if sampler is not None:
            prepare_storage(study)  # before `study.ask()` claims an enqueued trial
        return original(study, func, catch)

    run_trial.__dyhpo_wrapped__ = original  # type: ignore[attr-defined]
    return run_trial


_EXPECTED = {
    "_tell_with_warning": [
        "study",
        "trial",
        "value_or_values",
        "state",
        "skip_if_finished",
        "suppress_warning",
    ],
    "_run_trial": ["study", "func", "catch"],
}
_install_lock = threading.Lock()


def install_optimize_hooks() -> bool:
    """Install the ``study.optimize`` wrappers described in the module docstring (idempotent).

    Returns:
        Whether the wrappers are in place.
    """
    from optuna.study import _optimize

    with _install_lock:
        wrappers = {"_tell_with_warning": _wrap_tell, "_run_trial": _wrap_run_trial}
        for name, expected in _EXPECTED.items():
            fn = getattr(_optimize, name, None)
            if fn is None:
                break
            if hasattr(fn, "__dyhpo_wrapped__"):
                continue
            if list(inspect.signature(fn).parameters) != expected:
                break
        else:
            for name, wrap in wrappers.items():
                fn = getattr(_optimize, name)
                if not hasattr(fn, "__dyhpo_wrapped__"):
                    setattr(_optimize, name, wrap(fn))
            return True
    warn_once(
        _logger,
        f"optuna {optuna.__version__} changed study.optimize's internals: a DyHPO trial that "
        "another worker fails as stale ends this worker's study.optimize, and sqlite:/// URLs "
        "are made safe only from the first decision on. Use generous heartbeat settings and "
        "optuna_dyhpo.storages.create_sqlite_storage.",
    )
    return False
