"""Public checkpoint calls: load a configuration's checkpoint, keep the best, remove them all."""

from __future__ import annotations

import io
import pickle
import re
from typing import TYPE_CHECKING
from typing import Any

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.study import StudyDirection

from optuna_dyhpo._checkpoints import cache
from optuna_dyhpo._checkpoints import live_checkpoints
from optuna_dyhpo._checkpoints import remove_artifacts
from optuna_dyhpo._checkpoints import store_of
from optuna_dyhpo._checkpoints import study_checkpoints
from optuna_dyhpo._checkpoints import superseded
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import ALL_CHECKPOINTS_REMOVED_KEY
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import acquire_claim
from optuna_dyhpo._state import claim_name
from optuna_dyhpo._state import release_claim
from optuna_dyhpo._study_io import StudyReader
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import CheckpointError

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

_CLAIM_TIMEOUT = 600.0
_logger = get_logger("checkpoints")

_READER = StudyReader()


def _configurations(study: optuna.Study) -> dict[int, Configuration]:
    from optuna_dyhpo._sampler import DyHPOSampler

    sampler = study.sampler
    max_budget = sampler.max_budget if isinstance(sampler, DyHPOSampler) else None
    return _READER.read(study, max_budget)


def _ranked(study: optuna.Study, configs: dict[int, Configuration]) -> list[int]:
    """Configuration ids, best first (by best reported value; ties: oldest first)."""
    sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
    scored = []
    for cid, c in configs.items():
        best = c.best_value(study.direction)
        scored.append((best is None, 0.0 if best is None else sign * best, cid))
    return [cid for *_, cid in sorted(scored)]


def remove_checkpoints(
    study: optuna.Study, *, keep_best: int = 1, artifact_store: ArtifactStore | None = None
) -> int:
    """Free the artifact store: keep only the checkpoints of the best ``keep_best``
    configurations.

    Removes every superseded checkpoint (DyHPO removes those by itself as the run goes; this
    also catches the last ones of a run with heartbeats), then the checkpoint of every
    configuration that is not among the best ``keep_best`` by its best reported value. It
    never removes the checkpoint of the best configuration (the incumbent), of a running
    configuration, or of a paused configuration that a worker is claiming right now; each
    paused configuration is claimed (like a resume) while its checkpoint is removed. If the
    study goes on, a paused configuration whose checkpoint was removed is *stopped* when it
    would be resumed (that trial ends pruned without training).

    A configuration's checkpoint is its latest state (the one a resume continues from), not
    necessarily its state at its best epoch.

    Example:

        .. code::

            study.optimize(objective, callbacks=[StopAfterEpochs(1000)])
            optuna_dyhpo.remove_checkpoints(study, keep_best=3)

    Args:
        study: A study run with :class:`~optuna_dyhpo.DyHPOSampler`.
        keep_best: How many of the best configurations keep their checkpoint (>= 1).
        artifact_store: The checkpoint store; default: the study's DyHPOSampler's store
            (required when the study was loaded with another sampler).

    Returns:
        The number of checkpoints removed.

    Raises:
        ValueError: ``keep_best`` is not an integer >= 1, or no store is known.
    """
    check_int("keep_best", keep_best, 1, " (remove_all_checkpoints removes every checkpoint)")
    store = store_of(study, artifact_store)
    storage, study_id = study._storage, study._study_id
    infos = study_checkpoints(storage, study_id)
    removed = remove_artifacts(storage, study_id, lambda: store, superseded(infos), "superseded")
    configs = _configurations(study)
    live = live_checkpoints(infos)
    ranked = _ranked(study, configs)  # ranked[0] is the incumbent: always kept
    for cid in ranked[keep_best:]:
        c = configs[cid]
        if cid not in live or c.status in ("running", "waiting"):
            continue
        artifact_id, number = live[cid]
        if c.status != "paused":
            removed += remove_artifacts(
                storage, study_id, lambda: store, {artifact_id: number}, "remove_checkpoints"
            )
            continue
        parent = storage.get_trial(c.last_trial_id).number
        children = _READER.continuations(study, parent)
        claim = acquire_claim(
            storage, claim_name(study.study_name, parent, len(children)), _CLAIM_TIMEOUT
        )
        if claim is None:
            continue  # a worker is resuming it right now
        try:
            if any(not crashed for crashed in _READER.continuations(study, parent).values()):
                continue  # resumed since we read the study
            removed += remove_artifacts(
                storage, study_id, lambda: store, {artifact_id: number}, "remove_checkpoints"
            )
        finally:
            release_claim(storage, claim)
    _logger.info(f"Removed {removed} checkpoints of study '{study.study_name}'.")
    return removed


