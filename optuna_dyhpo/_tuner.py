"""HPO4DL-compatible front end: ``Tuner(objective_function, configuration_space, ...).run()``."""

from __future__ import annotations

from collections.abc import Callable
import math
import os
from pathlib import Path
import time
from typing import Any
import warnings

import optuna

from optuna_dyhpo._budget import StopAfterEpochs
from optuna_dyhpo._logging import get_logger
from optuna_dyhpo._pruner import DyHPOPruner
from optuna_dyhpo._resume import TrialResume
from optuna_dyhpo._sampler import DyHPOSampler
from optuna_dyhpo._tuner_files import ExperimentFiles
from optuna_dyhpo._tuner_results import RESULTS_FILE
from optuna_dyhpo._tuner_results import ResultLog
from optuna_dyhpo._tuner_results import parse_result
from optuna_dyhpo._tuner_space import configspace_to_optuna
from optuna_dyhpo._tuner_space import describe_space
from optuna_dyhpo._tuner_space import is_active
from optuna_dyhpo._validation import check_bool
from optuna_dyhpo._validation import check_int
from optuna_dyhpo._warnings import DyHPOWarning

_logger = get_logger("tuner")

ObjectiveFunction = Callable[..., Any]

SUPPORTED_OPTIMIZERS = ("dyhpo", "hyperband")
STUDY_NAME = "dyhpo"


def _check_path(name: str, value: Any, allow_none: bool = False) -> Path | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)) or os.fspath(value) == "":
        allowed = "None or " if allow_none else ""
        raise ValueError(
            f"`{name}` must be {allowed}a non-empty str or pathlib.Path, but got {value!r}."
        )
    return Path(value)


def _check_device(device: Any) -> str | None:
    """``device`` as a string; HPO4DL's surrogate device, which DyHPO here never needs."""
    if device is None:
        return None
    is_torch_device = type(device).__name__ == "device" and type(device).__module__ == "torch"
    if not isinstance(device, str) and not is_torch_device:
        raise ValueError(
            "`device` must be None, a str such as 'cpu' or 'cuda', or a torch.device, but got "
            f"{device!r} ({type(device).__name__})."
        )
    if str(device).split(":")[0] != "cpu":
        warnings.warn(
            f"`device={str(device)!r}` is ignored: DyHPO's surrogate runs on the CPU (a small "
            "float64 Gaussian process). The objective function puts its own model on a device.",
            DyHPOWarning,
            stacklevel=3,
        )
    return str(device)


