"""Benchmark problems: what is optimised, epoch by epoch.

A :class:`Problem` owns a search space (Optuna distributions), the number of epochs a
configuration may train at most, and a factory of :class:`Learner` objects. A learner trains one
configuration one epoch at a time and returns the validation metric after each epoch, in the
problem's ``direction`` (``"maximize"`` for accuracies, ``"minimize"`` for a loss; the study is
created with that direction). A value that is not finite (NaN) means the configuration diverged.
Learners of problems that need a checkpoint (real training) can save and restore their state;
the LCBench surrogate and the synthetic families are deterministic functions of the epoch and
need none.

Problem specifications on the command line:
    ``lcbench:<task id>`` (e.g. ``lcbench:3945``), ``lcbench:all`` (all 34 tasks), ``digits``,
    and the robustness suite of :mod:`benchmarks.families`: ``family:<name>`` (``flat-start``,
    ``crossing``, ``noisy``, ``diverge``, ``dim1``, ``dim7``, ``dim30``, ``conditional``,
    ``loss-min``), ``family:<name>:e<max epochs>``, ``family:all``, ``digits-sgd``,
    ``cancer-sgd`` and ``suite`` (all of them).
"""

from __future__ import annotations

from abc import ABC
from abc import abstractmethod
import csv
from dataclasses import dataclass
import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR_ENV = "YAHPO_LCBENCH_DIR"
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "yahpo_lcbench"
LCBENCH_METRICS = ("val_accuracy", "val_balanced_accuracy")
# Output columns of the YAHPO LCBench ONNX surrogate (see PROVENANCE.md of the data folder).
_LCBENCH_OUTPUTS = (
    "time",
    "val_accuracy",
    "val_cross_entropy",
    "val_balanced_accuracy",
    "test_cross_entropy",
    "test_balanced_accuracy",
)
# Continuous inputs of the surrogate, in order (the fidelity "epoch" first).
_LCBENCH_INPUTS = (
    "epoch",
    "batch_size",
    "learning_rate",
    "momentum",
    "weight_decay",
    "num_layers",
    "max_units",
    "max_dropout",
)


class Learner(ABC):
    """Trains one configuration, one epoch at a time.

    Attributes:
        noiseless_value: The noise-free metric of the last epoch trained when the problem knows
            it (synthetic families with observation noise), else None. The regret is computed
            from it, so that a lucky noisy draw does not count as progress.
    """

    noiseless_value: float | None = None

    @abstractmethod
    def train_epoch(self, epoch: int) -> float:
        """Train epoch ``epoch`` (1-based, contiguous) and return the validation metric."""

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to continue training later (a checkpoint)."""
        raise NotImplementedError(f"{type(self).__name__} has no checkpoint")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state_dict`."""
        raise NotImplementedError(f"{type(self).__name__} has no checkpoint")


