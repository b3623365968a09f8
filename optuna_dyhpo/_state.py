"""DyHPO's state in Optuna storage: the keys, configurations, their status and resume claims.

Everything DyHPO knows lives in the trials of the study (see ``docs/contract.md``). This module
is the only place that knows the storage keys, turns trials into *segments* (one trial of a
configuration) and segments into :class:`Configuration` records, computes every status, and
implements the claim protocol that makes a resume happen exactly once. The sampler, pruner,
budget, Tuner, visualization and benchmarks all read the study through it.

Reading a study incrementally (finished trials are parsed once) is ``_study_io``'s part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
import functools
import math
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_dyhpo._logging import get_logger

SEGMENT_KEY = "dyhpo:segment"
PAUSED_KEY = "dyhpo:paused_at"
CHECKPOINT_KEY = "dyhpo:checkpoint"
CLAIMED_AT_KEY = "dyhpo:claimed_at"
CLAIM_MARK = ":dyhpo-claim:"
# Study attributes: a checkpoint DyHPO removed (one key per artifact), and "every checkpoint
# of a trial numbered below this was removed" (remove_all_checkpoints).
REMOVED_CHECKPOINT_PREFIX = "dyhpo:removed_checkpoint:"
ALL_CHECKPOINTS_REMOVED_KEY = "dyhpo:checkpoints_removed_below"
# Study attribute: the latest fitted surrogate, shared between processes (``_shared_model``).
MODEL_KEY = "dyhpo:model"
# Study system attribute: which process is fitting the study's model, and until when.
FIT_LEASE_KEY = "dyhpo:fitting"

USER_CONFIG = "dyhpo_config"
USER_PARENT = "dyhpo_continues_trial"
USER_START = "dyhpo_start_epoch"
USER_STATUS = "dyhpo_status"
USER_CHECKPOINT = "dyhpo_checkpoint"

_logger = get_logger("state")


# ---------------------------------------------------------------------------------- status
def finished_status(
    state: TrialState, values: dict[int, float], paused_at: int | None, max_budget: int | None
) -> str:
    """The ``dyhpo_status`` a DyHPO trial gets when it ends.

    ``"completed"`` (returned a value at ``max_budget``), ``"finished_early"`` (returned a
    value before ``max_budget``), ``"failed"`` (the objective raised), ``"diverged"``
    (reported NaN or infinity), ``"paused"`` (DyHPO paused it below ``max_budget``) or
    ``"stopped"`` (pruned otherwise). ``max_budget=None`` (not known): a returned value is
    ``"completed"``.
    """
    cap = (1 << 62) if max_budget is None else max_budget
    if state == TrialState.COMPLETE:
        if max_budget is not None and max(values, default=0) < max_budget:
            return "finished_early"
        return "completed"
    if state == TrialState.FAIL:
        return "failed"
    if not all(math.isfinite(v) for v in values.values()):
        return "diverged"
    last = max(values, default=0)
    if paused_at is not None and paused_at == last and last < cap:
        return "paused"
    return "stopped"


# What ``after_trial`` writes for an objective that ended normally, and the state Optuna was
# about to store. A FAIL trial with one of these died after ``after_trial`` (killed, or failed
# as stale, before Optuna stored its state): its objective had finished (a paused one had saved
# its checkpoint), so it counts as what it says.
SETTLED_STATES = {
    "paused": TrialState.PRUNED,
    "stopped": TrialState.PRUNED,
    "diverged": TrialState.PRUNED,
    "completed": TrialState.COMPLETE,
    "finished_early": TrialState.COMPLETE,
}
# A trial that started after the study's epoch budget was spent: no configuration, no epoch.
BUDGET_SPENT = "budget_spent"


def is_crashed(state: TrialState, status: str | None) -> bool:
    """A FAIL trial that the objective did not fail (its worker died before its objective
    ended): neither ``"failed"`` (written for an objective's exception) nor a status of an
    objective that ended normally (see ``SETTLED_STATES``)."""
    return state == TrialState.FAIL and status != "failed" and status not in SETTLED_STATES


@dataclass(frozen=True)
class Segment:
    """One trial of a configuration.

    Attributes:
        trial_id: Storage id of the trial.
        number: Trial number.
        state: Optuna state of the trial.
        config: The configuration it trains (number of the configuration's first trial).
        start: First step the trial trains itself; earlier steps are copied from its parent.
        parent: Number of the trial it continues, or ``None``.
        paused_at: Step at which DyHPO paused it, or ``None``.
        values: Its intermediate values (the copied ones included).
        params: Its parameters.
        distributions: Their distributions.
        ended: The ``dyhpo_status`` written when it ended (``None`` while running).
        dyhpo: Whether DyHPO started it (a trial of another sampler is a configuration of its
            own whose every reported step it trained).
    """

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
    dyhpo: bool = True

    @property
    def crashed(self) -> bool:
        """Failed, but not by the objective: the worker died (heartbeat)."""
        return is_crashed(self.state, self.ended)

    @property
    def settled_state(self) -> TrialState:
        """The state the trial ended with as its worker saw it (see ``SETTLED_STATES``)."""
        if self.state == TrialState.FAIL and self.ended in SETTLED_STATES:
            return SETTLED_STATES[self.ended]
        return self.state

    @functools.cached_property
    def new_steps(self) -> list[int]:
        """The steps this trial trained itself, ascending (computed once: a segment is a
        snapshot of its trial)."""
        return sorted(s for s in self.values if s >= self.start)

    @property
    def status(self) -> str:
        """``running``, ``waiting``, ``crashed`` or the status it ended with."""
        if self.state == TrialState.RUNNING:
            return "running"
        if self.state == TrialState.WAITING:
            return "waiting"
        if self.crashed:
            return "crashed"
        if self.ended is not None:
            return self.ended
        return finished_status(self.state, self.values, self.paused_at, None)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_trial(trial: FrozenTrial, foreign: bool = False) -> Segment | None:
    """The segment of ``trial``; ``None`` for a trial DyHPO did not start (unless ``foreign``:
    then it is a configuration of its own that trained every step it reported)."""
    seg = trial.system_attrs.get(SEGMENT_KEY)
    config = start = parent = None
    if isinstance(seg, dict):
        config, start = _as_int(seg.get("config")), _as_int(seg.get("start"))
        parent = _as_int(seg.get("parent"))
    elif _as_int(trial.user_attrs.get(USER_CONFIG)) is not None:
        # System attributes lost (e.g. a study copied without them): the user attributes say
        # the same.
        config = _as_int(trial.user_attrs.get(USER_CONFIG))
        start = _as_int(trial.user_attrs.get(USER_START)) or 1
        parent = _as_int(trial.user_attrs.get(USER_PARENT))
    dyhpo = config is not None and start is not None
    if not dyhpo:
        if not foreign:
            return None
        config, start, parent = trial.number, 0, None
    assert config is not None and start is not None
    status = trial.user_attrs.get(USER_STATUS)
    return Segment(
        trial_id=trial._trial_id,
        number=trial.number,
        state=trial.state,
        config=config,
        start=start,
        parent=parent,
        paused_at=_as_int(trial.system_attrs.get(PAUSED_KEY)),
        values=dict(trial.intermediate_values),
        params=dict(trial.params),
        distributions=dict(trial.distributions),
        ended=status if isinstance(status, str) else None,
        dyhpo=dyhpo,
    )


# ---------------------------------------------------------------------------- configurations
@dataclass
class Configuration:
    """One hyperparameter configuration and its whole learning curve across trials.

    Attributes:
        config_id: Number of the configuration's first trial.
        params: The configuration's parameters.
        curve: Reported values for steps ``1..last_step``, in the user's metric.
        trial_numbers: The trials (segments) that trained it, oldest first.
        status: ``"running"``, ``"paused"``, ``"completed"`` (returned at ``max_budget``),
            ``"finished_early"`` (the objective returned before ``max_budget``; never
            resumed), ``"failed"``, ``"stopped"``
            (pruned, but not paused by DyHPO, or paused at the maximum budget),
            ``"diverged"`` (reported NaN or infinity; its finite prefix is kept) or
            ``"crashed"`` (its first trial's worker died before it was ever paused).
            A configuration whose *continuation* crashed is ``"paused"`` again at its last
            checkpoint: the crashed trial's steps are not part of ``curve``.
        last_step: Number of steps in ``curve``.
        step_trials: For each step of ``curve``, the number of the trial that trained it.
    """

    config_id: int
    params: dict[str, Any]
    curve: list[float]
    trial_numbers: list[int]
    status: str
    distributions: dict[str, BaseDistribution] = field(repr=False, default_factory=dict)
    last_trial_id: int = field(repr=False, default=-1)
    step_trials: list[int] = field(repr=False, default_factory=list)

    @property
    def last_step(self) -> int:
        return len(self.curve)

    def best_value(self, direction: StudyDirection) -> float | None:
        if not self.curve:
            return None
        return max(self.curve) if direction == StudyDirection.MAXIMIZE else min(self.curve)


def _config_status(latest: Segment, last_step: int, diverged: bool, max_budget: int | None) -> str:
    state = latest.settled_state
    if state == TrialState.RUNNING:
        return "running"
    if state == TrialState.WAITING:
        return "waiting"
    if diverged:
        return "diverged"
    if state == TrialState.PRUNED:
        paused = latest.paused_at is not None and latest.paused_at == last_step
        return "paused" if paused and (max_budget is None or last_step < max_budget) else "stopped"
    if state != TrialState.COMPLETE:
        return "failed"
    early = max_budget is not None and last_step < max_budget
    return "finished_early" if early else "completed"


def build_configurations(
    segments: Iterable[Segment], max_budget: int | None = None
) -> dict[int, Configuration]:
    """Join segments into configurations (the one place where a configuration's status and
    curve are decided)."""
    by_config: dict[int, list[Segment]] = {}
    for seg in segments:
        by_config.setdefault(seg.config, []).append(seg)
    configs: dict[int, Configuration] = {}
    for cid, segs in by_config.items():
        segs.sort(key=lambda s: (s.start, s.number))
        # A crashed continuation left no checkpoint behind: the configuration continues from
        # its previous segment, and the crashed steps are trained again.
        live = [s for s in segs if not s.crashed]
        merged: dict[int, tuple[float, int]] = {}
        for s in live:
            for step, v in s.values.items():
                if step >= s.start or step not in merged:
                    merged[step] = (v, s.number)
        curve: list[float] = []
        owners: list[int] = []
        diverged = False
        step = 1 if all(s.dyhpo for s in segs) else min(merged, default=1)
        while step in merged:
            v, owner = merged[step]
            if not math.isfinite(v):
                diverged = True
                break
            curve.append(v)
            owners.append(owner)
            step += 1
        root = segs[0]
        if live:
            status = _config_status(live[-1], len(curve), diverged, max_budget)
        else:
            status = "crashed"
        latest = live[-1] if live else segs[-1]
        configs[cid] = Configuration(
            config_id=cid,
            params=root.params if root.params else latest.params,
            curve=curve,
            trial_numbers=[s.number for s in segs],
            status=status,
            distributions=root.distributions or latest.distributions,
            last_trial_id=latest.trial_id,
            step_trials=owners,
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
    from optuna_dyhpo._study_io import StudyReader

    configs = StudyReader().read(study, max_budget)
    return [configs[k] for k in sorted(configs)]


# ------------------------------------------------------------------------------------ claims
def claim_name(study_name: str, parent_number: int, n_children: int) -> str:
    """Name of the claim study that makes resuming trial ``parent_number`` a mutex."""
    return f"{study_name}{CLAIM_MARK}{parent_number}:{n_children}"


def acquire_claim(storage: BaseStorage, name: str, timeout: float) -> int | None:
    """Create the claim study ``name``; ``None`` if someone else holds it.

    A claim older than ``timeout`` seconds belongs to a worker that died while holding it; it
    is broken once and the acquisition retried. A claim without a time stamp (its worker died
    between creating it and stamping it) is stamped by the first worker that finds it, so it
    becomes stale ``timeout`` seconds later like any other.
    """
    for attempt in range(2):
        try:
            claim_id = storage.create_new_study([StudyDirection.MINIMIZE], study_name=name)
        except DuplicatedStudyError:
            if attempt:
                return None
            try:
                held_id = storage.get_study_id_from_name(name)
                since = storage.get_study_system_attrs(held_id).get(CLAIMED_AT_KEY)
                if since is None:
                    storage.set_study_system_attr(held_id, CLAIMED_AT_KEY, time.time())
                    return None
                if time.time() - float(since) < timeout:
                    return None
                storage.delete_study(held_id)
                _logger.warning(f"Broke the stale DyHPO claim '{name}' (held for > {timeout} s).")
            except KeyError:
                pass  # released in the meantime: try again
            continue
        storage.set_study_system_attr(claim_id, CLAIMED_AT_KEY, time.time())
        return claim_id
    return None


def release_claim(storage: BaseStorage, claim_id: int) -> None:
    """Delete the claim study (idempotent)."""
    try:
        storage.delete_study(claim_id)
    except KeyError:
        pass
