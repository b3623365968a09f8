"""The study's best configuration: one definition of "best", used everywhere in the package.

**Definition.** The incumbent of a DyHPO study is the best finite value reported at any epoch of
any configuration (the highest when maximising, the lowest when minimising), together with the
configuration, the epoch and the trial (segment) that reported it. Ties go to the epoch spent
first. An epoch counts once a trial has reported it, whether the trial later ends paused,
completed, stopped or failed; the epochs of a crashed continuation (its worker died) do not
count, because they are not part of the configuration's learning curve (they are trained again),
and NaN or infinite values never count.

This is the "best value observed" the default look-ahead acquisition compares against, the
``best_metric`` of HPO4DL's result rows, the last point of :func:`plot_incumbent
<optuna_dyhpo.visualization.plot_incumbent>`, the value in :class:`~optuna_dyhpo.StopAfterEpochs`'
progress bar and the study user attribute ``"dyhpo:best"``. (The engine's ``incumbent`` setting
is something else: the per-budget threshold of the next-step expected improvement.)

Optuna's ``study.best_trial`` is another thing again: the COMPLETE trial with the best *final*
value. It ignores paused configurations and every epoch before the last, and raises
``ValueError`` when no trial completed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_dyhpo._state import CHECKPOINT_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import build_configurations
from optuna_dyhpo._study_io import StudyReader

BEST_KEY = "dyhpo:best"
"""Study user attribute holding :meth:`BestConfiguration.to_dict` of the incumbent."""

_READER = StudyReader()  # finished trials are parsed once per (storage, study, trial)


@dataclass(frozen=True)
class BestConfiguration:
    """The study's incumbent (see :func:`best_configuration` for the definition).

    Attributes:
        value: The best finite value reported.
        params: The configuration's parameters.
        config_id: The configuration's id (the number of its first trial).
        epoch: The configuration's epoch (the ``step`` of ``trial.report``) that reported it.
        trial: The trial (segment) that trained and reported that epoch.
        checkpoint: The artifact id of a checkpoint of the configuration saved at exactly that
            epoch (a trial paused there), or ``None`` (e.g. it trained on past that epoch
            without pausing, or it completed there, or a later checkpoint of the configuration
            superseded it; :func:`~optuna_dyhpo.load_checkpoint` loads its live one).
        status: The configuration's status when it was read (``"paused"``, ``"running"``,
            ``"completed"``, ...).
    """

    value: float
    params: dict[str, Any]
    config_id: int
    epoch: int
    trial: FrozenTrial
    checkpoint: str | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: ``value``, ``params``, ``config_id``, ``epoch``, ``trial``
        (its number) and ``checkpoint`` (the status is left out: it changes)."""
        return {
            "value": self.value,
            "params": dict(self.params),
            "config_id": self.config_id,
            "epoch": self.epoch,
            "trial": self.trial.number,
            "checkpoint": self.checkpoint,
        }


def improves(value: float, best: float | None, maximize: bool) -> bool:
    """Whether ``value`` becomes the incumbent over ``best``: finite and strictly better.

    Example:
        >>> improves(0.9, 0.8, maximize=True), improves(0.8, 0.8, maximize=True)
        (True, False)
        >>> improves(float("nan"), None, maximize=False)
        False
    """
    if not math.isfinite(value):
        return False
    return best is None or (value > best if maximize else value < best)


def best_epoch(
    configs: Iterable[Configuration], maximize: bool
) -> tuple[Configuration, int] | None:
    """The configuration and its 1-based curve position holding the incumbent, or ``None``.

    Epochs are visited in the order the study spent them (trial number, then step), so a tie
    goes to the epoch spent first.
    """
    epochs = ((c.step_trials[i], i, c) for c in configs for i in range(len(c.curve)))
    best: tuple[Configuration, int] | None = None
    value: float | None = None
    for _, i, c in sorted(epochs, key=lambda e: (e[0], e[1])):
        if improves(c.curve[i], value, maximize):
            best, value = (c, i + 1), c.curve[i]
    return best


def _max_budget(study: optuna.Study) -> int | None:
    from optuna_dyhpo._sampler import DyHPOSampler

    sampler = study.sampler
    return sampler.max_budget if isinstance(sampler, DyHPOSampler) else None