def remove_all_checkpoints(
    study: optuna.Study, *, artifact_store: ArtifactStore | None = None
) -> int:
    """Remove every DyHPO checkpoint of the study, the best configuration's included.

    Call it before deleting a study (``optuna.delete_study`` leaves artifacts in the store),
    or when an in-memory study ends. Use it when no worker runs on the study: a worker that
    resumes a configuration afterwards finds its checkpoint removed and stops the
    configuration.

    Example:

        .. code::

            study = optuna.load_study(study_name="my-study", storage=storage)
            optuna_dyhpo.remove_all_checkpoints(study, artifact_store=store)
            optuna.delete_study(study_name="my-study", storage=storage)

    Args:
        study: A study run with :class:`~optuna_dyhpo.DyHPOSampler`.
        artifact_store: The checkpoint store; default: the study's DyHPOSampler's store
            (required when the study was loaded with another sampler).

    Returns:
        The number of checkpoints removed.

    Raises:
        ValueError: No store is known.
    """
    store = store_of(study, artifact_store)
    storage, study_id = study._storage, study._study_id
    trials = storage.get_all_trials(study_id, deepcopy=False)
    infos = study_checkpoints(storage, study_id, trials)
    # One mark for all (set first: a resume that misses its checkpoint then stops cleanly).
    storage.set_study_system_attr(
        study_id, ALL_CHECKPOINTS_REMOVED_KEY, max((t.number for t in trials), default=-1) + 1
    )
    done = cache.done_set(storage, study_id)
    removed = 0
    for artifact_id in sorted({a for t in infos for a in t.uploaded} - done):
        try:
            store.remove(artifact_id)
            removed += 1
        except ArtifactNotFound:
            pass  # removed before
        done.add(artifact_id)
    _logger.info(f"Removed {removed} checkpoints of study '{study.study_name}'.")
    return removed


def load_checkpoint(
    study: optuna.Study,
    configuration_id: int,
    *,
    artifact_store: ArtifactStore | None = None,
    map_location: Any = "cpu",
    weights_only: bool = True,
) -> Any:
    """The latest checkpoint of a configuration, e.g. the best model after a run.

    A configuration's checkpoint is what its latest trial that saved one passed to
    :meth:`TrialResume.save <optuna_dyhpo.TrialResume.save>`: its final state if the objective
    also saves after the last epoch (recommended), else its state when it was last paused.

    Example:

        .. code::

            best = max(get_configurations(study), key=lambda c: max(c.curve, default=0.0))
            state = optuna_dyhpo.load_checkpoint(study, best.config_id)
            model.load_state_dict(state["model"])

    Args:
        study: A study run with :class:`~optuna_dyhpo.DyHPOSampler`.
        configuration_id: The configuration (``Configuration.config_id``).
        artifact_store: The checkpoint store; default: the study's DyHPOSampler's store.
        map_location: Passed to ``torch.load``.
        weights_only: See :meth:`TrialResume.load <optuna_dyhpo.TrialResume.load>`.

    Returns:
        The saved object.

    Raises:
        CheckpointError: The configuration has no checkpoint, or it cannot be read.
    """
    store = store_of(study, artifact_store)
    live = live_checkpoints(study_checkpoints(study._storage, study._study_id))
    if configuration_id not in live:
        raise CheckpointError(
            f"Configuration {configuration_id} of study '{study.study_name}' has no checkpoint "
            "(call TrialResume.save(...) before pausing and at the end of the objective)."
        )
    artifact_id, number = live[configuration_id]
    where = (
        f"Cannot read the checkpoint of configuration {configuration_id} (trial {number}, "
        f"artifact {artifact_id!r} in {type(store).__name__})"
    )
    return torch_load(store, artifact_id, where, map_location, weights_only)


def torch_load(
    store: ArtifactStore, artifact_id: str, where: str, map_location: Any, weights_only: bool
) -> Any:
    """``torch.load`` of an artifact; every failure is a :class:`CheckpointError` that starts
    with ``where``."""
    if not isinstance(weights_only, bool):
        raise TypeError(
            "weights_only must be True or False, got "
            f"{weights_only!r} (of type {type(weights_only).__name__})."
        )
    import torch

    try:
        with store.open_reader(artifact_id) as reader:
            # S3's and GCS's readers are streams; torch.load needs to seek.
            seekable = getattr(reader, "seekable", None)
            source = reader if callable(seekable) and seekable() else io.BytesIO(reader.read())
            return torch.load(source, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if not weights_only:
            raise CheckpointError(f"{where}: {type(err).__name__}: {err}") from err
        raise CheckpointError(
            f"{where} with weights_only=True: {_weights_only_reason(err)} "
            "weights_only=True loads only tensors and plain data (state_dicts, dicts, "
            "lists, tuples, sets, strings, numbers, None), because unpickling other "
            "objects can run arbitrary code. Save such data instead (e.g. "
            "generator.get_state() rather than the generator, tensors rather than numpy "
            "arrays), or, if you trust everyone who can write to the artifact store, "
            "call TrialResume(trial).load(weights_only=False)."
        ) from err
    except Exception as err:
        raise CheckpointError(f"{where}: {type(err).__name__}: {err}") from err


def _weights_only_reason(err: pickle.UnpicklingError) -> str:
    """The part of ``torch.load``'s weights-only error that says what was refused.

    Args:
        err: The error ``torch.load(..., weights_only=True)`` raised.

    Returns:
        One line ending in a full stop, e.g. ``"Unsupported global: GLOBAL mod.Cls was not an
        allowed global by default. ..."``; the whole message if it has no such part.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # drop terminal colour codes
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip().split("\n\n", 1)[0]
    text = " ".join(text.split())
    return text if text.endswith(".") else f"{text}."