class Tuner:
    """HPO4DL's ``Tuner`` running DyHPO on Optuna (``DyHPOSampler`` + ``DyHPOPruner``).

    A drop-in replacement for ``hpo4dl.tuner.Tuner``: the same arguments in the same order,
    the same objective function, HPO4DL's output layout, result fields and return value.
    Underneath, each configuration is a chain of Optuna trials (see :attr:`study`).

    The objective function is called with keywords, as HPO4DL does:
    ``objective_function(configuration=..., epoch=..., previous_epoch=...,
    checkpoint_path=...)``. It trains ``configuration`` (a dict of the active hyperparameter
    values) from ``previous_epoch`` (0 for a fresh configuration) to ``epoch`` (DyHPO asks for
    one epoch at a time) and returns ``{"epoch": epoch, "metric": value}`` or a list of such
    dicts; further keys become extra result fields. ``checkpoint_path`` (a str) is
    ``<storage_path>/hpo4dl/<experiment>/trial_<configuration_id>/last``; its folder exists.
    The objective saves its training state there (a file or a folder) and loads it again when
    ``previous_epoch > 0``.

    Every Tuner is one experiment with its own folder, ``<output_path>/experiment_<YYYYmmdd-
    HHMMSS>/`` (:attr:`output_path`, created by the constructor; ``_1``, ``_2``, ... is
    appended if it exists), holding ``hpo4dl_results.csv`` (see :meth:`run`),
    ``configuration_space.json`` (one record per hyperparameter: ``name``, ``type``,
    ``default``, ``values``, ``bounds``, ``log``), ``dyhpo.db`` (the Optuna study ``"dyhpo"``,
    for optuna-dashboard) and, after :meth:`run`, ``checkpoints/``: a copy of the best
    configuration's ``trial_<id>`` folder in its latest state (which may be later than the
    epoch of its best metric, as in HPO4DL). The configuration folders are deleted at the end
    (as HPO4DL does) unless ``keep_checkpoints=True``. Earlier experiments are never touched.

    Args:
        objective_function: See above.
        configuration_space: A ``ConfigSpace.ConfigurationSpace`` with uniform float/integer
            (log or not), categorical, ordinal and constant hyperparameters, and optionally
            conditions (forbidden clauses are not supported).
        max_epochs: The most epochs one configuration may train.
        max_budget: Total epochs over all configurations, spent exactly; a resumed
            configuration's earlier epochs are not counted again. Must be an integer.
        output_path: The folder for the experiment folders (created if needed).
        optimizer: ``"dyhpo"`` or ``"hyperband"`` (Optuna's ``RandomSampler`` with
            ``HyperbandPruner``; every configuration trains from epoch 1, never resumed).
        minimize: Minimise the metric (``True``) or maximise it (``False``, the default).
        num_configurations: As in HPO4DL's DyHPO, the number of fresh candidate configurations
            scored at every decision next to the paused ones (``DyHPOSampler(n_candidates=...)``);
            not a cap on configurations.
        seed: Seed of the sampler; ``None`` for a random one.
        device: HPO4DL's device for the surrogate. DyHPO's surrogate always runs on the CPU:
            ``None`` and ``"cpu"`` are accepted silently, any other device with a warning.
        storage_path: The folder for the configuration folders, as in HPO4DL
            (``<storage_path>/hpo4dl/<experiment>/``). ``None`` (the default) is
            ``output_path`` (HPO4DL: ``~/hpo4dl``), so a run writes nowhere else.
        verbose: ``True``: leave Optuna's logging as it is (at Optuna's default INFO level,
            one ``optuna.dyhpo.*`` line per DyHPO decision). ``False`` (default): only
            warnings while :meth:`run` runs; the previous verbosity is restored afterwards.
        show_progress_bar: Draw a progress bar of epochs spent out of ``max_budget``.
        keep_checkpoints: Keep the configuration folders after :meth:`run`.

    Raises:
        ValueError: An argument is invalid; the message names it, what is allowed and what it
            received. Nothing is written then.
    """

    def __init__(
        self,
        objective_function: ObjectiveFunction,
        configuration_space: Any,
        max_epochs: int = 27,
        max_budget: int = 1000,
        output_path: str | os.PathLike[str] = "dyhpo_results",
        optimizer: str = "dyhpo",
        minimize: bool = False,
        num_configurations: int = 1000,
        seed: int | None = None,
        device: Any = None,
        storage_path: str | os.PathLike[str] | None = None,
        *,
        verbose: bool = False,
        show_progress_bar: bool = False,
        keep_checkpoints: bool = False,
    ) -> None:
        if not callable(objective_function):
            raise ValueError(
                "`objective_function` must be callable as objective_function(configuration=..., "
                f"epoch=..., previous_epoch=..., checkpoint_path=...), but got "
                f"{objective_function!r}."
            )
        self.objective_function = objective_function
        self.max_epochs = check_int("max_epochs", max_epochs, 1)
        self.max_budget = check_int(
            "max_budget", max_budget, 1, " (total epochs; an unlimited budget is not supported)"
        )
        root = _check_path("output_path", output_path)
        assert root is not None
        if optimizer not in SUPPORTED_OPTIMIZERS:
            raise ValueError(
                f"`optimizer` must be one of {', '.join(map(repr, SUPPORTED_OPTIMIZERS))}, "
                f"but got {optimizer!r}."
            )
        self.optimizer = optimizer
        self.minimize = check_bool("minimize", minimize)
        self.num_configurations = check_int("num_configurations", num_configurations, 1)
        if seed is not None:
            check_int("seed", seed, 0, " or None")
        self.seed = seed
        storage_root = _check_path("storage_path", storage_path, allow_none=True)
        self.verbose = check_bool("verbose", verbose)
        self.show_progress_bar = check_bool("show_progress_bar", show_progress_bar)
        self.keep_checkpoints = check_bool("keep_checkpoints", keep_checkpoints)
        self.configuration_space = configuration_space
        self._params = configspace_to_optuna(configuration_space)
        self.device = _check_device(device)

        self._files = ExperimentFiles(root, storage_root)
        self._files.write_space(describe_space(configuration_space))
        self._log = ResultLog(self.output_path / RESULTS_FILE, self.minimize)
        self._study: optuna.Study | None = None
        self._spent = 0
        self._clock = time.perf_counter()
        self._checkpoints_removed = False

    # ------------------------------------------------------------------ paths
    @property
    def experiment_name(self) -> str:
        """``experiment_<YYYYmmdd-HHMMSS>`` (with ``_<n>`` if that folder existed)."""
        return self._files.experiment_name

    @property
    def output_path(self) -> Path:
        """The experiment folder ``<output_path>/<experiment_name>``, as in HPO4DL."""
        return self._files.output_path

    @property
    def storage_path(self) -> Path:
        """``<storage_path>/hpo4dl``, as in HPO4DL; the configuration folders are below."""
        return self._files.storage_path

    @property
    def results_path(self) -> Path:
        """``<experiment>/hpo4dl_results.csv``."""
        return self._log.path

    @property
    def best_checkpoint_path(self) -> Path:
        """``<experiment>/checkpoints``: the best configuration's folder after :meth:`run`."""
        return self._files.best_checkpoint_path

    @property
    def storage_url(self) -> str:
        """SQLAlchemy URL of the study's SQLite database ``<experiment>/dyhpo.db``."""
        return f"sqlite:///{self._files.database_path}"

    def checkpoint_dir(self, configuration_id: int) -> Path:
        """The folder of a configuration (its id is its first trial's number)."""
        return self._files.checkpoint_dir(configuration_id)

    @property
    def study(self) -> optuna.Study:
        """The Optuna study (created by :meth:`run`)."""
        if self._study is None:
            raise RuntimeError("Tuner.study exists once Tuner.run() has been called.")
        return self._study

    # ------------------------------------------------------------------ run
    def _create_study(self) -> optuna.Study:
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
            storage=self.storage_url,
            direction="minimize" if self.minimize else "maximize",
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr("dyhpo_tuner", {"optimizer": self.optimizer, "seed": self.seed})
        return study

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        configuration: dict[str, Any] = {}
        for name, param in self._params.items():
            if is_active(self.configuration_space, name, configuration):
                configuration[name] = param.suggest(trial)
        return configuration

    def _objective(self, trial: optuna.Trial) -> float:
        configuration = self._suggest(trial)
        if self.optimizer == "dyhpo":
            resume = TrialResume(trial)
            config_id, previous = resume.config_id, resume.start_step - 1
        else:
            config_id, previous = trial.number, 0
        checkpoint_path = self._files.checkpoint_path(config_id)
        metric = math.nan
        for epoch in range(previous + 1, self.max_epochs + 1):
            start = time.perf_counter()
            result = self.objective_function(
                configuration=dict(configuration),
                epoch=epoch,
                previous_epoch=previous,
                checkpoint_path=checkpoint_path,
            )
            end = time.perf_counter()
            entry = parse_result(result, previous, epoch)
            metric = entry["metric"]
            self._log.add(
                entry,
                configuration_id=config_id,
                configuration=configuration,
                trial=trial.number,
                seconds=end - start,
                overhead=start - self._clock,
            )
            self._clock = end
            trial.report(metric, epoch)
            self._spent += 1
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

    def run(self) -> dict[str, Any]:
        """Run the search until ``max_budget`` epochs are spent, then save the best checkpoint.

        ``hpo4dl_results.csv`` gets one row per epoch trained, in order, with HPO4DL's columns:
        an unnamed index, ``epoch``, ``metric`` (then any further keys the objective returned),
        ``configuration_id``, ``configuration`` (the dict of hyperparameter values), ``time``
        (seconds in the objective function), ``overhead_time`` (seconds of the tuner since the
        previous epoch: DyHPO's decision, the pruner, the storage), ``total_time`` (their sum)
        and ``best_metric`` (the best finite metric so far); then ``trial`` (the Optuna trial).

        Calling :meth:`run` again returns the incumbent; after raising :attr:`max_budget` it
        continues the same study, which needs ``keep_checkpoints=True``.

        Returns:
            The incumbent as HPO4DL returns it: the row (a dict with the fields above) of the
            first epoch with the best finite metric of any configuration.

        Raises:
            RuntimeError: No configuration reported a finite metric, or more budget is asked
                for after the configuration folders were deleted.
        """
        previous_level = optuna.logging.get_verbosity()
        if not self.verbose:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            if self._study is None:
                self._study = self._create_study()
            if self._spent < self.max_budget:
                if self._checkpoints_removed:
                    raise RuntimeError(
                        f"Tuner.run() cannot spend more epochs ({self._spent} of "
                        f"{self.max_budget} spent): the configuration folders were deleted at "
                        "the end of the previous run. Pass keep_checkpoints=True to continue."
                    )
                self._clock = time.perf_counter()
                self._study.optimize(
                    self._objective,
                    callbacks=[StopAfterEpochs(self.max_budget)],
                    show_progress_bar=self.show_progress_bar,
                )
            incumbent = self.incumbent()
            self._files.save_best(int(incumbent["configuration_id"]))
            if not self.keep_checkpoints:
                self._files.remove_checkpoints()
                self._checkpoints_removed = True
        finally:
            if not self.verbose:
                optuna.logging.set_verbosity(previous_level)
        return incumbent

    def incumbent(self) -> dict[str, Any]:
        """The best epoch so far, as :meth:`run` returns it."""
        return self._log.incumbent()
