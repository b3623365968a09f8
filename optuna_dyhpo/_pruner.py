from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_dyhpo import _mistakes
from optuna_dyhpo._budget import StopAfterEpochs
from optuna_dyhpo._budget import budget_reached
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._logging import replace_pruned_line
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import OncePerStudy

_logger = get_logger("pruner")


class DyHPOPruner(BasePruner):
    """Freeze-thaw pruner of DyHPO: pauses a trial when another configuration deserves the step.

    After every reported step, the running configuration competes with every paused
    configuration and with fresh candidates for the next step (DyHPO's multi-fidelity expected
    improvement, computed by the study's :class:`~optuna_dyhpo.DyHPOSampler`). When it loses,
    :meth:`prune` returns ``True``: the objective saves a checkpoint with
    :meth:`TrialResume.save <optuna_dyhpo.TrialResume.save>` and raises
    :class:`optuna.TrialPruned`. The configuration is *paused*, not discarded; a later trial may
    resume it.

    Rules the pruner enforces:

    - Steps are epochs counted from 1 and must be reported in order without gaps; anything else
      raises :class:`ValueError` (the trial fails, nothing else is touched).
    - A NaN or infinite value stops the configuration for good (it is never resumed); its
      finite values keep informing the model.
    - A configuration never trains past the sampler's ``max_budget``: at ``max_budget`` the
      pruner returns ``False`` so the objective can finish and return its value; a step beyond
      it raises :class:`ValueError`.
    - Under :class:`~optuna_dyhpo.StopAfterEpochs`, the epoch that spends the budget pauses
      the configuration and stops the study: the budget is spent exactly.
    - A resumed trial that calls :meth:`~optuna.trial.Trial.should_prune` before reporting
      its first new step (the objective started again from epoch 1: ``TrialResume``
      forgotten) gets a :class:`~optuna_dyhpo.DyHPOWarning`, once per study.

    Logs: one INFO line per paused trial (why it started, what it trained, and in favour of
    which configuration it is paused; it replaces Optuna's ``"Trial N pruned."`` line), and
    every ``summary_every`` epochs an INFO summary of the race. Decisions to continue are
    DEBUG lines.

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DyHPOPruner, DyHPOSampler

            study = optuna.create_study(
                sampler=DyHPOSampler(max_budget=20), pruner=DyHPOPruner()
            )

    Args:
        summary_every: Log a summary (configurations by status, best value) each time the
            study has spent another ``summary_every`` epochs (an integer >= 1).
    """

    def __init__(self, *, summary_every: int = 100) -> None:
        self.summary_every = check_int("summary_every", summary_every, 1)
        self._summarized: dict[tuple[int, int], int] = {}
        self._warned = OncePerStudy()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        from optuna_dyhpo._sampler import DyHPOSampler

        sampler = study.sampler
        if not isinstance(sampler, DyHPOSampler):
            raise RuntimeError(
                "DyHPOPruner needs DyHPOSampler: create the study with "
                "`sampler=DyHPOSampler(...)`, but its sampler is "
                f"{type(sampler).__name__}."
            )
        if study._is_multi_objective():
            raise ValueError("DyHPOPruner supports single-objective studies only.")
        storage = study._storage
        # One read of the study serves the whole decision: this trial's attributes as stored
        # (the pruner's own marks included), the epochs spent and the configurations.
        trials = storage.get_all_trials(study._study_id, deepcopy=False)
        own_row = trials[trial.number] if trial.number < len(trials) else None
        if own_row is None or own_row._trial_id != trial._trial_id:
            own_row = storage.get_trial(trial._trial_id)
        system_attrs = own_row.system_attrs
        segment = system_attrs.get(SEGMENT_KEY)
        if not isinstance(segment, dict):
            raise RuntimeError(
                f"Trial {trial.number} was not started by DyHPOSampler (it has no "
                f"'{SEGMENT_KEY}' attribute)."
            )
        start = int(segment["start"])
        own = sorted(s for s in trial.intermediate_values if s >= start or s < 1)
        if not own:
            if start > 1:
                config = int(segment["config"])
                _mistakes.resume_forgotten(study, self._warned, trial.number, config, start)
            return False
        last = own[-1]
        if own[0] < 1:
            raise ValueError(
                f"Trial {trial.number} reported step {own[0]}, but DyHPO counts steps (epochs) "
                "from 1."
            )
        if own != list(range(start, last + 1)):
            missing = sorted(set(range(start, last + 1)) - set(own))
            raise ValueError(
                f"Trial {trial.number} must report steps {start}, {start + 1}, ... in order "
                f"without gaps; steps {missing} are missing (reported: {own})."
            )
        if last > sampler.max_budget:
            raise ValueError(
                f"Trial {trial.number} reported step {last}, beyond the sampler's "
                f"max_budget={sampler.max_budget}; stop the training loop at max_budget "
                "(TrialResume.steps() does)."
            )
        # Epochs spent as StopAfterEpochs counts them (every trial's own epochs); the
        # configurations from the sampler's incremental read.
        spent = sampler._epochs_spent(study, trials)
        configs = sampler._configurations(study, trials)
        self._summary(study, configs, spent)
        budget = budget_reached(study, spent)
        pause = self._pause(study, trial, system_attrs, configs, last, budget)
        if budget is not None:
            budget.stop(study, spent)
        return pause

    def _pause(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        system_attrs: dict[str, Any],
        configs: dict[int, Configuration],
        last: int,
        budget: StopAfterEpochs | None,
    ) -> bool:
        """Whether the trial pauses after its valid step ``last`` (and its INFO line if so)."""
        from optuna_dyhpo._sampler import DyHPOSampler

        sampler = study.sampler
        assert isinstance(sampler, DyHPOSampler)
        value = trial.intermediate_values[last]
        if not math.isfinite(value):
            _logger.warning(
                f"Trial {trial.number} reported {value} at step {last}: its configuration "
                "is stopped and will not be resumed."
            )
            return True
        if last >= sampler.max_budget:
            return False
        storage = study._storage
        if system_attrs.get(PAUSED_KEY) == last:
            return True  # already decided at this step
        segment = system_attrs[SEGMENT_KEY]
        config_id = int(segment["config"])
        if config_id not in configs or configs[config_id].last_step != last:
            if storage.get_trial(trial._trial_id).state.is_finished():
                # Failed as stale by another worker (an overloaded machine): stop here;
                # `study.optimize` goes on (see `_liveness.install_optimize_hooks`).
                raise optuna.TrialPruned(
                    f"Trial {trial.number} was finished by another worker while it trained."
                )
            raise RuntimeError(
                f"Trial {trial.number}: the learning curve of configuration {config_id} in "
                "storage does not end at the reported step; was a step reported twice?"
            )
        if budget is not None:
            why = f": the budget of {budget.n_epochs} epochs is spent"
        else:
            decision = sampler._decide(study, configs, running=config_id)
            if decision.kind == "continue":
                _logger.debug(
                    f"Configuration {config_id} (trial {trial.number}) continues to step "
                    f"{last + 1} ({decision.reason}, log EI {decision.log_ei:.3g})."
                )
                return False
            target = (
                f"configuration {decision.config_id} (epoch {decision.budget})"
                if decision.kind == "resume"
                else "a new configuration"
            )
            why = f" in favour of {target} ({decision.reason}, log EI {decision.log_ei:.3g})"
        storage.set_trial_system_attr(trial._trial_id, PAUSED_KEY, last)
        start = int(segment["start"])
        epochs = f"epoch {last}" if start == last else f"epochs {start}-{last}"
        began = getattr(sampler, "_start_notes", {}).get(trial._trial_id)
        began = "" if began is None else f" ({began})"
        _logger.info(
            f"Trial {trial.number}{began} trained {epochs} of configuration {config_id} and is "
            f"paused{why}."
        )
        replace_pruned_line(trial.number)
        return True

    def _summary(self, study: optuna.Study, configs: dict[int, Configuration], spent: int) -> None:
        """An INFO line each time ``spent`` passes another multiple of ``summary_every``."""
        key = (id(study._storage), study._study_id)
        mark = spent // self.summary_every
        if key not in self._summarized:
            self._summarized[key] = mark  # the first call of this process sets the mark
            return
        if mark <= self._summarized[key]:
            return
        self._summarized[key] = mark
        counts: dict[str, int] = {}
        for c in configs.values():
            counts[c.status] = counts.get(c.status, 0) + 1
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        best: tuple[float, int, int] | None = None
        for c in configs.values():
            value = c.best_value(study.direction)
            if value is not None and (best is None or sign * value > sign * best[0]):
                best = (value, c.config_id, c.curve.index(value) + 1)
        where = (
            "no value yet"
            if best is None
            else f"best value {best[0]:.6g} (configuration {best[1]}, epoch {best[2]})"
        )
        _logger.info(
            f"{spent} epochs spent: {len(configs)} configurations ({by_status}); {where}."
        )
