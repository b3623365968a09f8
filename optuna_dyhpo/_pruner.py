from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial

from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY

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

    Example:

        .. testcode::

            import optuna
            from optuna_dyhpo import DyHPOPruner, DyHPOSampler

            study = optuna.create_study(
                sampler=DyHPOSampler(max_budget=20), pruner=DyHPOPruner()
            )
    """

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
        system_attrs = storage.get_trial_system_attrs(trial._trial_id)
        segment = system_attrs.get(SEGMENT_KEY)
        if not isinstance(segment, dict):
            raise RuntimeError(
                f"Trial {trial.number} was not started by DyHPOSampler (it has no "
                f"'{SEGMENT_KEY}' attribute)."
            )
        start = int(segment["start"])
        own = sorted(s for s in trial.intermediate_values if s >= start or s < 1)
        if not own:
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
        value = trial.intermediate_values[last]
        if not math.isfinite(value):
            _logger.warning(
                f"Trial {trial.number} reported {value} at step {last}: its configuration "
                "is stopped and will not be resumed."
            )
            return True
        if last >= sampler.max_budget:
            return False
        if system_attrs.get(PAUSED_KEY) == last:
            return True  # already decided at this step
        configs = sampler._configurations(study)
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
        decision = sampler._decide(study, configs, running=config_id)
        if decision.kind == "continue":
            _logger.info(
                f"Configuration {config_id} (trial {trial.number}) continues to step "
                f"{last + 1} ({decision.reason}, log EI {decision.log_ei:.3g})."
            )
            return False
        storage.set_trial_system_attr(trial._trial_id, PAUSED_KEY, last)
        target = (
            f"configuration {decision.config_id} (step {decision.budget})"
            if decision.kind == "resume"
            else "a new configuration"
        )
        _logger.info(
            f"Paused configuration {config_id} of trial {trial.number} at step {last}; "
            f"the next step goes to {target} ({decision.reason}, log EI "
            f"{decision.log_ei:.3g})."
        )
        return True
