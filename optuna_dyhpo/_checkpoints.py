"""The life cycle of DyHPO checkpoints: which are live, which are superseded, and removal.

A configuration is trained by a chain of trials. Each trial that calls
:meth:`TrialResume.save <optuna_dyhpo.TrialResume.save>` records one checkpoint (an Optuna
artifact); the configuration's *live* checkpoint is the one of its latest finished trial that
saved one. Everything else is garbage once it can no longer be loaded:

- an earlier save of the same trial (removed by ``save`` itself: nobody loads the checkpoint of
  a running trial);
- the checkpoint of an earlier trial of the chain, once a later trial that saved one has
  *finished* in storage (a continuation that crashes would resume from the earlier one, and the
  claim protocol lets a trial with a finished, non-crashed continuation never be resumed again);
- every checkpoint of a crashed trial (its configuration resumes from the trial before it).

Removals go through ``ArtifactStore.remove`` and are recorded as study attributes, so every
process skips them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
import itertools
import json
import threading
from typing import TYPE_CHECKING
from typing import Any
import weakref

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import ALL_CHECKPOINTS_REMOVED_KEY
from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import REMOVED_CHECKPOINT_PREFIX
from optuna_dyhpo._state import parse_trial
from optuna_dyhpo._warnings import warn_once

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.storages import BaseStorage

    from optuna_dyhpo._sampler import DyHPOSampler

FILE_PREFIX = "dyhpo-trial"
"""Checkpoint files are uploaded as ``dyhpo-trial<number>-<random>.pt``."""
_ARTIFACT_ATTR = "artifacts:"  # Optuna's prefix of a trial's artifact metadata

_logger = get_logger("checkpoints")


@dataclass(frozen=True)
class _TrialCheckpoints:
    """The checkpoints one DyHPO trial uploaded, and where it stands."""

    trial_id: int
    number: int
    config: int
    start: int
    finished: bool
    crashed: bool
    recorded: str | None  # the artifact its CHECKPOINT_KEY names (its latest save)
    uploaded: frozenset[str]  # every checkpoint artifact it uploaded


def _uploaded(trial: FrozenTrial) -> frozenset[str]:
    out: set[str] = set()
    for key, value in trial.system_attrs.items():
        if not key.startswith(_ARTIFACT_ATTR):
            continue
        try:
            meta = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            continue
        if isinstance(meta, dict) and str(meta.get("filename", "")).startswith(FILE_PREFIX):
            out.add(key[len(_ARTIFACT_ATTR) :])
    return frozenset(out)


def recorded_checkpoint(trial: FrozenTrial) -> str | None:
    """The artifact id of ``trial``'s latest checkpoint, or ``None``."""
    info = trial.system_attrs.get(CHECKPOINT_KEY)
    if isinstance(info, dict) and isinstance(info.get("artifact_id"), str):
        return str(info["artifact_id"])
    return None


def _trial_checkpoints(trial: FrozenTrial) -> _TrialCheckpoints | None:
    seg = parse_trial(trial)
    if seg is None:
        return None
    recorded = recorded_checkpoint(trial)
    uploaded = _uploaded(trial)
    return _TrialCheckpoints(
        trial_id=trial._trial_id,
        number=trial.number,
        config=seg.config,
        start=seg.start,
        finished=trial.state.is_finished(),
        crashed=seg.crashed,
        recorded=recorded,
        uploaded=uploaded | ({recorded} if recorded else set()),
    )