class Problem(ABC):
    """A benchmark problem.

    Attributes:
        name: Unique, file-name safe identifier (e.g. ``lcbench-3945-val_accuracy``).
        family: Group used by the report to aggregate problems (e.g. ``lcbench-val_accuracy``).
        spec: The command-line specification that builds this problem (e.g. ``lcbench:3945``).
        metric: Name of the validation metric.
        direction: ``"maximize"`` or ``"minimize"`` the metric (the study's direction).
        max_epochs: Epochs a configuration may train at most.
        needs_checkpoint: Whether continuing a configuration needs its saved state.
        default_budget: Epochs per run when the runner is given no ``--budget``.
        suite: ``"robustness"`` for the problems of the robustness suite, else None.
    """

    name: str
    family: str
    spec: str
    metric: str
    max_epochs: int
    direction: str = "maximize"
    needs_checkpoint: bool = False
    default_budget: int = 1000
    suite: str | None = None

    @abstractmethod
    def search_space(self) -> dict[str, BaseDistribution]:
        """Return the search space as Optuna distributions (name -> distribution)."""

    @abstractmethod
    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        """Return a learner for ``config`` at epoch 0 (``seed`` fixes its randomness)."""

    @abstractmethod
    def normalised_regret(self, best_value: float) -> float:
        """Return the normalised regret of the best value found (0 is the best known)."""

    def warm_up(self) -> None:  # noqa: B027 - an optional hook, a no-op by default.
        """Load data and import heavy modules before a run's clock starts (no epoch counted)."""

    def describe(self) -> dict[str, Any]:
        """Return a JSON-serialisable description for results files."""
        return {
            "name": self.name,
            "family": self.family,
            "metric": self.metric,
            "direction": self.direction,
            "max_epochs": self.max_epochs,
            "needs_checkpoint": self.needs_checkpoint,
        }

    def is_better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` in the problem's direction."""
        return value < than if self.direction == "minimize" else value > than

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest a configuration through the trial (what a user's objective does)."""
        config: dict[str, Any] = {}
        for name, dist in self.search_space().items():
            if isinstance(dist, FloatDistribution):
                config[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
            elif isinstance(dist, IntDistribution):
                config[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            elif isinstance(dist, CategoricalDistribution):
                config[name] = trial.suggest_categorical(name, dist.choices)
            else:  # pragma: no cover - every problem here uses the three kinds above.
                raise TypeError(f"unsupported distribution {dist!r}")
        return config


# --------------------------------------------------------------------------------------------
# LCBench (YAHPO Gym surrogate)
# --------------------------------------------------------------------------------------------


def resolve_lcbench_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the YAHPO LCBench data folder.

    Order: the explicit ``data_dir`` (``--data-dir``), the ``YAHPO_LCBENCH_DIR`` environment
    variable, then ``../shared/data/yahpo_lcbench`` relative to the repository root.

    Args:
        data_dir: Explicit folder, or None.

    Returns:
        The folder holding ``lcbench/model.onnx``.

    Raises:
        FileNotFoundError: When no candidate holds the surrogate.
    """
    candidates: list[Path] = []
    if data_dir is not None:
        candidates.append(Path(data_dir))
    elif os.environ.get(DATA_DIR_ENV):
        candidates.append(Path(os.environ[DATA_DIR_ENV]))
    else:
        candidates.append(DEFAULT_DATA_DIR)
    for cand in candidates:
        if (cand / "lcbench" / "model.onnx").is_file():
            return cand.resolve()
        if (cand / "model.onnx").is_file() and cand.name == "lcbench":
            return cand.parent.resolve()
    raise FileNotFoundError(
        f"YAHPO LCBench data not found in {[str(c) for c in candidates]}; pass --data-dir or set "
        f"{DATA_DIR_ENV} to a folder holding lcbench/model.onnx (from the public "
        "slds-lmu/yahpo_data repository)."
    )


@dataclass(frozen=True)
class _LCBenchData:
    """Everything loaded once per process from the data folder."""

    task_codes: dict[str, int]
    task_ids: tuple[str, ...]
    space: dict[str, BaseDistribution]
    max_epochs: int
    stats: dict[tuple[str, str, str], float]  # (task, metric, "min"|"max") -> value


def _read_stats(data_dir: Path) -> dict[tuple[str, str, str], float]:
    gs = data_dir / "global_statistics"
    path = gs / "lcbench_target_statistics.csv"
    if not path.is_file():
        path = gs / "instance_target_statistics.csv"
    stats: dict[tuple[str, str, str], float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("scenario", "lcbench") != "lcbench":
                continue
            stats[(row["instance"], row["metric"], row["statistic"])] = float(row["value"])
    return stats


@functools.lru_cache(maxsize=4)
def _load_lcbench(data_dir: str) -> _LCBenchData:
    root = Path(data_dir)
    with open(root / "lcbench" / "encoding.json") as f:
        codes = {str(k): int(v) for k, v in json.load(f)["OpenML_task_id"].items()}
    with open(root / "lcbench" / "config_space.json") as f:
        cs = json.load(f)
    space: dict[str, BaseDistribution] = {}
    task_ids: tuple[str, ...] = ()
    max_epochs = 52
    for hp in cs["hyperparameters"]:
        name = hp["name"]
        if name == "OpenML_task_id":
            task_ids = tuple(str(c) for c in hp["choices"])
        elif name == "epoch":
            max_epochs = int(hp["upper"])
        elif hp["type"] == "uniform_int":
            space[name] = IntDistribution(int(hp["lower"]), int(hp["upper"]), log=hp["log"])
        elif hp["type"] == "uniform_float":
            # Round the bounds YAHPO stores with float noise (1.0000000000000009e-4).
            low, high = float(f"{hp['lower']:.12g}"), float(f"{hp['upper']:.12g}")
            space[name] = FloatDistribution(low, high, log=hp["log"])
        else:  # pragma: no cover - LCBench has no other kind.
            raise ValueError(f"unexpected hyperparameter {hp}")
    ordered = {name: space[name] for name in _LCBENCH_INPUTS[1:]}
    return _LCBenchData(codes, task_ids, ordered, max_epochs, _read_stats(root))


@functools.lru_cache(maxsize=4)
def _lcbench_session(model_path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])


def lcbench_task_ids(data_dir: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """Return the 34 OpenML task ids of LCBench, in the surrogate's order."""
    return _load_lcbench(str(resolve_lcbench_dir(data_dir))).task_ids


class _LCBenchLearner(Learner):
    def __init__(self, problem: LCBenchProblem, config: dict[str, Any]) -> None:
        self._problem = problem
        self._x = np.array(
            [0.0] + [float(config[name]) for name in _LCBENCH_INPUTS[1:]], dtype=np.float32
        )

    def train_epoch(self, epoch: int) -> float:
        return self._problem.query(self._x, epoch)


class LCBenchProblem(Problem):
    """One LCBench task through the YAHPO Gym ONNX surrogate (deterministic, ~0.1 ms/query).

    Args:
        task: OpenML task id (one of the 34).
        metric: ``val_accuracy`` (percent) or ``val_balanced_accuracy`` (fraction).
        data_dir: Data folder (see :func:`resolve_lcbench_dir`).
    """

    needs_checkpoint = False

    def __init__(
        self,
        task: str,
        metric: str = "val_accuracy",
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if metric not in LCBENCH_METRICS:
            raise ValueError(f"metric must be one of {LCBENCH_METRICS}, got {metric!r}")
        self.data_dir = resolve_lcbench_dir(data_dir)
        self._data = _load_lcbench(str(self.data_dir))
        if str(task) not in self._data.task_ids:
            raise ValueError(
                f"unknown LCBench task {task!r}; choose from {', '.join(self._data.task_ids)}"
            )
        self.task = str(task)
        self.metric = metric
        self.max_epochs = self._data.max_epochs
        self.name = f"lcbench-{self.task}-{metric}"
        self.spec = f"lcbench:{self.task}"
        self.family = f"lcbench-{metric}"
        self._code = np.array([[self._data.task_codes[self.task]]], dtype=np.int32)
        self._column = _LCBENCH_OUTPUTS.index(metric)
        self.metric_min = self._data.stats[(self.task, metric, "min")]
        self.metric_max = self._data.stats[(self.task, metric, "max")]
        self._session = _lcbench_session(str(self.data_dir / "lcbench" / "model.onnx"))

    def search_space(self) -> dict[str, BaseDistribution]:
        return dict(self._data.space)

    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        return _LCBenchLearner(self, config)

    def warm_up(self) -> None:
        lows = {
            name: d.low
            for name, d in self._data.space.items()
            if isinstance(d, (IntDistribution, FloatDistribution))
        }
        self.new_learner(lows, 0).train_epoch(1)

    def query(self, x: np.ndarray, epoch: int) -> float:
        """Return the surrogate's metric for the encoded configuration ``x`` at ``epoch``."""
        if not 1 <= epoch <= self.max_epochs:
            raise ValueError(f"epoch {epoch} outside 1..{self.max_epochs}")
        row = x.copy()
        row[0] = float(epoch)
        out = self._session.run(None, {"x_cat": self._code, "x_cont": row[None, :]})[0]
        return float(out[0, self._column])

    def normalised_regret(self, best_value: float) -> float:
        """``(max - best) / (max - min)`` with the task's min/max from YAHPO's statistics."""
        return (self.metric_max - best_value) / (self.metric_max - self.metric_min)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            task=self.task,
            data_dir=str(self.data_dir),
            regret_normalisation={"min": self.metric_min, "max": self.metric_max},
        )
        return d


# --------------------------------------------------------------------------------------------
# Real training: a small torch MLP on scikit-learn's bundled digits (no download)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_tensors() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    import torch

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_va),
        torch.from_numpy(y_va.astype(np.int64)),
    )


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


class _DigitsLearner(Learner):
    """SGD training of an MLP, deterministic given (config, seed) whatever the pauses.

    Shuffling and dropout draw from a generator re-seeded from (seed, epoch) at every epoch, so
    a configuration resumed from a checkpoint reproduces an uninterrupted run exactly.
    """

    def __init__(self, config: dict[str, Any], seed: int) -> None:
        import torch
        from torch import nn

        self._torch = torch
        self.seed = seed
        self.config = dict(config)
        self.epoch = 0
        self._x_tr, self._y_tr, self._x_va, self._y_va = _digits_tensors()
        self._gen = torch.Generator()
        self._dropout = float(config["dropout"])
        width = int(config["hidden_units"])
        with torch.random.fork_rng(devices=[]):  # Seeded init without touching the global RNG.
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            fan_in = self._x_tr.shape[1]
            for _ in range(int(config["num_layers"])):
                layers.append(nn.Linear(fan_in, width))
                fan_in = width
            self.hidden = nn.ModuleList(layers)
            self.head = nn.Linear(fan_in, 10)
        params = list(self.hidden.parameters()) + list(self.head.parameters())
        self.optimizer = torch.optim.SGD(
            params,
            lr=float(config["learning_rate"]),
            momentum=float(config["momentum"]),
            weight_decay=float(config["weight_decay"]),
        )

    def _forward(self, x: Any, train: bool) -> Any:
        torch = self._torch
        for layer in self.hidden:
            x = torch.relu(layer(x))
            if train and self._dropout > 0.0:
                keep = torch.rand(x.shape, generator=self._gen) >= self._dropout
                x = x * keep / (1.0 - self._dropout)
        return self.head(x)

    def train_epoch(self, epoch: int) -> float:
        torch = self._torch
        if epoch != self.epoch + 1:
            raise RuntimeError(f"digits learner at epoch {self.epoch} cannot train epoch {epoch}")
        self._gen.manual_seed(_epoch_seed(self.seed, epoch))
        n = self._x_tr.shape[0]
        perm = torch.randperm(n, generator=self._gen)
        bs = int(self.config["batch_size"])
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            loss = torch.nn.functional.cross_entropy(
                self._forward(self._x_tr[idx], train=True), self._y_tr[idx]
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.epoch = epoch
        with torch.no_grad():
            logits = self._forward(self._x_va, train=False)
            acc = (logits.argmax(dim=1) == self._y_va).float().mean().item()
        return float(acc) if math.isfinite(acc) else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden.state_dict(),
            "head": self.head.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hidden.load_state_dict(state["hidden"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])


class DigitsMLPProblem(Problem):
    """A small torch MLP trained with SGD on scikit-learn's ``load_digits`` (bundled, no download).

    1347 training and 450 validation images (stratified split, fixed). The metric is validation
    accuracy (fraction); the normalised regret is the validation error ``1 - best`` (min 0, max 1).

    Args:
        max_epochs: Epochs a configuration may train at most.
    """

    needs_checkpoint = True
    metric = "val_accuracy"

    def __init__(self, max_epochs: int = 27) -> None:
        if max_epochs < 1:
            raise ValueError("max_epochs must be >= 1")
        self.max_epochs = int(max_epochs)
        self.name = f"digits-mlp-e{self.max_epochs}"
        self.spec = "digits"
        self.family = "digits-mlp"

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
            "momentum": FloatDistribution(0.0, 0.99),
            "weight_decay": FloatDistribution(1e-6, 1e-1, log=True),
            "batch_size": IntDistribution(16, 512, log=True),
            "num_layers": IntDistribution(1, 3),
            "hidden_units": IntDistribution(8, 256, log=True),
            "dropout": FloatDistribution(0.0, 0.6),
        }

    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        return _DigitsLearner(config, seed)

    def warm_up(self) -> None:
        # The first SGD step imports a good part of torch (seconds): do it off the clock.
        space = self.search_space()
        config = {
            name: (d.low if isinstance(d, IntDistribution) else (d.low + d.high) / 2)
            for name, d in space.items()
            if isinstance(d, (IntDistribution, FloatDistribution))
        }
        config["batch_size"] = 512
        _DigitsLearner(config, 0).train_epoch(1)

    def normalised_regret(self, best_value: float) -> float:
        return 1.0 - best_value

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(regret_normalisation={"min": 0.0, "max": 1.0})
        return d


def parse_problems(
    specs: list[str],
    *,
    metric: str = "val_accuracy",
    data_dir: str | os.PathLike[str] | None = None,
    digits_max_epochs: int = 27,
) -> list[Problem]:
    """Turn command-line specifications into problems (see the module docstring).

    Args:
        specs: Specifications, each possibly comma-separated.
        metric: LCBench metric.
        data_dir: LCBench data folder (None: environment variable or default).
        digits_max_epochs: Maximum epochs per configuration of the digits problem.

    Returns:
        The problems, without duplicates, in the given order.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for spec in [s.strip() for item in specs for s in item.split(",") if s.strip()]:
        family, _, task = spec.partition(":")
        new: list[Problem]
        if family == "lcbench":
            if not task:
                raise ValueError("LCBench needs a task: lcbench:<task id> or lcbench:all")
            tasks = lcbench_task_ids(data_dir) if task == "all" else (task,)
            new = [LCBenchProblem(t, metric=metric, data_dir=data_dir) for t in tasks]
        elif family == "digits":
            new = [DigitsMLPProblem(max_epochs=digits_max_epochs)]
        elif family in ("family", "suite", "digits-sgd", "cancer-sgd"):
            from benchmarks.families import parse_family_spec

            new = parse_family_spec(spec)
        else:
            raise ValueError(
                f"unknown problem {spec!r} (use lcbench:<task>, lcbench:all, digits, "
                "family:<name>, family:all, digits-sgd, cancer-sgd, suite)"
            )
        for p in new:
            if p.name not in seen:
                seen.add(p.name)
                problems.append(p)
    return problems