def find_best(
    study: optuna.Study, trials: list[FrozenTrial] | None = None
) -> BestConfiguration | None:
    """:func:`best_configuration` from ``trials`` (default: read from storage), or ``None``
    when no epoch reported a finite value yet."""
    if trials is None:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    segments = _READER.segments(study, foreign=True, trials=trials)
    configs = build_configurations(segments, _max_budget(study))
    found = best_epoch(configs.values(), study.direction == StudyDirection.MAXIMIZE)
    if found is None:
        return None
    config, position = found
    by_number = {t.number: t for t in trials}
    owner = by_number[config.step_trials[position - 1]]
    # The checkpoint at that epoch, if a segment of the configuration paused there.
    checkpoint = None
    for number in config.trial_numbers:
        info = by_number[number].system_attrs.get(CHECKPOINT_KEY)
        if isinstance(info, dict) and info.get("step") == _epoch(owner, position):
            checkpoint = str(info["artifact_id"])
    if checkpoint is not None:
        from optuna_dyhpo._checkpoints import removed_reason

        # A later checkpoint of the configuration superseded it (or a cleanup removed it).
        if removed_reason(study._storage, study._study_id, checkpoint, owner.number):
            checkpoint = None
    return BestConfiguration(
        value=float(config.curve[position - 1]),
        params=dict(config.params),
        config_id=config.config_id,
        epoch=_epoch(owner, position),
        trial=owner,
        checkpoint=checkpoint,
        status=config.status,
    )


def _epoch(owner: FrozenTrial, position: int) -> int:
    """The reported step of curve position ``position`` (a trial DyHPO did not start may count
    its steps from 0)."""
    seg = owner.system_attrs.get(SEGMENT_KEY)
    if isinstance(seg, dict) or "dyhpo_config" in owner.user_attrs:
        return position
    first = min(owner.intermediate_values, default=1)
    return first + position - 1


def best_configuration(study: optuna.Study) -> BestConfiguration:
    """The best configuration of a DyHPO study so far: its best epoch, value and checkpoint.

    "Best" is the best finite value reported at any epoch of any configuration, by
    ``study.direction``; ties go to the epoch spent first, and the epochs of a crashed
    continuation do not count. Paused configurations count: the study may end with no COMPLETE
    trial, where ``study.best_trial`` raises ``ValueError`` but this works. The progress bar of
    :class:`~optuna_dyhpo.StopAfterEpochs`, :func:`~optuna_dyhpo.visualization.plot_incumbent`
    and the study user attribute ``"dyhpo:best"`` show the same incumbent.

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DyHPOPruner, DyHPOSampler, StopAfterEpochs, TrialResume
            from optuna_dyhpo import best_configuration

            def objective(trial):
                x = trial.suggest_float("x", 0.0, 1.0)
                value = 0.0
                for epoch in TrialResume(trial).steps():
                    value = x * (1.0 - 0.5**epoch)
                    trial.report(value, epoch)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
                return value

            study = optuna.create_study(
                direction="maximize", sampler=DyHPOSampler(max_budget=5, seed=0),
                pruner=DyHPOPruner(),
            )
            study.optimize(objective, callbacks=[StopAfterEpochs(12)])
            best = best_configuration(study)
            print(best.config_id, best.epoch, best.value, best.params, best.checkpoint)

    Args:
        study: A single-objective study whose trials report per-epoch intermediate values
            (trials of other samplers count as configurations of their own).

    Returns:
        The incumbent.

    Raises:
        ValueError: If the study is multi-objective or no epoch reported a finite value yet.
    """
    if len(study.directions) > 1:
        raise ValueError(
            "best_configuration supports single-objective studies only; this study has "
            f"{len(study.directions)} objectives."
        )
    best = find_best(study)
    if best is None:
        raise ValueError(
            f"Study '{study.study_name}' has no epoch with a finite reported value yet, so it "
            "has no best configuration."
        )
    return best


def record_trial_best(study: optuna.Study, trial: FrozenTrial) -> None:
    """Update the study user attribute ``"dyhpo:best"`` if ``trial`` beats it.

    Called by the sampler as each trial ends: one read of the study's user attributes, and a
    write only on a new best. With several workers, two new bests at the same moment may race
    (the write is an upsert); :func:`best_configuration` is always exact, and
    :class:`~optuna_dyhpo.DashboardUpdater` writes its exact value on every update.
    """
    seg = trial.system_attrs.get(SEGMENT_KEY)
    if not isinstance(seg, dict):
        return
    start = int(seg.get("start", 1))
    maximize = study.direction == StudyDirection.MAXIMIZE
    stored = study._storage.get_study_user_attrs(study._study_id).get(BEST_KEY)
    best = stored.get("value") if isinstance(stored, dict) else None
    best = float(best) if isinstance(best, (int, float)) else None
    new_best: int | None = None
    for step in sorted(s for s in trial.intermediate_values if s >= start):
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            break  # the curve ends at its first non-finite value
        if improves(value, best, maximize):
            best, new_best = value, step
    if new_best is None:
        return
    record = find_best(study)
    if record is not None:
        study._storage.set_study_user_attr(study._study_id, BEST_KEY, record.to_dict())