class _Cache:
    """Per process: parsed finished trials, what the sweeps after trials found, removals
    already done, and the stores in use."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trials: weakref.WeakKeyDictionary[Any, dict[tuple[int, int], Any]] = (
            weakref.WeakKeyDictionary()
        )
        self.sweeps: weakref.WeakKeyDictionary[Any, dict[int, _Sweep]] = (
            weakref.WeakKeyDictionary()
        )
        self.done: weakref.WeakKeyDictionary[Any, dict[int, set[str]]] = (
            weakref.WeakKeyDictionary()
        )
        self.stores: weakref.WeakKeyDictionary[Any, dict[int, ArtifactStore]] = (
            weakref.WeakKeyDictionary()
        )

    def done_set(self, storage: BaseStorage, study_id: int) -> set[str]:
        with self.lock:
            return self.done.setdefault(storage, {}).setdefault(study_id, set())


cache = _Cache()


def register_store(storage: BaseStorage, study_id: int, store: ArtifactStore) -> None:
    """Remember the store a :class:`TrialResume` was given, for removals in this process."""
    with cache.lock:
        cache.stores.setdefault(storage, {})[study_id] = store


def study_checkpoints(
    storage: BaseStorage, study_id: int, trials: Iterable[FrozenTrial] | None = None
) -> list[_TrialCheckpoints]:
    if trials is None:
        trials = storage.get_all_trials(study_id, deepcopy=False)
    with cache.lock:
        parsed = cache.trials.setdefault(storage, {})
    out: list[_TrialCheckpoints] = []
    for t in trials:
        if t.state == TrialState.WAITING:
            continue
        key = (study_id, t._trial_id)
        if t.state.is_finished() and key in parsed:
            info = parsed[key]
        else:
            info = _trial_checkpoints(t)
            if t.state.is_finished():
                parsed[key] = info
        if info is not None:
            out.append(info)
    return out


def superseded(
    trials: Iterable[_TrialCheckpoints], ending_trial_id: int | None = None
) -> dict[str, int]:
    """Checkpoints nobody can load any more: artifact id -> number of the trial that saved it.

    Args:
        trials: The study's DyHPO trials.
        ending_trial_id: A running trial whose objective has returned and that cannot crash
            any more (no heartbeat): it counts as finished.
    """
    out: dict[str, int] = {}
    latest: dict[int, tuple[int, int, str]] = {}
    for t in trials:
        if t.finished or t.trial_id == ending_trial_id:  # a running trial replaces its own saves
            _supersede(t, latest, out)
    return out


def _supersede(
    t: _TrialCheckpoints, latest: dict[int, tuple[int, int, str]], out: dict[str, int]
) -> None:
    """Add to ``out`` what the finished trial ``t`` supersedes; ``latest`` holds each
    configuration's newest recorded checkpoint so far, as (start, trial number, artifact id),
    and is updated (only the latest one of a chain stays live)."""
    if t.crashed:
        out.update(dict.fromkeys(t.uploaded, t.number))
        return
    out.update(dict.fromkeys(t.uploaded - {t.recorded}, t.number))
    if t.recorded is None:
        return
    key = (t.start, t.number, t.recorded)
    old = latest.get(t.config)
    if old is None or key > old:
        latest[t.config] = key
        if old is not None:
            out[old[2]] = old[1]
    else:
        out[t.recorded] = t.number


@dataclass
class _Sweep:
    """What this process's sweeps found in one study's finished trials (which never change)."""

    scanned: int = 0  # the leading trials (in number order), all finished and swept
    swept: set[int] = field(default_factory=set)  # ids of the later finished trials swept
    latest: dict[int, tuple[int, int, str]] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # superseded, not removed here yet


def superseded_since(
    storage: BaseStorage,
    study_id: int,
    trials: Sequence[FrozenTrial],
    ending_trial_id: int | None = None,
) -> dict[str, int]:
    """:func:`superseded` of the study's ``trials`` (in number order), at a cost in
    proportion to the trials after the leading run of finished ones: a finished trial is
    swept once per process, and what it superseded is kept until this process removed it."""
    with cache.lock:
        sweep = cache.sweeps.setdefault(storage, {}).setdefault(study_id, _Sweep())
        done = cache.done.setdefault(storage, {}).setdefault(study_id, set())
        for artifact_id in [a for a in sweep.found if a in done]:
            del sweep.found[artifact_id]
        ending = None
        for i, t in enumerate(itertools.islice(trials, sweep.scanned, None), sweep.scanned):
            if not t.state.is_finished():
                if t._trial_id == ending_trial_id:
                    ending = _trial_checkpoints(t)
                continue
            if t._trial_id not in sweep.swept:
                info = _trial_checkpoints(t)
                if info is not None:
                    _supersede(info, sweep.latest, sweep.found)
                sweep.swept.add(t._trial_id)
            if i == sweep.scanned:
                sweep.scanned += 1
                sweep.swept.discard(t._trial_id)
        out = dict(sweep.found)
        if ending is not None:  # counts as finished, once: it is swept when it is
            own = sweep.latest.get(ending.config)
            _supersede(ending, {} if own is None else {ending.config: own}, out)
    return out


def live_checkpoints(trials: Iterable[_TrialCheckpoints]) -> dict[int, tuple[str, int]]:
    """Each configuration's live checkpoint: config id -> (artifact id, trial number)."""
    best: dict[int, tuple[int, int, str]] = {}
    for t in trials:
        if t.crashed or t.recorded is None:
            continue
        key = (t.start, t.number, t.recorded)
        if t.config not in best or key > best[t.config]:
            best[t.config] = key
    return {c: (a, n) for c, (_, n, a) in best.items()}


def _removed_ids(storage: BaseStorage, study_id: int) -> tuple[set[str], int]:
    attrs = storage.get_study_system_attrs(study_id)
    ids = {
        k[len(REMOVED_CHECKPOINT_PREFIX) :]
        for k in attrs
        if k.startswith(REMOVED_CHECKPOINT_PREFIX)
    }
    below = attrs.get(ALL_CHECKPOINTS_REMOVED_KEY)
    return ids, int(below) if isinstance(below, int) else 0


