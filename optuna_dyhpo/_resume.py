from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_dyhpo._checkpoints import FILE_PREFIX
from optuna_dyhpo._checkpoints import recorded_checkpoint
from optuna_dyhpo._checkpoints import register_store
from optuna_dyhpo._checkpoints import remove_artifacts
from optuna_dyhpo._checkpoints import removed_reason
from optuna_dyhpo._checkpoints import warn_removal_failure
from optuna_dyhpo._cleanup import torch_load
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CHECKPOINT
from optuna_dyhpo._warnings import CheckpointError
from optuna_dyhpo._warnings import warn_once

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

_logger = get_logger("resume")


class TrialResume:
    """What a trial needs to know to continue a paused configuration, and its checkpoints.

    Create one at the top of the objective. For a fresh configuration :attr:`start_step` is 1
    and :meth:`load` returns ``None``; for a resumed one the trial already has the paused
    trial's parameters, :attr:`start_step` is the first step still to train, and :meth:`load`
    returns the object the paused trial saved. Checkpoints are Optuna artifacts of the trial
    that saved them (visible and downloadable in optuna-dashboard).

    Save a checkpoint before raising :class:`optuna.TrialPruned` (so the configuration can be
    resumed) and also after the last epoch, before returning (so the final model of a
    configuration that reaches ``max_budget`` or is stopped by the budget is kept; load it
    later with :func:`~optuna_dyhpo.load_checkpoint`). A configuration keeps one checkpoint:
    once a trial that saved a newer one has ended, DyHPO removes the older one from the store.

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
                resume.save({"model": model.state_dict(),      # the final checkpoint
                             "optimizer": optimizer.state_dict()})
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
        if artifact_store is not None:
            register_store(self._storage, trial.study._study_id, artifact_store)
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
        raising :class:`optuna.TrialPruned`, and after the last epoch before returning.

        The new checkpoint replaces this trial's earlier one (that one is removed once the new
        one is written and recorded). The configuration's previous checkpoint (the one this
        trial resumed from) is removed when this trial has ended, not before: if this trial's
        worker died, the configuration would resume from it again.

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
        fd, path = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{self._trial.number}-", suffix=".pt")
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
        earlier = recorded_checkpoint(self._storage.get_trial(tid))
        self._storage.set_trial_system_attr(
            tid, CHECKPOINT_KEY, {"artifact_id": artifact_id, "step": last}
        )
        self._storage.set_trial_user_attr(tid, USER_CHECKPOINT, artifact_id)
        if earlier is not None:  # nobody loads a running trial's checkpoint
            try:
                remove_artifacts(
                    self._storage,
                    self._trial.study._study_id,
                    lambda: self.artifact_store,
                    {earlier: self._trial.number},
                    "superseded",
                )
            except Exception as err:  # a later sweep retries; the new checkpoint is safe
                warn_removal_failure(f"{type(err).__name__}: {err}")
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
            optuna.TrialPruned: The checkpoint was removed on purpose
                (:func:`~optuna_dyhpo.remove_checkpoints` or
                :func:`~optuna_dyhpo.remove_all_checkpoints`): the configuration is stopped
                and never resumed again.
        """
        if not isinstance(weights_only, bool):
            raise TypeError(
                "TrialResume.load: weights_only must be True or False, got "
                f"{weights_only!r} (of type {type(weights_only).__name__})."
            )
        if self.parent_trial_number is None:
            return None
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
            return torch_load(self.artifact_store, artifact_id, where, map_location, weights_only)
        except CheckpointError as err:
            why = removed_reason(self._storage, study_id, artifact_id, self.parent_trial_number)
            if why is None:
                raise
            if why == "superseded":
                raise CheckpointError(f"{err} (DyHPO removed it as superseded)") from err
        message = (
            f"Trial {self._trial.number} does not resume configuration {self.config_id}: its "
            f"checkpoint (trial {self.parent_trial_number}) was removed by {why}. The "
            "configuration is stopped."
        )
        warn_once(_logger, message)
        raise optuna.TrialPruned(message)
