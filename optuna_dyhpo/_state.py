"""Reading DyHPO's configurations back from Optuna storage.

Everything DyHPO knows lives in the trials of the study (see ``docs/contract.md``); this module
turns them into one record per configuration. Finished trials are immutable, so their parsed
form is cached by trial id; only unfinished trials are parsed again on every read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

SEGMENT_KEY = "dyhpo:segment"
PAUSED_KEY = "dyhpo:paused_at"
CHECKPOINT_KEY = "dyhpo:checkpoint"

USER_CONFIG = "dyhpo_config"
USER_PARENT = "dyhpo_continues_trial"
USER_START = "dyhpo_start_epoch"
USER_STATUS = "dyhpo_status"
USER_CHECKPOINT = "dyhpo_checkpoint"


def is_crashed(state: TrialState, status: str | None) -> bool:
    """A FAIL trial that the objective did not fail (its worker died)."""
    return state == TrialState.FAIL and status != "failed"


@dataclass(frozen=True)
class _Segment:
    trial_id: int
    number: int
    state: TrialState
    config: int
    start: int
    parent: int | None
    paused_at: int | None
    values: dict[int, float]
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    ended: str | None

    @property
    def crashed(self) -> bool:
        """Failed, but not by the objective: the worker died (heartbeat). A worker can also die
        after ``after_trial`` wrote the status and before Optuna stored the trial's state, so
        only ``"failed"`` (written for an objective's exception) means a real failure."""
        return is_crashed(self.state, self.ended)


@dataclass
class Configuration:
    """One hyperparameter configuration and its whole learning curve across trials.

    Attributes:
        config_id: Number of the configuration's first trial.
        params: The configuration's parameters.
        curve: Reported values for steps ``1..last_step``, in the user's metric.
        trial_numbers: The trials (segments) that trained it, oldest first.
        status: ``"running"``, ``"paused"``, ``"completed"``, ``"failed"``, ``"stopped"``
            (pruned, but not paused by DyHPO, or paused at the maximum budget),
            ``"diverged"`` (reported NaN or infinity; its finite prefix is kept) or
            ``"crashed"`` (its first trial's worker died before it was ever paused).
            A configuration whose *continuation* crashed is ``"paused"`` again at its last
            checkpoint: the crashed trial's steps are not part of ``curve``.
        last_step: Number of steps in ``curve``.
    """

    config_id: int
    params: dict[str, Any]
    curve: list[float]
    trial_numbers: list[int]
    status: str
    distributions: dict[str, BaseDistribution] = field(repr=False, default_factory=dict)
    last_trial_id: int = field(repr=False, default=-1)

    @property
    def last_step(self) -> int:
        return len(self.curve)

    def best_value(self, direction: optuna.study.StudyDirection) -> float | None:
        if not self.curve:
            return None
        return (
            max(self.curve)
            if direction == optuna.study.StudyDirection.MAXIMIZE
            else min(self.curve)
        )


def _parse(trial: FrozenTrial) -> _Segment | None:
    seg = trial.system_attrs.get(SEGMENT_KEY)
    if not isinstance(seg, dict):
        return None
    paused = trial.system_attrs.get(PAUSED_KEY)
    return _Segment(
        trial_id=trial._trial_id,
        number=trial.number,
        state=trial.state,
        config=int(seg["config"]),
        start=int(seg["start"]),
        parent=None if seg.get("parent") is None else int(seg["parent"]),
        paused_at=None if paused is None else int(paused),
        values=dict(trial.intermediate_values),
        params=dict(trial.params),
        distributions=dict(trial.distributions),
        ended=trial.user_attrs.get(USER_STATUS),
    )


def _status(latest: _Segment, last_step: int, diverged: bool, max_budget: int | None) -> str:
    if latest.state == TrialState.RUNNING:
        return "running"
    if diverged:
        return "diverged"
    if latest.state == TrialState.COMPLETE:
        return "completed"
    if latest.state == TrialState.FAIL:
        return "failed"
    if latest.state == TrialState.PRUNED:
        below_max = max_budget is None or last_step < max_budget
        if latest.paused_at is not None and latest.paused_at == last_step and below_max:
            return "paused"
        return "stopped"
    return "waiting"


class StudyReader:
    """Builds :class:`Configuration` records from a study's trials, caching finished ones."""

    def __init__(self) -> None:
        self._finished: dict[int, _Segment | None] = {}

    def segments(self, trials: Iterable[FrozenTrial]) -> list[_Segment]:
        out: list[_Segment] = []
        for t in trials:
            if t.state == TrialState.WAITING:
                continue
            if t.state.is_finished():
                if t._trial_id not in self._finished:
                    self._finished[t._trial_id] = _parse(t)
                seg = self._finished[t._trial_id]
            else:
                seg = _parse(t)
            if seg is not None:
                out.append(seg)
        return out

    def read(self, study: optuna.Study, max_budget: int | None = None) -> dict[int, Configuration]:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        return self.configurations(self.segments(trials), max_budget)

    @staticmethod
    def configurations(
        segments: list[_Segment], max_budget: int | None = None
    ) -> dict[int, Configuration]:
        by_config: dict[int, list[_Segment]] = {}
        for seg in segments:
            by_config.setdefault(seg.config, []).append(seg)
        configs: dict[int, Configuration] = {}
        for cid, segs in by_config.items():
            segs.sort(key=lambda s: (s.start, s.number))
            # A crashed continuation left no checkpoint behind: the configuration continues
            # from its previous segment, and the crashed steps are trained again.
            live = [s for s in segs if not s.crashed]
            merged: dict[int, float] = {}
            for s in live:
                merged.update(s.values)
            curve: list[float] = []
            diverged = False
            step = 1
            while step in merged:
                v = merged[step]
                if not math.isfinite(v):
                    diverged = True
                    break
                curve.append(v)
                step += 1
            latest = live[-1] if live else segs[-1]
            root = segs[0]
            status = _status(latest, len(curve), diverged, max_budget) if live else "crashed"
            configs[cid] = Configuration(
                config_id=cid,
                params=root.params if root.params else latest.params,
                curve=curve,
                trial_numbers=[s.number for s in segs],
                status=status,
                distributions=root.distributions or latest.distributions,
                last_trial_id=latest.trial_id,
            )
        return configs


def get_configurations(study: optuna.Study) -> list[Configuration]:
    """Every configuration of a DyHPO study, with its whole learning curve.

    A configuration that was paused and resumed is trained by several trials; this joins
    them back into one record, ordered by configuration id.

    Example:

        .. code::

            for c in optuna_dyhpo.get_configurations(study):
                print(c.config_id, c.status, c.last_step, c.params)

    Args:
        study: A study optimised with :class:`~optuna_dyhpo.DyHPOSampler`.

    Returns:
        The configurations, oldest first.
    """
    from optuna_dyhpo._sampler import DyHPOSampler

    sampler = study.sampler
    max_budget = sampler.max_budget if isinstance(sampler, DyHPOSampler) else None
    configs = StudyReader().read(study, max_budget)
    return [configs[k] for k in sorted(configs)]