def removed_reason(
    storage: BaseStorage, study_id: int, artifact_id: str, trial_number: int
) -> str | None:
    """Why DyHPO removed the checkpoint ``artifact_id`` of trial ``trial_number`` (``None``:
    it did not)."""
    attrs = storage.get_study_system_attrs(study_id)
    mark = attrs.get(REMOVED_CHECKPOINT_PREFIX + artifact_id)
    if isinstance(mark, dict):
        return str(mark.get("reason", "removed"))
    below = attrs.get(ALL_CHECKPOINTS_REMOVED_KEY)
    if isinstance(below, int) and trial_number < below:
        return "remove_all_checkpoints"
    return None


def remove_artifacts(
    storage: BaseStorage,
    study_id: int,
    store: Callable[[], ArtifactStore],
    items: dict[str, int],
    reason: str,
) -> int:
    """Remove each artifact from the store and mark it removed (a study attribute).

    A superseded checkpoint is removed first and marked after, so a failed removal is retried;
    any other checkpoint (``reason`` not ``"superseded"``) may still be loaded by a trial
    about to resume its configuration, so it is marked first: that trial finds the mark and
    stops the configuration instead of failing.
    """
    done = cache.done_set(storage, study_id)
    todo = {a: n for a, n in items.items() if a not in done}
    if not todo:
        return 0
    marked, below = _removed_ids(storage, study_id)
    done |= marked
    mark_first = reason != "superseded"
    removed = 0
    for artifact_id, number in todo.items():
        if artifact_id in marked or number < below:
            done.add(artifact_id)
            continue
        key = REMOVED_CHECKPOINT_PREFIX + artifact_id
        mark: dict[str, int | str] = {"trial": number, "reason": reason}
        if mark_first:
            storage.set_study_system_attr(study_id, key, mark)
        try:
            store().remove(artifact_id)
            removed += 1
        except ArtifactNotFound:
            pass  # removed by another process in the meantime
        if not mark_first:
            storage.set_study_system_attr(study_id, key, mark)
        done.add(artifact_id)
    _forget_best_checkpoint(storage, study_id, set(todo))
    return removed


def _forget_best_checkpoint(storage: BaseStorage, study_id: int, removed: set[str]) -> None:
    """The study attribute ``dyhpo:best`` no longer names a checkpoint that was removed."""
    from optuna_dyhpo._incumbent import BEST_KEY

    best = storage.get_study_user_attrs(study_id).get(BEST_KEY)
    if isinstance(best, dict) and best.get("checkpoint") in removed:
        storage.set_study_user_attr(study_id, BEST_KEY, {**best, "checkpoint": None})


def store_of(study: optuna.Study, artifact_store: ArtifactStore | None) -> ArtifactStore:
    from optuna_dyhpo._sampler import DyHPOSampler

    if artifact_store is not None:
        if not (hasattr(artifact_store, "remove") and hasattr(artifact_store, "open_reader")):
            raise ValueError(
                "`artifact_store` must be an Optuna artifact store (with `remove` and "
                f"`open_reader`), e.g. FileSystemArtifactStore, but got {artifact_store!r}."
            )
        return artifact_store
    registered = cache.stores.get(study._storage, {}).get(study._study_id)
    if registered is not None:
        return registered
    if isinstance(study.sampler, DyHPOSampler):
        return study.sampler.artifact_store
    raise ValueError(
        "`artifact_store` is required: the study's sampler is "
        f"{type(study.sampler).__name__}, not DyHPOSampler, so its checkpoint store is unknown "
        "(pass the store the DyHPOSampler of the run used)."
    )


def after_trial(study: optuna.Study, sampler: DyHPOSampler, trial: FrozenTrial) -> None:
    """Remove the checkpoints that the end of ``trial`` (or earlier ends) superseded.

    Called by the sampler when a trial's objective has returned, just before Optuna stores the
    trial's state. With a heartbeat, a worker killed in between would make the trial *crashed*
    and its configuration resume from the previous checkpoint, so that one is kept until the
    trial is finished in storage (the next sweep, in any worker, removes it).
    """
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    try:
        ending = None if is_heartbeat_enabled(storage) else trial._trial_id
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
        items = superseded_since(storage, study._study_id, trials, ending)
        remove_artifacts(
            storage, study._study_id, lambda: store_of(study, None), items, "superseded"
        )
    except Exception as err:  # cleanup must never break a run: the next sweep retries
        warn_removal_failure(f"{type(err).__name__}: {err}")


_warned: set[str] = set()


def warn_removal_failure(why: str) -> None:
    """Warn (once per process) that a store refused a removal; later sweeps retry it."""
    if "failure" not in _warned:
        _warned.add("failure")
        warn_once(
            _logger, f"Could not remove superseded DyHPO checkpoints ({why}); retrying later."
        )
