from __future__ import annotations

import os
import pickle
import re
import tempfile
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CHECKPOINT
from optuna_dyhpo._warnings import CheckpointError

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore


class TrialResume:
    """What a trial needs to know to continue a paused configuration, and its checkpoints.

    Create one at the top of the objective. For a fresh configuration :attr:`start_step` is 1
    and :meth:`load` returns ``None``; for a resumed one the trial already has the paused
    trial's parameters, :attr:`start_step` is the first step still to train, and :meth:`load`
    returns the object the paused trial saved. Checkpoints are Optuna artifacts of the trial
    that saved them (visible and downloadable in optuna-dashboard).

    Example:

        .. code::

            def objective(trial):
                lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
                model = make_model()
                optimizer = torch.optim.SGD(model.parameters(), lr=lr)
                resume = TrialResume(trial)
                state = resume.load()
                if state is not None:
                    model.load_state_dict(state["model"])
                    optimizer.load_state_dict(state["optimizer"])
                for epoch in resume.steps():
                    accuracy = train_one_epoch(model, optimizer)
                    trial.report(accuracy, epoch)
                    if trial.should_prune():
                        resume.save({"model": model.state_dict(),
                                     "optimizer": optimizer.state_dict()})
                        raise optuna.TrialPruned()
                return accuracy

    Args:
        trial: The running trial, started by :class:`~optuna_dyhpo.DyHPOSampler`.
        artifact_store: Where checkpoints live; default: the sampler's ``artifact_store``.

    Raises:
        RuntimeError: The trial was not started by :class:`~optuna_dyhpo.DyHPOSampler`.
    """

    def __init__(self, trial: optuna.Trial, artifact_store: ArtifactStore | None = None) -> None:
        from optuna_dyhpo._sampler import DyHPOSampler

        sampler = trial.study.sampler
        if not isinstance(sampler, DyHPOSampler):
            raise RuntimeError(
                "TrialResume needs a study created with `sampler=DyHPOSampler(...)`, but its "
                f"sampler is {type(sampler).__name__}."
            )
        self._trial = trial
        self._storage = trial.study._storage
        attrs = self._storage.get_trial_system_attrs(trial._trial_id)
        segment = attrs.get(SEGMENT_KEY)
        if not isinstance(segment, dict):
            raise RuntimeError(f"Trial {trial.number} was not started by DyHPOSampler.")
        self._sampler = sampler
        self._store = artifact_store
        self.config_id: int = int(segment["config"])
        """The configuration's id (number of its first trial)."""
        self.start_step: int = int(segment["start"])
        """First step this trial trains (1 for a fresh configuration)."""
        self.parent_trial_number: int | None = (
            None if segment.get("parent") is None else int(segment["parent"])
        )
        """The paused trial this one continues, or ``None``."""
        self.max_budget: int = sampler.max_budget
        """The last step any configuration may train."""

    @property
    def is_resumed(self) -> bool:
        """Whether this trial continues a paused configuration."""
        return self.parent_trial_number is not None

    @property
    def artifact_store(self) -> ArtifactStore:
        return self._store if self._store is not None else self._sampler.artifact_store

    def steps(self) -> range:
        """The steps (epochs) this trial may train: ``start_step .. max_budget``."""
        return range(self.start_step, self.max_budget + 1)

    def save(self, obj: Any) -> str:
        """Save ``obj`` with ``torch.save`` as this trial's checkpoint; call it before
        raising :class:`optuna.TrialPruned`.

        Keep ``obj`` to tensors and plain data (``state_dict()`` of models and optimizers,
        ``generator.get_state()``, dicts, lists, numbers, ...): :meth:`load` reads checkpoints
        with ``weights_only=True`` unless told otherwise.

        Args:
            obj: What the trial that resumes this configuration needs to continue training.

        Returns:
            The artifact id.
        """
        import torch

        last = self._storage.get_trial(self._trial._trial_id).last_step or 0
        fd, path = tempfile.mkstemp(prefix=f"dyhpo-trial{self._trial.number}-", suffix=".pt")
        os.close(fd)
        try:
            torch.save(obj, path)
            artifact_id = optuna.artifacts.upload_artifact(
                artifact_store=self.artifact_store,
                file_path=path,
                study_or_trial=self._trial,
                mimetype="application/octet-stream",
            )
        finally:
            os.remove(path)
        tid = self._trial._trial_id
        self._storage.set_trial_system_attr(
            tid, CHECKPOINT_KEY, {"artifact_id": artifact_id, "step": last}
        )
        self._storage.set_trial_user_attr(tid, USER_CHECKPOINT, artifact_id)
        return artifact_id

    def load(self, map_location: Any = "cpu", *, weights_only: bool = True) -> Any:
        """The checkpoint the paused trial saved, or ``None`` for a fresh configuration.

        Checkpoints often live in a store that other people or machines can write to (a
        shared file system, a bucket). Unpickling an arbitrary Python object from such a
        store can run arbitrary code, so by default the checkpoint is read with
        ``torch.load(..., weights_only=True)``, which only rebuilds tensors and plain data:
        ``state_dict()`` of models and optimizers, tensors, dicts, lists, tuples, sets,
        strings, numbers, booleans and ``None``. A random generator's state is a tensor
        (save ``generator.get_state()`` and restore it with ``generator.set_state(...)``), so
        it loads too. Other objects (instances of your own classes, numpy arrays, a
        ``torch.Generator`` or a whole ``nn.Module``) are refused with a
        :class:`~optuna_dyhpo.CheckpointError`; save their state as tensors or plain data, or,
        if you trust everyone who can write to the artifact store, pass
        ``weights_only=False``.

        Args:
            map_location: Passed to ``torch.load`` (where tensors are placed).
            weights_only: Whether to restrict unpickling to tensors and plain data (the
                default, safe for untrusted stores). ``False`` unpickles any object.

        Returns:
            The object passed to :meth:`save` by the paused trial, or ``None`` if this trial
            starts a fresh configuration.

        Raises:
            TypeError: ``weights_only`` is not a bool.
            CheckpointError: This trial resumes a configuration but the paused trial saved no
                checkpoint, or its artifact is missing or unreadable, or it holds objects that
                ``weights_only=True`` refuses. The message names the trial and the artifact.
        """
        if not isinstance(weights_only, bool):
            raise TypeError(
                "TrialResume.load: weights_only must be True or False, got "
                f"{weights_only!r} (of type {type(weights_only).__name__})."
            )
        if self.parent_trial_number is None:
            return None
        import torch

        study_id = self._trial.study._study_id
        parent_id = self._storage.get_trial_id_from_study_id_trial_number(
            study_id, self.parent_trial_number
        )
        info = self._storage.get_trial_system_attrs(parent_id).get(CHECKPOINT_KEY)
        if not isinstance(info, dict):
            raise CheckpointError(
                f"Trial {self._trial.number} resumes configuration {self.config_id}, but the "
                f"paused trial {self.parent_trial_number} saved no checkpoint (call "
                "TrialResume.save(...) before raising optuna.TrialPruned)."
            )
        artifact_id = str(info["artifact_id"])
        where = (
            f"Trial {self._trial.number} cannot read the checkpoint of paused trial "
            f"{self.parent_trial_number} (artifact {artifact_id!r} in "
            f"{type(self.artifact_store).__name__})"
        )
        try:
            with self.artifact_store.open_reader(artifact_id) as reader:
                return torch.load(reader, map_location=map_location, weights_only=weights_only)
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
