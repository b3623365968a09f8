from __future__ import annotations

import os
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

    def load(self, map_location: Any = "cpu") -> Any:
        """The checkpoint the paused trial saved, or ``None`` for a fresh configuration.

        Raises:
            CheckpointError: This trial resumes a configuration but the paused trial saved no
                checkpoint, or its artifact is missing or unreadable. The message names the
                trial and the artifact.
        """
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
        try:
            with self.artifact_store.open_reader(artifact_id) as reader:
                return torch.load(reader, map_location=map_location, weights_only=False)
        except Exception as err:
            raise CheckpointError(
                f"Trial {self._trial.number} cannot read the checkpoint of paused trial "
                f"{self.parent_trial_number} (artifact {artifact_id!r} in "
                f"{type(self.artifact_store).__name__}): {type(err).__name__}: {err}"
            ) from err
