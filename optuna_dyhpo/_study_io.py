"""Reading a study incrementally, and writing what a trial start writes in one transaction.

A decision needs every configuration of the study, but its storage work must not grow with the
study's history. Finished trials are immutable: :class:`StudyReader` parses each one once and
joins a configuration's segments again only when one of them changed. With Optuna's
``_CachedStorage`` (which wraps every :class:`~optuna.storages.RDBStorage`), ``get_all_trials``
fetches only the trials that were unfinished or new at the previous read, so a read costs
storage work in proportion to the new and running trials, not to the history.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
import threading
import time
from typing import Any
import weakref

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import FIT_LEASE_KEY
from optuna_dyhpo._state import MODEL_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_STATUS
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import Segment
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._state import is_crashed
from optuna_dyhpo._state import parse_trial

_logger = get_logger("state")


def _child_of(trial: FrozenTrial) -> tuple[int, bool] | None:
    """``(parent number, crashed)`` when ``trial`` continues another trial, else ``None``."""
    seg = trial.system_attrs.get(SEGMENT_KEY)
    if not isinstance(seg, dict) or not isinstance(seg.get("parent"), int):
        return None
    status = trial.user_attrs.get(USER_STATUS)
    return seg["parent"], is_crashed(trial.state, status if isinstance(status, str) else None)


def segment_epochs(seg: Segment | None) -> int:
    """Steps the segment's trial trained itself, not a continuation's copies (0: no segment)."""
    return 0 if seg is None else len(seg.new_steps)


@dataclass
class _StudyCache:
    """What a reader knows of one study (for one ``foreign`` setting).

    Attributes:
        parsed: Finished trial id -> its segment (``None``: not a DyHPO trial).
        final: Configuration id -> its finished segments.
        built: Configuration id -> the configuration joined from its finished segments only
            (for ``budget``); dropped when a segment of it finishes.
        budget: The ``max_budget`` the configurations in ``built`` were joined for.
        children: Parent trial number -> its finished continuations (number -> crashed).
        open_children: The same for the continuations unfinished at the last read.
    """

    parsed: dict[int, Segment | None] = field(default_factory=dict)
    final: dict[int, list[Segment]] = field(default_factory=dict)
    built: dict[int, Configuration] = field(default_factory=dict)
    budget: int | None = None
    children: dict[int, dict[int, bool]] = field(default_factory=dict)
    open_children: dict[int, dict[int, bool]] = field(default_factory=dict)


class StudyReader:
    """Reads segments and configurations, caching finished trials per storage and study.

    The cache is keyed by the storage object and the study id, so one sampler can serve
    several studies (and storages) without mixing them. Configurations returned by
    :meth:`read` may be shared between reads: callers must not modify them. Threads of one
    process (``n_jobs > 1``) may share a reader.
    """

    def __init__(self) -> None:
        self._studies: weakref.WeakKeyDictionary[Any, dict[tuple[int, bool], _StudyCache]] = (
            weakref.WeakKeyDictionary()
        )
        self._segments: weakref.WeakKeyDictionary[
            Any, dict[tuple[int, int, bool], Segment | None]
        ] = weakref.WeakKeyDictionary()
        # Study id -> (length of the leading run of finished trials, their epochs).
        self._spent: weakref.WeakKeyDictionary[Any, dict[int, tuple[int, int]]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def segments(
        self,
        study: optuna.Study,
        *,
        foreign: bool = False,
        trials: list[FrozenTrial] | None = None,
    ) -> list[Segment]:
        """Every segment of the study (WAITING trials excluded), by trial number."""
        if trials is None:
            trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        out: list[Segment] = []
        for t in trials:
            seg = self._segment(study, t, foreign)
            if seg is not None:
                out.append(seg)
        return out

    def _segment(self, study: optuna.Study, t: FrozenTrial, foreign: bool) -> Segment | None:
        if t.state == TrialState.WAITING:
            return None
        if not t.state.is_finished():
            return parse_trial(t, foreign)
        finished = self._segments.setdefault(study._storage, {})
        key = (study._study_id, t._trial_id, foreign)
        if key not in finished:
            finished[key] = parse_trial(t, foreign)
        return finished[key]

    def epochs_spent(self, study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
        """Epochs every trial of the study trained itself (as
        :func:`~optuna_dyhpo.epochs_spent` counts them).

        The leading run of finished trials (numbers 0, 1, ...) is counted once and
        remembered, so a call costs work in proportion to the trials after it (the
        unfinished ones and those that finished after them), not to the history.
        """
        if trials is None:
            trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        with self._lock:
            counted = self._spent.setdefault(study._storage, {})
            i, total = counted.get(study._study_id, (0, 0))
            if i > len(trials) or (i and trials[i - 1].number != i - 1):
                i, total = 0, 0  # not the list it counted: count again
            while i < len(trials) and trials[i].number == i and trials[i].state.is_finished():
                total += segment_epochs(self._segment(study, trials[i], True))
                i += 1
            counted[study._study_id] = (i, total)
            return total + sum(segment_epochs(self._segment(study, t, True)) for t in trials[i:])

    def _update(
        self, study: optuna.Study, foreign: bool, trials: list[FrozenTrial] | None = None
    ) -> tuple[_StudyCache, dict[int, list[Segment]]]:
        """Parse the trials finished since the last read; return the study's cache and the
        segments of unfinished trials, by configuration."""
        storage = study._storage
        if trials is None:
            trials = storage.get_all_trials(study._study_id, deepcopy=False)
        sc = self._studies.setdefault(storage, {}).setdefault(
            (study._study_id, foreign), _StudyCache()
        )
        running: dict[int, list[Segment]] = {}
        open_children: dict[int, dict[int, bool]] = {}
        parsed = sc.parsed
        for t in trials:
            if t._trial_id in parsed:
                continue
            child = _child_of(t)
            if t.state.is_finished():
                seg = parsed[t._trial_id] = parse_trial(t, foreign)
                if child is not None:
                    sc.children.setdefault(child[0], {})[t.number] = child[1]
                if seg is not None:
                    sc.final.setdefault(seg.config, []).append(seg)
                    sc.built.pop(seg.config, None)
                continue
            if child is not None:
                open_children.setdefault(child[0], {})[t.number] = child[1]
            if t.state == TrialState.WAITING:
                continue
            seg = parse_trial(t, foreign)
            if seg is not None:
                running.setdefault(seg.config, []).append(seg)
        sc.open_children = open_children
        return sc, running

    def read(
        self,
        study: optuna.Study,
        max_budget: int | None = None,
        *,
        foreign: bool = False,
        trials: list[FrozenTrial] | None = None,
    ) -> dict[int, Configuration]:
        """Every configuration of the study, by configuration id (ascending); from
        ``trials`` (the study's trials as just read) when given."""
        with self._lock:
            sc, running = self._update(study, foreign, trials)
            if sc.budget != max_budget:
                sc.built.clear()
                sc.budget = max_budget
            for cid, segs in sc.final.items():
                if cid not in sc.built and cid not in running:
                    sc.built.update(build_configurations(segs, max_budget))
            out = dict(sc.built)
            for cid, segs in running.items():
                out.update(build_configurations([*sc.final.get(cid, ()), *segs], max_budget))
        return {cid: out[cid] for cid in sorted(out)}

    def continuations(
        self, study: optuna.Study, parent_number: int, *, fresh: bool = True
    ) -> dict[int, bool]:
        """Continuations of a trial: trial number -> crashed.

        Fresh from storage, or (``fresh=False``) as of this reader's last read of the study.
        A trial waiting to run that carries a copy of a continuation's attributes (as
        Optuna's retry callbacks make) counts as a live continuation.
        """
        with self._lock:
            sc = self._studies.get(study._storage, {}).get((study._study_id, False))
            if fresh or sc is None:
                sc, _ = self._update(study, False)
            return {
                **sc.children.get(parent_number, {}),
                **sc.open_children.get(parent_number, {}),
            }


def model_attribute(
    storage: BaseStorage, study_id: int
) -> tuple[Callable[[], Any], Callable[[dict[str, Any]], None]]:
    """Read and write the study's published model (``MODEL_KEY``; see ``_shared_model``).

    The read is one storage call (all the study's system attributes), made only when a
    process is about to fit; the write one per fit.
    """

    def read() -> Any:
        return storage.get_study_system_attrs(study_id).get(MODEL_KEY)

    def write(value: dict[str, Any]) -> None:
        storage.set_study_system_attr(study_id, MODEL_KEY, value)

    return read, write


@dataclass(frozen=True)
class FitLease:
    """A process's claim, in the study, that it is fitting the study's model right now.

    Attributes:
        held_elsewhere: Whether another process holds an unexpired lease.
        take: Take the lease (before a fit).
        release: Give it up (after the fit, published or not).
    """

    held_elsewhere: Callable[[], bool]
    take: Callable[[], None]
    release: Callable[[], None]


def fit_lease(storage: BaseStorage, study_id: int, owner: str, seconds: float) -> FitLease:
    """The lease ``FIT_LEASE_KEY`` of ``owner`` (one sampler in one process), valid for
    ``seconds`` after it is taken (a worker that dies while fitting holds it no longer)."""

    def held_elsewhere() -> bool:
        lease = storage.get_study_system_attrs(study_id).get(FIT_LEASE_KEY)
        if not isinstance(lease, dict) or lease.get("owner") in (None, owner):
            return False
        until = lease.get("until")
        return isinstance(until, (int, float)) and until > time.time()

    def take() -> None:
        storage.set_study_system_attr(
            study_id, FIT_LEASE_KEY, {"owner": owner, "until": time.time() + seconds}
        )

    def release() -> None:
        storage.set_study_system_attr(study_id, FIT_LEASE_KEY, {"owner": None, "until": 0})

    return FitLease(held_elsewhere, take, release)


def write_trial(
    storage: BaseStorage,
    trial_id: int,
    *,
    values: Mapping[int, float] | None = None,
    system_attrs: Mapping[str, Any] | None = None,
    user_attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write intermediate values and attributes of a running trial: in one transaction on
    an RDB storage (other processes see all of it or none of it), else one write each.

    Steps already written are replaced, as are attributes with the same keys.
    """
    values, system_attrs, user_attrs = values or {}, system_attrs or {}, user_attrs or {}
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, optuna.storages.RDBStorage):
        try:
            _write_trial_rdb(backend, trial_id, values, system_attrs, user_attrs)
            return
        except (ImportError, AttributeError) as err:  # Optuna's private layout changed
            _logger.debug(f"Batched trial write unavailable ({err!r}); one write each.")
    for key, value in system_attrs.items():
        storage.set_trial_system_attr(trial_id, key, value)
    for step, value in values.items():
        storage.set_trial_intermediate_value(trial_id, step, value)
    for key, value in user_attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def _write_trial_rdb(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    values: Mapping[int, float],
    system_attrs: Mapping[str, Any],
    user_attrs: Mapping[str, Any],
) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    import sqlalchemy

    set_attr = storage._set_trial_attr_without_commit
    model = models.TrialIntermediateValueModel
    rows = []
    for step, value in values.items():
        stored, kind = model.intermediate_value_to_stored_repr(value)
        rows.append(
            {
                "trial_id": trial_id,
                "step": step,
                "intermediate_value": stored,
                "intermediate_value_type": kind,
            }
        )
    with _create_scoped_session(storage.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        storage.check_trial_is_updatable(trial_id, trial.state)
        for key, value in system_attrs.items():
            set_attr(session, models.TrialSystemAttributeModel, trial_id, key, value)
        if rows:
            session.execute(
                sqlalchemy.delete(model).where(
                    model.trial_id == trial_id, model.step.in_(list(values))
                )
            )
            # One executemany: SQLAlchemy sends the rows in batches, not one per row.
            session.execute(sqlalchemy.insert(model), rows)
        for key, value in user_attrs.items():
            set_attr(session, models.TrialUserAttributeModel, trial_id, key, value)
