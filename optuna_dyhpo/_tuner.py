"""HPO4DL-compatible front end: ``Tuner(objective_function, configuration_space, ...).run()``."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
import csv
import math
from pathlib import Path
import shutil
import time
from typing import TYPE_CHECKING
from typing import Any
import warnings

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from optuna_dyhpo._budget import StopAfterEpochs
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._pruner import DyHPOPruner
from optuna_dyhpo._resume import TrialResume
from optuna_dyhpo._sampler import DyHPOSampler
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CONFIG
from optuna_dyhpo._validation import check_bool
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import DyHPOWarning

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

_logger = get_logger("tuner")

ObjectiveFunction = Callable[[dict[str, Any], int, int, str], Any]

SUPPORTED_OPTIMIZERS = ("dyhpo", "hyperband")
STUDY_NAME = "dyhpo"
_CSV_FIXED = ["configuration_id", "trial", "epoch", "metric", "best_metric", "time"]


# --------------------------------------------------------------------------- ConfigSpace
class _Param:
    """One ConfigSpace hyperparameter as Optuna sees it.

    ``distribution`` is ``None`` for a constant (never suggested, always in the configuration).
    ``values`` maps the Optuna value back to the ConfigSpace value (ordinal: index -> value).
    """

    def __init__(
        self,
        name: str,
        distribution: BaseDistribution | None,
        constant: Any = None,
        values: tuple[Any, ...] | None = None,
    ) -> None:
        self.name = name
        self.distribution = distribution
        self.constant = constant
        self.values = values

    def suggest(self, trial: optuna.Trial) -> Any:
        dist = self.distribution
        if dist is None:
            return self.constant
        if isinstance(dist, FloatDistribution):
            return trial.suggest_float(self.name, dist.low, dist.high, log=dist.log)
        if isinstance(dist, IntDistribution):
            value = trial.suggest_int(self.name, dist.low, dist.high, log=dist.log)
            return value if self.values is None else self.values[value]
        assert isinstance(dist, CategoricalDistribution)
        return trial.suggest_categorical(self.name, dist.choices)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (Optuna's categorical choices must be plain)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value


def _check_choice(hp_name: str, kind: str, value: Any) -> Any:
    value = _plain(value)
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(
            f"{kind} hyperparameter '{hp_name}' has the choice {value!r} of type "
            f"{type(value).__name__}; Optuna supports None, bool, int, float and str choices."
        )
    return value


def configspace_to_optuna(configuration_space: Any) -> dict[str, _Param]:
    """Map a ``ConfigSpace.ConfigurationSpace`` to Optuna, hyperparameter by hyperparameter.

    * ``UniformFloatHyperparameter`` -> ``FloatDistribution`` (``log`` kept),
    * ``UniformIntegerHyperparameter`` -> ``IntDistribution`` (``log`` kept),
    * ``CategoricalHyperparameter`` -> ``CategoricalDistribution`` (``weights`` are ignored,
      with a warning: DyHPO samples the space uniformly),
    * ``OrdinalHyperparameter`` -> ``IntDistribution`` over the index of its ``sequence`` (so
      the surrogate sees the order); the objective receives the value itself,
    * ``Constant`` -> not suggested; its value is always in the configuration.

    Conditions are honoured when trials suggest parameters (only active hyperparameters are
    suggested). Forbidden clauses and other hyperparameter types (normal, beta) raise a
    ``ValueError`` naming the unsupported feature.

    Returns:
        Parameters in ConfigSpace's (topological) order.
    """
    import ConfigSpace as CS

    if not isinstance(configuration_space, CS.ConfigurationSpace):
        raise ValueError(
            "`configuration_space` must be a ConfigSpace.ConfigurationSpace, but got "
            f"{type(configuration_space).__name__}."
        )
    if list(configuration_space.forbidden_clauses):
        raise ValueError(
            "`configuration_space` has forbidden clauses "
            f"({len(list(configuration_space.forbidden_clauses))}); the DyHPO Tuner supports "
            "conditions but not forbidden clauses. Remove them, or reject such configurations "
            "in the objective function."
        )
    out: dict[str, _Param] = {}
    for hp in configuration_space.values():
        name = hp.name
        if isinstance(hp, CS.UniformFloatHyperparameter):
            out[name] = _Param(
                name, FloatDistribution(float(hp.lower), float(hp.upper), log=bool(hp.log))
            )
        elif isinstance(hp, CS.UniformIntegerHyperparameter):
            out[name] = _Param(
                name, IntDistribution(int(hp.lower), int(hp.upper), log=bool(hp.log))
            )
        elif isinstance(hp, CS.CategoricalHyperparameter):
            weights = getattr(hp, "weights", None)
            if weights is not None and len(set(weights)) > 1:
                warnings.warn(
                    f"Categorical hyperparameter '{name}' has weights {tuple(weights)}; the "
                    "DyHPO Tuner ignores them (choices are sampled uniformly).",
                    DyHPOWarning,
                    stacklevel=3,
                )
            choices = tuple(_check_choice(name, "Categorical", c) for c in hp.choices)
            out[name] = _Param(name, CategoricalDistribution(choices))
        elif isinstance(hp, CS.OrdinalHyperparameter):
            sequence = tuple(_plain(v) for v in hp.sequence)
            out[name] = _Param(name, IntDistribution(0, len(sequence) - 1), values=sequence)
        elif isinstance(hp, CS.Constant):
            out[name] = _Param(name, None, constant=_plain(hp.value))
        else:
            raise ValueError(
                f"Hyperparameter '{name}' is a {type(hp).__name__}; the DyHPO Tuner supports "
                "UniformFloatHyperparameter, UniformIntegerHyperparameter, "
                "CategoricalHyperparameter, OrdinalHyperparameter and Constant."
            )
    return out


def _is_active(configuration_space: Any, name: str, values: Mapping[str, Any]) -> bool:
    """Whether hyperparameter ``name`` is active given the values of earlier ones.

    ``values`` holds the active hyperparameters only; ConfigSpace orders hyperparameters
    topologically, so every parent is decided before its children.
    """
    return all(
        _satisfied(condition, values)
        for condition in configuration_space.parent_conditions_of.get(name, [])
    )


def _satisfied(condition: Any, values: Mapping[str, Any]) -> bool:
    """A condition or conjunction; a condition on an inactive parent is not satisfied."""
    import ConfigSpace as CS

    if isinstance(condition, CS.AndConjunction):
        return all(_satisfied(c, values) for c in condition.components)
    if isinstance(condition, CS.OrConjunction):
        return any(_satisfied(c, values) for c in condition.components)
    if condition.parent.name not in values:
        return False
    return bool(condition.satisfied_by_value(dict(values)))


# --------------------------------------------------------------------------- checks
def _entries(result: Any, previous_epoch: int, epoch: int) -> list[tuple[int, float]]:
    """Validate what the objective function returned; ``[(epoch, metric), ...]`` in order."""
    items = result if isinstance(result, list) else [result]
    out: dict[int, float] = {}
    for item in items:
        if not isinstance(item, Mapping) or "epoch" not in item or "metric" not in item:
            raise ValueError(
                "The objective function must return a dict {'epoch': int, 'metric': float} or "
                f"a list of such dicts, but returned {result!r}."
            )
        e = item["epoch"]
        if isinstance(e, bool) or not isinstance(_plain(e), int):
            raise ValueError(f"'epoch' must be an int, but the objective returned {e!r}.")
        try:
            metric = float(item["metric"])
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"'metric' must be a number, but the objective returned {item['metric']!r}."
            ) from err
        out[int(_plain(e))] = metric
    if epoch not in out or any(not previous_epoch < e <= epoch for e in out):
        raise ValueError(
            f"The objective function was asked to train from epoch {previous_epoch} to "
            f"{epoch}; it must return the metric of epoch {epoch} (and optionally of epochs "
            f"{previous_epoch + 1}..{epoch - 1}), but returned epochs {sorted(out)}."
        )
    return sorted(out.items())


# --------------------------------------------------------------------------- Tuner
class Tuner:
    """HPO4DL-compatible tuner running DyHPO on Optuna (``DyHPOSampler`` + ``DyHPOPruner``).

    A drop-in replacement for ``hpo4dl.tuner.Tuner``: same objective function, same
    arguments, and :meth:`run` returns the incumbent like HPO4DL. Underneath, each
    configuration is a chain of Optuna trials in ``output_path/dyhpo.db`` (open it with
    optuna-dashboard), so everything in the README about DyHPO studies applies.

    The objective function ``objective_function(configuration, epoch, previous_epoch,
    checkpoint_path)`` trains ``configuration`` (a dict of hyperparameter values) from
    ``previous_epoch`` (0 for a fresh configuration) to ``epoch`` and returns
    ``{"epoch": epoch, "metric": value}`` or a list of such dicts (one per epoch from
    ``previous_epoch + 1`` to ``epoch``; every epoch but the last may be left out). DyHPO asks
    for one epoch at a time. ``checkpoint_path`` is, as in HPO4DL,
    ``output_path/checkpoints/config_<id>/last``: its directory (one per configuration)
    exists, and the objective saves its training state there, as a file or a directory,
    and loads it again when ``previous_epoch > 0``.

    Outputs in ``output_path``:

    * ``dyhpo.db``: the Optuna study ``"dyhpo"`` (SQLite), for
      ``optuna-dashboard sqlite:///<output_path>/dyhpo.db``; also :attr:`study`.
    * ``results.csv``: one row per epoch trained, in order: ``configuration_id``, ``trial``,
      ``epoch``, ``metric``, ``best_metric`` (the best so far), ``time`` (seconds spent in the
      objective per epoch), then one column per hyperparameter (empty when inactive).
    * ``best_checkpoint/``: a copy of the incumbent configuration's checkpoint directory. It
      holds the configuration's *latest* state, which may be later than the epoch of its best
      metric (as in HPO4DL).
    * ``checkpoints/``: the per-configuration directories. Paused configurations' directories
      are needed only while the study runs, so :meth:`run` deletes the whole folder at the end
      (HPO4DL deletes its checkpoint storage too) unless ``keep_checkpoints=True``.

    Running again with the same ``output_path`` starts afresh: the previous study and these
    files are replaced (``dyhpo.db`` may hold other studies; they are left alone).

    Example:

        .. code::

            from ConfigSpace import ConfigurationSpace
            from optuna_dyhpo import Tuner

            def objective_function(configuration, epoch, previous_epoch, checkpoint_path):
                x = configuration["x"]
                return [
                    {"epoch": i, "metric": (x - 2) ** 2}
                    for i in range(previous_epoch + 1, epoch + 1)
                ]

            tuner = Tuner(
                objective_function=objective_function,
                configuration_space=ConfigurationSpace({"x": (-5.0, 10.0)}),
                minimize=True,
                max_budget=200,
                optimizer="dyhpo",
                seed=0,
                max_epochs=27,
                num_configurations=1000,
                output_path="hpo4dl_results",
            )
            incumbent = tuner.run()
            print(incumbent["configuration"], incumbent["metric"])

    Args:
        objective_function: See above.
        configuration_space: A ``ConfigSpace.ConfigurationSpace`` with uniform float/integer
            (log or not), categorical, ordinal and constant hyperparameters, and optionally
            conditions (forbidden clauses are not supported).
        minimize: Minimise the metric (``True``) or maximise it (``False``, the default).
            Unlike HPO4DL's DyHPO, which always maximises, this is respected.
        max_budget: Total epochs over all configurations; a resumed configuration's earlier
            epochs are not counted again. The tuner stops after exactly this many epochs.
        optimizer: ``"dyhpo"`` (DyHPO) or ``"hyperband"`` (Optuna's ``RandomSampler`` with
            ``HyperbandPruner``; every configuration trains from epoch 1 and its curve is
            never resumed).
        seed: Seed of the sampler; ``None`` for a random one.
        max_epochs: The most epochs one configuration may train
            (``DyHPOSampler(max_budget=max_epochs)``).
        num_configurations: As in HPO4DL, the number of fresh candidate configurations DyHPO
            scores at every decision, next to the paused ones
            (``DyHPOSampler(n_candidates=num_configurations)``). Not a cap on configurations.
        output_path: Folder for the outputs above (created if needed).
        verbose: ``True``: leave Optuna's logging as it is (at Optuna's default INFO level,
            one ``optuna.dyhpo.*`` line per DyHPO decision). ``False`` (default): only
            warnings while :meth:`run` runs; the previous verbosity is restored afterwards.
        show_progress_bar: Draw a progress bar of epochs spent out of ``max_budget``.
        keep_checkpoints: Keep ``output_path/checkpoints/`` after :meth:`run`.

    Raises:
        ValueError: An argument is invalid; the message names it, what is allowed and what it
            received.
    """

    def __init__(
        self,
        objective_function: ObjectiveFunction,
        configuration_space: Any,
        minimize: bool = False,
        max_budget: int = 1000,
        optimizer: str = "dyhpo",
        seed: int | None = None,
        max_epochs: int = 27,
        num_configurations: int = 1000,
        output_path: str | Path = "dyhpo_results",
        *,
        verbose: bool = False,
        show_progress_bar: bool = False,
        keep_checkpoints: bool = False,
    ) -> None:
        if not callable(objective_function):
            raise ValueError(
                "`objective_function` must be callable as objective_function(configuration, "
                f"epoch, previous_epoch, checkpoint_path), but got {objective_function!r}."
            )
        self.objective_function = objective_function
        self.minimize = check_bool("minimize", minimize)
        self.max_budget = check_int(
            "max_budget", max_budget, 1, " (total epochs; an unlimited budget is not supported)"
        )
        if optimizer not in SUPPORTED_OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {', '.join(map(repr, SUPPORTED_OPTIMIZERS))}, "
                f"but got {optimizer!r}."
            )
        self.optimizer = optimizer
        if seed is not None:
            check_int("seed", seed, 0, " or None")
        self.seed = seed
        self.max_epochs = check_int("max_epochs", max_epochs, 1)
        self.num_configurations = check_int("num_configurations", num_configurations, 1)
        if not isinstance(output_path, (str, Path)) or str(output_path) == "":
            raise ValueError(
                f"`output_path` must be a non-empty str or pathlib.Path, but got {output_path!r}."
            )
        self.output_path = Path(output_path)
        self.verbose = check_bool("verbose", verbose)
        self.show_progress_bar = check_bool("show_progress_bar", show_progress_bar)
        self.keep_checkpoints = check_bool("keep_checkpoints", keep_checkpoints)
        self.configuration_space = configuration_space
        self._params = configspace_to_optuna(configuration_space)
        self._study: optuna.Study | None = None
        self._spent = 0
        self._best: float | None = None
        self._csv_columns = _CSV_FIXED + list(self._params)

    # ------------------------------------------------------------------ paths
    @property
    def storage_url(self) -> str:
        """SQLAlchemy URL of the study's SQLite database."""
        return f"sqlite:///{self.output_path / 'dyhpo.db'}"

    @property
    def results_path(self) -> Path:
        return self.output_path / "results.csv"

    @property
    def best_checkpoint_path(self) -> Path:
        return self.output_path / "best_checkpoint"

    def checkpoint_dir(self, configuration_id: int) -> Path:
        """The checkpoint directory of a configuration (its id is its first trial's number)."""
        return self.output_path / "checkpoints" / f"config_{configuration_id}"

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (created by :meth:`run`)."""
        if self._study is None:
            raise RuntimeError("Tuner.study exists once Tuner.run() has been called.")
        return self._study

    # ------------------------------------------------------------------ run
    def _create_study(self) -> optuna.Study:
        self.output_path.mkdir(parents=True, exist_ok=True)
        url = self.storage_url
        if STUDY_NAME in optuna.get_all_study_names(url):
            _logger.warning(
                f"Replacing the study '{STUDY_NAME}' in {url} and the results in "
                f"{self.output_path} (a Tuner starts afresh)."
            )
            optuna.delete_study(study_name=STUDY_NAME, storage=url)
        for old in (self.output_path / "checkpoints", self.best_checkpoint_path):
            if old.exists():
                shutil.rmtree(old)
        sampler: optuna.samplers.BaseSampler
        pruner: optuna.pruners.BasePruner
        if self.optimizer == "dyhpo":
            sampler = DyHPOSampler(
                max_budget=self.max_epochs, seed=self.seed, n_candidates=self.num_configurations
            )
            pruner = DyHPOPruner()
        else:
            sampler = optuna.samplers.RandomSampler(seed=self.seed)
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=self.max_epochs)
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=url,
            direction="minimize" if self.minimize else "maximize",
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr("dyhpo_tuner", {"optimizer": self.optimizer, "seed": self.seed})
        with self.results_path.open("w", newline="") as f:
            csv.writer(f).writerow(self._csv_columns)
        return study

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        configuration: dict[str, Any] = {}
        for name, param in self._params.items():
            if _is_active(self.configuration_space, name, configuration):
                configuration[name] = param.suggest(trial)
        return configuration

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self._best is None:
            return True
        return value < self._best if self.minimize else value > self._best

    def _objective(self, trial: optuna.Trial) -> float:
        configuration = self._suggest(trial)
        if self.optimizer == "dyhpo":
            resume = TrialResume(trial)
            config_id, previous = resume.config_id, resume.start_step - 1
        else:
            config_id, previous = trial.number, 0
        directory = self.checkpoint_dir(config_id)
        directory.mkdir(parents=True, exist_ok=True)
        checkpoint_path = str(directory / "last")
        metric = math.nan
        for epoch in range(previous + 1, self.max_epochs + 1):
            start = time.perf_counter()
            result = self.objective_function(dict(configuration), epoch, previous, checkpoint_path)
            seconds = time.perf_counter() - start
            entries = _entries(result, previous, epoch)
            metric = entries[-1][1]
            if self._improves(metric):
                self._best = metric
            trial.report(metric, epoch)
            self._spent += 1
            self._write_row(config_id, trial.number, epoch, metric, seconds, configuration)
            previous = epoch
            if epoch == self.max_epochs:
                break
            if self._spent >= self.max_budget:
                _logger.info(
                    f"Spent {self._spent} of {self.max_budget} epochs: stopping trial "
                    f"{trial.number} (configuration {config_id}) at epoch {epoch}."
                )
                trial.study.stop()
                raise optuna.TrialPruned()
            if trial.should_prune():
                raise optuna.TrialPruned()
        return metric

    def _write_row(
        self,
        config_id: int,
        trial_number: int,
        epoch: int,
        metric: float,
        seconds: float,
        configuration: Mapping[str, Any],
    ) -> None:
        row: list[Any] = [config_id, trial_number, epoch, metric, self._best, f"{seconds:.6g}"]
        row += [configuration.get(name, "") for name in self._params]
        with self.results_path.open("a", newline="") as f:
            csv.writer(f).writerow(row)

    def run(self) -> dict[str, Any]:
        """Run the search until ``max_budget`` epochs are spent.

        Returns:
            The incumbent, shaped like HPO4DL's: ``{"configuration": {...hyperparameters},
            "configuration_id": int, "trial": int (the trial that reported it), "epoch": int,
            "metric": float}``; the best metric at any epoch of any configuration.

        Raises:
            RuntimeError: No configuration reported a finite metric.
        """
        previous_level = optuna.logging.get_verbosity()
        if not self.verbose:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            if self._study is None:
                self._study = self._create_study()
                self._spent = 0
            if self._spent < self.max_budget:
                self._study.optimize(
                    self._objective,
                    callbacks=[StopAfterEpochs(self.max_budget)],
                    show_progress_bar=self.show_progress_bar,
                )
            incumbent = self.incumbent()
            self._finish(int(incumbent["configuration_id"]))
        finally:
            if not self.verbose:
                optuna.logging.set_verbosity(previous_level)
        return incumbent

    def incumbent(self) -> dict[str, Any]:
        """The best (configuration, epoch) so far; see :meth:`run`."""
        study = self.study
        best: tuple[float, int, int, int] | None = None  # value, config, trial, epoch
        sign = 1.0 if self.minimize else -1.0
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.WAITING:
                continue
            seg = t.system_attrs.get(SEGMENT_KEY)
            start = int(seg["start"]) if isinstance(seg, dict) else 1
            for epoch, value in t.intermediate_values.items():
                if epoch < start or not math.isfinite(value):
                    continue
                key = sign * value
                if best is None or key < sign * best[0]:
                    config_id = int(t.user_attrs.get(USER_CONFIG, t.number))
                    best = (value, config_id, t.number, epoch)
        if best is None:
            raise RuntimeError("No configuration reported a finite metric.")
        value, config_id, trial_number, epoch = best
        params = study._storage.get_trial(
            study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)
        ).params
        configuration = self._configuration_from_params(params)
        return {
            "configuration": configuration,
            "configuration_id": config_id,
            "trial": trial_number,
            "epoch": epoch,
            "metric": value,
        }

    def _configuration_from_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, param in self._params.items():
            if param.distribution is None:
                if _is_active(self.configuration_space, name, out):
                    out[name] = param.constant
            elif name in params:
                value = params[name]
                out[name] = value if param.values is None else param.values[int(value)]
        return out

    def _finish(self, config_id: int) -> None:
        source = self.checkpoint_dir(config_id)
        if self.best_checkpoint_path.exists():
            shutil.rmtree(self.best_checkpoint_path)
        if source.exists():
            shutil.copytree(source, self.best_checkpoint_path)
        else:
            self.best_checkpoint_path.mkdir(parents=True)
        if not any(self.best_checkpoint_path.iterdir()):
            _logger.info(f"The incumbent configuration {config_id} saved no checkpoint.")
        if not self.keep_checkpoints:
            shutil.rmtree(self.output_path / "checkpoints", ignore_errors=True)
