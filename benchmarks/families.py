"""Robustness suite: learning-curve families that are hard for multi-fidelity optimisers.

Every family isolates one way in which early epochs mislead an optimiser, or one property of
the search space or of the metric that an optimiser must handle (specs in brackets):

- (a) chance-level first epochs, real training with plain SGD (no momentum):
  ``digits-sgd``: a 64-32-10 ReLU MLP on scikit-learn's digits, 12 minibatches per epoch;
  validation accuracy after epoch 1 is 0.03-0.25 for every configuration (chance 0.1).
  ``cancer-sgd``: a 3-hidden-layer tanh MLP on scikit-learn's breast-cancer data; every
  configuration starts at the majority-class accuracy and small initialisations stay there
  for a configuration-dependent number of epochs.
- (b) ``family:flat-start``: flat at chance for k epochs, k depends on the configuration and
  the best configurations start late.
- (c) ``family:crossing``: fast starters plateau low, slow starters end high (curves cross).
- (d) ``family:noisy``: observation noise (sd 0.03) as large as the gaps between good
  configurations.
- (e) ``family:diverge``: configurations beyond a learning-rate boundary return NaN from some
  epoch; the best configurations sit just below the boundary, and those just beyond it look
  excellent until they diverge.
- (f) ``family:dim1``, ``family:dim7``, ``family:dim30``: 1, 7 (mixed types) and 30
  hyperparameters.
- (g) ``family:conditional``: the optimiser is a categorical and each branch has its own
  parameters (define-by-run); the best branch learns slowest.
- (h) ``family:loss-min``: a validation loss to minimise, with overfitting (the loss rises
  again) for weakly regularised configurations.

Synthetic families (spec ``family:<name>``, or ``family:<name>:e<max epochs>``) are cheap,
deterministic functions of (configuration, epoch, seed): the seed draws the instance (where the
optimum lies), and observation noise is drawn from a generator seeded by (seed, configuration,
epoch), so a configuration resumed at any epoch reproduces an uninterrupted run without a
checkpoint. Their optimum is known in closed form (every curve ends at its asymptote at the last
epoch and the asymptote has a known maximum), so the normalised regret is exact:
``(top - v) / (top - chance)`` (maximised accuracies) or ``(v - min) / (chance - min)`` (the
loss), where ``v`` is the *noise-free* value of the incumbent, i.e. of the (configuration, epoch)
with the best observed value. The real torch problems use ``1 - best validation accuracy``.

``family:all`` expands to every synthetic family; ``suite`` to the whole robustness suite
(the synthetic families plus ``digits-sgd`` and ``cancer-sgd``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
import functools
import hashlib
import math
from typing import Any
import zlib

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from benchmarks.problems import Learner
from benchmarks.problems import Problem
from benchmarks.problems import _digits_tensors
from benchmarks.problems import _epoch_seed

SUITE = "robustness"
CHANCE = 0.1  # Accuracy of the synthetic accuracy families before they learn anything.
TOP = 0.95  # Best accuracy reachable in the synthetic accuracy families (closed form).
LOSS_CHANCE = math.log(10.0)  # Cross-entropy of a uniform 10-class prediction.
LOSS_MIN = 0.12  # Lowest validation loss reachable in the loss family (closed form).


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def to_unit(dist: BaseDistribution, value: Any) -> float:
    """Map a numeric parameter value to ``[0, 1]`` (on the log scale for log distributions)."""
    if not isinstance(dist, (FloatDistribution, IntDistribution)):
        raise TypeError(f"not a numeric distribution: {dist!r}")
    lo, hi, v = float(dist.low), float(dist.high), float(value)
    if dist.log:
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return min(1.0, max(0.0, (v - lo) / (hi - lo)))


def from_unit(dist: BaseDistribution, u: float) -> float | int:
    """Inverse of :func:`to_unit` (integers are rounded to the nearest valid value)."""
    if not isinstance(dist, (FloatDistribution, IntDistribution)):
        raise TypeError(f"not a numeric distribution: {dist!r}")
    lo, hi = float(dist.low), float(dist.high)
    if dist.log:
        v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        v = lo + u * (hi - lo)
    if isinstance(dist, IntDistribution):
        return int(min(dist.high, max(dist.low, round(v))))
    return min(hi, max(lo, v))


def _snap(dist: BaseDistribution, u: float) -> float:
    """The unit coordinate of the valid value nearest to ``u`` (so an optimum is attainable)."""
    return to_unit(dist, from_unit(dist, u))


def config_key(config: dict[str, Any]) -> int:
    """A stable 63-bit hash of a configuration (independent of dict order and process)."""
    parts = []
    for name in sorted(config):
        v = config[name]
        if isinstance(v, (bool, str)) or v is None:
            text = repr(v)
        else:
            text = float(v).hex()
        parts.append(f"{name}={text}")
    digest = hashlib.blake2b(";".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _saturate(t: float, tau: float, horizon: float) -> float:
    """A saturating rise normalised to reach 1 exactly at ``t = horizon`` (0 at ``t = 0``)."""
    if t <= 0.0:
        return 0.0
    if t >= horizon:
        return 1.0
    return math.expm1(-t / tau) / math.expm1(-horizon / tau)


def _gauss(d2: float) -> float:
    return math.exp(-0.5 * d2)


@dataclass(frozen=True)
class CurveShape:
    """The noise-free learning curve of one configuration.

    ``value(t)`` is ``start`` for ``t <= delay``, then rises (or falls, for a loss) towards
    ``final``, which it reaches exactly at ``max_epochs``; an overfitting term adds
    ``overfit * ((t - onset) / (max_epochs - onset))**2`` after ``onset``; from
    ``diverge_at`` on the value is NaN.

    Attributes:
        start: Value before learning starts (chance accuracy or chance loss).
        final: Value at the last epoch (without overfitting).
        tau: Time constant of the rise, in epochs.
        max_epochs: Last epoch.
        delay: Epochs spent flat at ``start``.
        diverge_at: First epoch whose value is NaN, or None.
        overfit: Size of the overfitting term at the last epoch (0: none).
        onset: Epoch after which overfitting starts.
    """

    start: float
    final: float
    tau: float
    max_epochs: int
    delay: int = 0
    diverge_at: int | None = None
    overfit: float = 0.0
    onset: float = 0.0

    def value(self, epoch: int) -> float:
        """Noise-free value after ``epoch`` (1-based)."""
        if self.diverge_at is not None and epoch >= self.diverge_at:
            return math.nan
        if epoch <= self.delay:
            v = self.start
        else:
            s = _saturate(epoch - self.delay, self.tau, self.max_epochs - self.delay)
            v = self.start + (self.final - self.start) * s
        if self.overfit > 0.0 and epoch > self.onset:
            frac = (epoch - self.onset) / max(self.max_epochs - self.onset, 1e-9)
            v += self.overfit * frac * frac
        return v


# --------------------------------------------------------------------------------------------
# Synthetic families
# --------------------------------------------------------------------------------------------


class _CurveLearner(Learner):
    """Stateless learner of a synthetic family: any epoch can be asked in any order."""

    def __init__(self, problem: CurveFamily, config: dict[str, Any], seed: int) -> None:
        self.problem = problem
        self.seed = int(seed)
        self.config = dict(config)
        self.shape = problem.shape(config, seed)
        self._key = config_key(config)
        self.noiseless_value: float | None = None

    def train_epoch(self, epoch: int) -> float:
        p = self.problem
        if not 1 <= epoch <= p.max_epochs:
            raise ValueError(f"epoch {epoch} outside 1..{p.max_epochs}")
        true = self.shape.value(epoch)
        self.noiseless_value = true
        if not math.isfinite(true):
            return true
        if p.noise_sd <= 0.0:
            return true
        rng = np.random.default_rng([self.seed, self._key, epoch])
        observed = true + p.noise_sd * float(rng.standard_normal())
        return min(p.value_bounds[1], max(p.value_bounds[0], observed))


class CurveFamily(Problem):
    """A synthetic learning-curve family with a closed-form optimum.

    Subclasses define the search space, the per-seed instance (where the optimum lies), the
    curve of a configuration and the optimal configuration.

    Args:
        max_epochs: Epochs a configuration may train at most (None: the family's default).
    """

    kind: str = ""
    hardness: str = ""
    default_max_epochs: int = 30
    budget_per_max_epoch: int = 15
    needs_checkpoint = False
    noise_sd: float = 0.004
    metric = "val_accuracy"
    direction = "maximize"
    suite = SUITE
    start_value: float = CHANCE
    best_value: float = TOP
    value_bounds: tuple[float, float] = (0.0, 1.0)

    def __init__(self, max_epochs: int | None = None) -> None:
        t = self.default_max_epochs if max_epochs is None else int(max_epochs)
        if t < 2:
            raise ValueError("max_epochs must be >= 2")
        self.max_epochs = t
        suffix = "" if t == self.default_max_epochs else f"-e{t}"
        self.name = f"fam-{self.kind}{suffix}"
        self.family = self.name
        self.spec = f"family:{self.kind}" + ("" if not suffix else f":e{t}")
        self.default_budget = self.budget_per_max_epoch * t
        self._instances: dict[int, dict[str, Any]] = {}

    # Subclass hooks -------------------------------------------------------------------------

    @abstractmethod
    def search_space(self) -> dict[str, BaseDistribution]:
        """The search space (the union over branches for a conditional family)."""

    @abstractmethod
    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw the instance constants of a seed (optimum location, ...)."""

    @abstractmethod
    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        """The noise-free curve of ``config`` in instance ``inst``."""

    @abstractmethod
    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        """The configuration whose curve reaches ``best_value`` (at the last epoch)."""

    # Public API -----------------------------------------------------------------------------

    def instance(self, seed: int) -> dict[str, Any]:
        """The constants of the instance of ``seed`` (drawn once, cached)."""
        seed = int(seed)
        if seed not in self._instances:
            salt = zlib.crc32(self.kind.encode())
            self._instances[seed] = self._draw_instance(np.random.default_rng([salt, seed]))
        return self._instances[seed]

    def shape(self, config: dict[str, Any], seed: int) -> CurveShape:
        """The noise-free learning curve of ``config`` in the instance of ``seed``."""
        return self._shape(config, self.instance(seed))

    def optimum_config(self, seed: int) -> dict[str, Any]:
        """A configuration reaching the known optimum in the instance of ``seed``."""
        return self._optimum(self.instance(seed))

    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        return _CurveLearner(self, config, seed)

    @property
    def regret_definition(self) -> str:
        """How the regret is computed, for people."""
        return (
            f"(v - {self.best_value:.3g}) / ({self.start_value:.3g} - {self.best_value:.3g})"
            if self.direction == "minimize"
            else f"({self.best_value:.3g} - v) / ({self.best_value:.3g} - {self.start_value:.3g})"
        ) + ", v = noise-free value of the incumbent (0 = known optimum, 1 = chance)"

    def normalised_regret(self, best_value: float) -> float:
        """``(top - v) / (top - chance)``, or ``(v - min) / (chance - min)`` when minimising."""
        span = self.best_value - self.start_value
        return (self.best_value - best_value) / span

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            spec=self.spec,
            suite=self.suite,
            hardness=self.hardness,
            noise_sd=self.noise_sd,
            n_params=len(self.search_space()),
            default_budget=self.default_budget,
            regret_normalisation={"best": self.best_value, "chance": self.start_value},
            regret_definition=self.regret_definition,
        )
        return d

    # Shared pieces --------------------------------------------------------------------------

    def _units(self, config: dict[str, Any]) -> dict[str, float]:
        space = self.search_space()
        return {
            name: to_unit(space[name], value)
            for name, value in config.items()
            if isinstance(space.get(name), (FloatDistribution, IntDistribution))
        }

    def _accuracy(
        self, quality: float, tau: float, delay: int = 0, diverge_at: int | None = None
    ) -> CurveShape:
        """An accuracy curve from chance to ``chance + (top - chance) * quality``."""
        final = CHANCE + (TOP - CHANCE) * min(1.0, max(0.0, quality))
        return CurveShape(
            start=CHANCE,
            final=final,
            tau=max(tau, 1e-3),
            max_epochs=self.max_epochs,
            delay=delay,
            diverge_at=diverge_at,
        )


_LR = FloatDistribution(1e-4, 1.0, log=True)
_WD = FloatDistribution(1e-6, 1e-1, log=True)
_BATCH = IntDistribution(16, 1024, log=True)
_WIDTH = IntDistribution(16, 1024, log=True)


class FlatStartFamily(CurveFamily):
    """Flat at chance for ``k`` epochs, then rising; ``k`` grows as the initialisation shrinks.

    The best configurations have a small initialisation and a moderate learning rate, so they
    stay at chance for about 35 % of the epochs; large initialisations start at once but
    plateau at about 0.65. Until the best configurations leave chance, early epochs rank them
    among the worst.
    """

    kind = "flat-start"
    hardness = "flat at chance for k(config) epochs, then rising; the best start late"
    default_max_epochs = 40

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": _LR,
            "init_scale": FloatDistribution(1e-2, 1.0, log=True),
            "width": IntDistribution(16, 512, log=True),
        }

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        space = self.search_space()
        return {
            "p_lr": float(rng.uniform(0.45, 0.65)),
            "p_init": float(rng.uniform(0.2, 0.35)),
            "p_width": _snap(space["width"], float(rng.uniform(0.3, 0.7))),
        }

    def delay(self, u_lr: float, u_init: float) -> int:
        """Epochs at chance: up to 1.1 x max epochs for the smallest init and learning rate."""
        frac = 1.1 * (1.0 - u_init) ** 1.5 * (1.2 - u_lr) / 1.2
        return int(math.floor(frac * self.max_epochs))

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        d2 = ((u["learning_rate"] - inst["p_lr"]) / 0.2) ** 2
        d2 += ((u["width"] - inst["p_width"]) / 0.5) ** 2
        init_factor = 1.0 - 0.35 * abs(u["init_scale"] - inst["p_init"]) / (1.0 - inst["p_init"])
        quality = _gauss(d2) * init_factor
        k = self.delay(u["learning_rate"], u["init_scale"])
        tau = self.max_epochs * (0.08 + 0.15 * (1.0 - u["learning_rate"]))
        if k >= self.max_epochs:
            return CurveShape(CHANCE, CHANCE, 1.0, self.max_epochs, delay=self.max_epochs)
        return self._accuracy(quality, tau, delay=k)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        space = self.search_space()
        return {
            "learning_rate": from_unit(space["learning_rate"], inst["p_lr"]),
            "init_scale": from_unit(space["init_scale"], inst["p_init"]),
            "width": from_unit(space["width"], inst["p_width"]),
        }


class CrossingFamily(CurveFamily):
    """Fast starters (large learning rates) plateau low; slow starters end high.

    A configuration near the optimum is still at about 0.25 after 10 % of the epochs while a
    large learning rate is already at 0.6; the curves cross around half-way.
    """

    kind = "crossing"
    hardness = "fast starters plateau low, slow starters end high: the curves cross"

    def search_space(self) -> dict[str, BaseDistribution]:
        return {"learning_rate": _LR, "batch_size": _BATCH, "weight_decay": _WD}

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        space = self.search_space()
        return {
            "p_lr": float(rng.uniform(0.2, 0.35)),
            "p_batch": _snap(space["batch_size"], float(rng.uniform(0.3, 0.7))),
            "p_wd": float(rng.uniform(0.3, 0.7)),
        }

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        x, p = u["learning_rate"], inst["p_lr"]
        if x >= p:
            final = TOP - (TOP - 0.6) * (x - p) / (1.0 - p)
        else:
            final = TOP - (TOP - 0.3) * ((p - x) / p) ** 2
        g = 1.0 - 0.3 * (
            (u["batch_size"] - inst["p_batch"]) ** 2 + (u["weight_decay"] - inst["p_wd"]) ** 2
        )
        quality = (final - CHANCE) / (TOP - CHANCE) * g
        tau = (
            (self.max_epochs / 30.0)
            * 0.7
            * math.exp(4.45 * (1.0 - x))
            * (0.75 + 0.5 * u["batch_size"])
        )
        return self._accuracy(quality, tau)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        space = self.search_space()
        return {
            "learning_rate": from_unit(space["learning_rate"], inst["p_lr"]),
            "batch_size": from_unit(space["batch_size"], inst["p_batch"]),
            "weight_decay": from_unit(space["weight_decay"], inst["p_wd"]),
        }


class _GaussianFamily(CurveFamily):
    """Quality ``exp(-sum_i ((u_i - p_i) / w_i)**2 / 2)`` over numeric parameters."""

    widths: dict[str, float] = {}

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        space = self.search_space()
        return {name: _snap(space[name], float(rng.uniform(0.25, 0.75))) for name in self.widths}

    def _quality(self, u: dict[str, float], inst: dict[str, Any]) -> float:
        d2 = sum(((u[n] - inst[n]) / w) ** 2 for n, w in self.widths.items())
        return _gauss(d2)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        space = self.search_space()
        return {n: from_unit(space[n], inst[n]) for n in self.widths}


class NoisyFamily(_GaussianFamily):
    """Heavy evaluation noise: sd 0.03, the size of the gaps between the good configurations."""

    kind = "noisy"
    hardness = "observation noise sd 0.03, as large as the gaps between good configurations"
    noise_sd = 0.03
    widths = {"learning_rate": 0.25, "momentum": 0.5, "dropout": 0.5, "weight_decay": 0.6}

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": _LR,
            "momentum": FloatDistribution(0.0, 0.99),
            "dropout": FloatDistribution(0.0, 0.8),
            "weight_decay": _WD,
        }

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        tau = self.max_epochs * (0.05 + 0.2 * (1.0 - u["learning_rate"]))
        return self._accuracy(self._quality(u, inst), tau)


class DivergeFamily(CurveFamily):
    """Learning rates beyond a boundary (higher for larger batches) diverge: NaN from some epoch.

    The quality peaks just below the boundary, so configurations just beyond it look like the
    best ones until they return NaN late in training; far beyond it they diverge at once.
    """

    kind = "diverge"
    hardness = "NaN from some epoch beyond a learning-rate boundary; the optimum lies next to it"
    peak_offset = 0.03  # The optimum lies this far (unit learning rate) below the boundary.

    def search_space(self) -> dict[str, BaseDistribution]:
        return {"learning_rate": _LR, "batch_size": _BATCH, "width": _WIDTH}

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        space = self.search_space()
        return {
            "p_batch": _snap(space["batch_size"], float(rng.uniform(0.3, 0.7))),
            "p_width": _snap(space["width"], float(rng.uniform(0.3, 0.7))),
        }

    @staticmethod
    def boundary(u_batch: float) -> float:
        """Unit learning rate beyond which a configuration diverges."""
        return 0.55 + 0.3 * u_batch

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        x, b = u["learning_rate"], self.boundary(u["batch_size"])
        d2 = ((x - (b - self.peak_offset)) / 0.12) ** 2
        rest = 1.0 - 0.5 * (u["batch_size"] - inst["p_batch"]) ** 2
        rest *= 1.0 - 0.5 * (u["width"] - inst["p_width"]) ** 2
        quality = _gauss(d2) * rest
        tau = self.max_epochs * (0.03 + 0.25 * (1.0 - x))
        diverge_at = None
        if x > b:
            frac = 1.0 - (x - b) / 0.25
            diverge_at = int(min(self.max_epochs, max(1, math.ceil(frac * self.max_epochs))))
        return self._accuracy(quality, tau, diverge_at=diverge_at)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        space = self.search_space()
        x = self.boundary(inst["p_batch"]) - self.peak_offset
        return {
            "learning_rate": from_unit(space["learning_rate"], x),
            "batch_size": from_unit(space["batch_size"], inst["p_batch"]),
            "width": from_unit(space["width"], inst["p_width"]),
        }


class Dim1Family(CurveFamily):
    """One hyperparameter: a broad local peak (0.8) and a narrow global peak that starts slower."""

    kind = "dim1"
    hardness = "1 hyperparameter; a broad local peak and a narrow, slower global peak"

    def search_space(self) -> dict[str, BaseDistribution]:
        return {"learning_rate": FloatDistribution(1e-5, 1.0, log=True)}

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        return {"broad": float(rng.uniform(0.2, 0.4)), "narrow": float(rng.uniform(0.65, 0.8))}

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        x = self._units(config)["learning_rate"]
        quality = max(
            0.8 * _gauss(((x - inst["broad"]) / 0.15) ** 2),
            _gauss(((x - inst["narrow"]) / 0.03) ** 2),
        )
        tau = self.max_epochs * (0.05 + 0.3 * x)
        return self._accuracy(quality, tau)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        return {"learning_rate": from_unit(self.search_space()["learning_rate"], inst["narrow"])}


class Dim7Family(_GaussianFamily):
    """Seven mixed hyperparameters: log floats, floats, log ints, an int and a categorical."""

    kind = "dim7"
    hardness = "7 mixed hyperparameters (log floats, ints, a categorical)"
    widths = {
        "learning_rate": 0.25,
        "momentum": 0.5,
        "weight_decay": 0.6,
        "batch_size": 0.6,
        "num_layers": 0.7,
        "dropout": 0.7,
    }
    activations = ("relu", "tanh", "gelu")

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": _LR,
            "momentum": FloatDistribution(0.0, 0.99),
            "weight_decay": _WD,
            "batch_size": IntDistribution(16, 512, log=True),
            "num_layers": IntDistribution(1, 5),
            "dropout": FloatDistribution(0.0, 0.8),
            "activation": CategoricalDistribution(self.activations),
        }

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        inst = super()._draw_instance(rng)
        order = [str(a) for a in rng.permutation(self.activations)]
        inst["activation"] = dict(zip(order, (1.0, 0.9, 0.8), strict=True))
        return inst

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        quality = self._quality(u, inst) * inst["activation"][str(config["activation"])]
        tau = self.max_epochs * (
            0.04 + 0.25 * (1.0 - u["learning_rate"]) * (0.5 + u["batch_size"])
        )
        return self._accuracy(quality, tau)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        config = super()._optimum(inst)
        config["activation"] = max(inst["activation"], key=inst["activation"].get)
        return config


class Dim30Family(_GaussianFamily):
    """Thirty hyperparameters (four on a log scale) whose importance decays geometrically."""

    kind = "dim30"
    hardness = "30 hyperparameters, importance decaying geometrically (a few matter)"
    n_params = 30
    widths = {f"x{i:02d}": 0.35 * 1.15**i for i in range(30)}

    def search_space(self) -> dict[str, BaseDistribution]:
        space: dict[str, BaseDistribution] = {}
        for i in range(self.n_params):
            log = i % 8 == 3
            space[f"x{i:02d}"] = (
                FloatDistribution(1e-5, 1.0, log=True) if log else FloatDistribution(0.0, 1.0)
            )
        return space

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        tau = self.max_epochs * (0.04 + 0.25 * (1.0 - u["x00"]))
        return self._accuracy(self._quality(u, inst), tau)


class ConditionalFamily(CurveFamily):
    """A conditional space: each optimiser has its own parameters (define-by-run).

    ``sgd`` has the best configurations (its quality depends on the effective learning rate
    ``lr / (1 - momentum)`` and on the momentum) but learns slowest; ``adam`` reaches 0.9 of the
    range and learns fastest; ``rmsprop`` reaches 0.8.
    """

    kind = "conditional"
    hardness = "conditional space (per-optimiser parameters); the best branch learns slowest"
    optimizers = ("sgd", "adam", "rmsprop")

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "optimizer": CategoricalDistribution(self.optimizers),
            "width": IntDistribution(16, 512, log=True),
            "sgd_learning_rate": _LR,
            "sgd_momentum": FloatDistribution(0.0, 0.99),
            "adam_learning_rate": FloatDistribution(1e-5, 1e-1, log=True),
            "adam_beta1": FloatDistribution(0.5, 0.999),
            "rmsprop_learning_rate": FloatDistribution(1e-5, 1e-1, log=True),
        }

    def branch_params(self, optimizer: str) -> tuple[str, ...]:
        """The parameters a configuration of ``optimizer`` has, in suggestion order."""
        return ("optimizer", "width") + tuple(
            n for n in self.search_space() if n.startswith(f"{optimizer}_")
        )

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Define-by-run: the parameters of the chosen optimiser only."""
        opt = trial.suggest_categorical("optimizer", self.optimizers)
        config: dict[str, Any] = {
            "optimizer": opt,
            "width": trial.suggest_int("width", 16, 512, log=True),
        }
        if opt == "sgd":
            config["sgd_learning_rate"] = trial.suggest_float(
                "sgd_learning_rate", 1e-4, 1.0, log=True
            )
            config["sgd_momentum"] = trial.suggest_float("sgd_momentum", 0.0, 0.99)
        elif opt == "adam":
            config["adam_learning_rate"] = trial.suggest_float(
                "adam_learning_rate", 1e-5, 1e-1, log=True
            )
            config["adam_beta1"] = trial.suggest_float("adam_beta1", 0.5, 0.999)
        else:
            config["rmsprop_learning_rate"] = trial.suggest_float(
                "rmsprop_learning_rate", 1e-5, 1e-1, log=True
            )
        return config

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        space = self.search_space()
        return {
            "sgd_eff": float(rng.uniform(-1.2, -0.6)),  # log10 of lr / (1 - momentum)
            "sgd_momentum": float(rng.uniform(0.8, 0.95)),
            "adam_lr": float(rng.uniform(0.4, 0.6)),
            "rmsprop_lr": float(rng.uniform(0.3, 0.7)),
            "p_width": _snap(space["width"], float(rng.uniform(0.3, 0.7))),
        }

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        opt = str(config["optimizer"])
        width_factor = 1.0 - 0.2 * (u["width"] - inst["p_width"]) ** 2
        t = self.max_epochs
        if opt == "sgd":
            m = float(config["sgd_momentum"])
            eff = math.log10(float(config["sgd_learning_rate"]) / (1.0 - m))
            d2 = ((eff - inst["sgd_eff"]) / 0.25) ** 2 + ((m - inst["sgd_momentum"]) / 0.2) ** 2
            quality = _gauss(d2)
            tau = t * (0.25 + 0.2 * (1.0 - m))
        elif opt == "adam":
            d2 = ((u["adam_learning_rate"] - inst["adam_lr"]) / 0.15) ** 2
            d2 += ((float(config["adam_beta1"]) - 0.9) / 0.3) ** 2
            quality = 0.9 * _gauss(d2)
            tau = t * 0.05
        elif opt == "rmsprop":
            quality = 0.8 * _gauss(((u["rmsprop_learning_rate"] - inst["rmsprop_lr"]) / 0.2) ** 2)
            tau = t * 0.08
        else:
            raise ValueError(f"unknown optimizer {opt!r}")
        return self._accuracy(quality * width_factor, tau)

    def _optimum(self, inst: dict[str, Any]) -> dict[str, Any]:
        m = inst["sgd_momentum"]
        return {
            "optimizer": "sgd",
            "width": from_unit(self.search_space()["width"], inst["p_width"]),
            "sgd_learning_rate": 10.0 ** inst["sgd_eff"] * (1.0 - m),
            "sgd_momentum": m,
        }


class LossMinFamily(_GaussianFamily):
    """A validation loss (minimised) from ``ln 10`` down to 0.12 at best, with overfitting.

    Weakly regularised configurations (small weight decay and dropout) overfit: their loss
    rises again after an onset epoch, so their best epoch is not the last. The optimum is
    regularised enough never to overfit.
    """

    kind = "loss-min"
    hardness = "a loss to minimise; weakly regularised configurations overfit (U-shaped)"
    metric = "val_loss"
    direction = "minimize"
    noise_sd = 0.01
    start_value = LOSS_CHANCE
    best_value = LOSS_MIN
    value_bounds = (0.0, math.inf)
    widths = {"learning_rate": 0.2, "weight_decay": 0.4, "width": 0.45, "dropout": 0.4}
    worst_final = 1.6  # Final loss of the worst configurations (without overfitting).

    def search_space(self) -> dict[str, BaseDistribution]:
        return {
            "learning_rate": _LR,
            "weight_decay": _WD,
            "width": _WIDTH,
            "dropout": FloatDistribution(0.0, 0.7),
        }

    def _draw_instance(self, rng: np.random.Generator) -> dict[str, Any]:
        inst = super()._draw_instance(rng)
        # The optimum is regularised enough never to overfit (regularisation >= 0.5 > 0.45).
        inst["weight_decay"] = float(rng.uniform(0.5, 0.8))
        inst["dropout"] = float(rng.uniform(0.5, 0.8))
        return inst

    @staticmethod
    def regularisation(u: dict[str, float]) -> float:
        """How regularised a configuration is (0..1); below 0.45 it overfits."""
        return 0.5 * (u["weight_decay"] + u["dropout"])

    def _shape(self, config: dict[str, Any], inst: dict[str, Any]) -> CurveShape:
        u = self._units(config)
        final = LOSS_MIN + (self.worst_final - LOSS_MIN) * (1.0 - self._quality(u, inst))
        reg = self.regularisation(u)
        t = self.max_epochs
        overfit = 2.0 * max(0.0, 0.45 - reg)
        onset = t * (0.3 + 0.5 * reg / 0.45)
        tau = t * (0.05 + 0.2 * (1.0 - u["learning_rate"]))
        return CurveShape(LOSS_CHANCE, final, tau, t, overfit=overfit, onset=onset)

    def normalised_regret(self, best_value: float) -> float:
        """``(v - 0.12) / (ln 10 - 0.12)``: 0 at the known minimum, 1 at chance-level loss."""
        return (best_value - LOSS_MIN) / (LOSS_CHANCE - LOSS_MIN)


FAMILIES: dict[str, type[CurveFamily]] = {
    cls.kind: cls
    for cls in (
        FlatStartFamily,
        CrossingFamily,
        NoisyFamily,
        DivergeFamily,
        Dim1Family,
        Dim7Family,
        Dim30Family,
        ConditionalFamily,
        LossMinFamily,
    )
}


# --------------------------------------------------------------------------------------------
# Real training with chance-level first epochs
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _cancer_tensors() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    import torch

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    x_tr = ((x_tr - mean) / std).astype(np.float32)
    x_va = ((x_va - mean) / std).astype(np.float32)
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr.astype(np.int64)),
        torch.from_numpy(x_va),
        torch.from_numpy(y_va.astype(np.int64)),
    )


class _SGDMLPLearner(Learner):
    """Plain SGD (no momentum) on an MLP, deterministic given (config, seed) whatever the pauses.

    The weights are PyTorch's default initialisation times ``init_scale``, drawn from
    ``seed``; the minibatch order of epoch ``e`` comes from a generator seeded by
    (seed, e), so a run resumed from a checkpoint reproduces an uninterrupted one.
    """

    def __init__(
        self,
        data: tuple[Any, Any, Any, Any],
        hidden: tuple[int, ...],
        activation: str,
        n_batches: int,
        config: dict[str, Any],
        seed: int,
    ) -> None:
        import torch
        from torch import nn

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)  # Tiny networks: one thread is fastest and deterministic.
        self._torch = torch
        self.seed = int(seed)
        self.epoch = 0
        self._x_tr, self._y_tr, self._x_va, self._y_va = data
        self._batch = -(-self._x_tr.shape[0] // n_batches)
        self._gen = torch.Generator()
        act: type[nn.Module] = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        sizes = (self._x_tr.shape[1], *hidden, int(self._y_tr.max()) + 1)
        with torch.random.fork_rng(devices=[]):  # Seeded init without touching the global RNG.
            torch.manual_seed(self.seed)
            layers: list[nn.Module] = []
            for i in range(len(sizes) - 1):
                layers.append(nn.Linear(sizes[i], sizes[i + 1]))
                if i < len(sizes) - 2:
                    layers.append(act())
            self.model = nn.Sequential(*layers)
        scale = float(config.get("init_scale", 1.0))
        with torch.no_grad():
            for param in self.model.parameters():
                param.mul_(scale)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=float(config["learning_rate"]),
            momentum=0.0,
            weight_decay=float(config.get("weight_decay", 0.0)),
        )

    def train_epoch(self, epoch: int) -> float:
        torch = self._torch
        if epoch != self.epoch + 1:
            raise RuntimeError(f"learner at epoch {self.epoch} cannot train epoch {epoch}")
        self._gen.manual_seed(_epoch_seed(self.seed, epoch))
        n = self._x_tr.shape[0]
        perm = torch.randperm(n, generator=self._gen)
        for start in range(0, n, self._batch):
            idx = perm[start : start + self._batch]
            loss = torch.nn.functional.cross_entropy(self.model(self._x_tr[idx]), self._y_tr[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.epoch = epoch
        with torch.no_grad():
            logits = self.model(self._x_va)
            if not bool(torch.isfinite(logits).all()):
                return math.nan
            return float((logits.argmax(dim=1) == self._y_va).float().mean().item())

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])


class _SGDProblem(Problem):
    """Shared part of the real SGD problems of the suite (regret ``1 - best accuracy``)."""

    needs_checkpoint = True
    metric = "val_accuracy"
    direction = "maximize"
    suite = SUITE
    hardness = ""
    hidden: tuple[int, ...] = ()
    activation = "relu"
    n_batches = 12
    chance = 0.0
    space: dict[str, BaseDistribution] = {}
    loader: Callable[[], tuple[Any, Any, Any, Any]]

    def __init__(self, name: str, max_epochs: int, budget: int) -> None:
        self.name = name
        self.family = name
        self.spec = name
        self.max_epochs = max_epochs
        self.default_budget = budget

    def search_space(self) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        return _SGDMLPLearner(
            type(self).loader(), self.hidden, self.activation, self.n_batches, config, seed
        )

    def warm_up(self) -> None:
        # The first SGD step imports a good part of torch (seconds): do it off the clock.
        config = {n: d.low for n, d in self.space.items() if isinstance(d, FloatDistribution)}
        self.new_learner(config, 0).train_epoch(1)

    def normalised_regret(self, best_value: float) -> float:
        return 1.0 - best_value

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(
            spec=self.spec,
            suite=self.suite,
            hardness=self.hardness,
            n_params=len(self.space),
            default_budget=self.default_budget,
            chance_accuracy=self.chance,
            regret_normalisation={"min": 0.0, "max": 1.0},
            regret_definition="1 - best validation accuracy",
        )
        return d


class DigitsSGDProblem(_SGDProblem):
    """A 64-32-10 ReLU MLP, plain SGD, 12 minibatches per epoch, on scikit-learn's digits.

    1347 training and 450 validation images (the split of the ``digits`` problem). After the
    first epoch the validation accuracy is 0.03-0.25 for every configuration (chance is 0.1).
    """

    hardness = "real training; accuracy at chance (~0.1) after epoch 1 for every configuration"
    hidden = (32,)
    activation = "relu"
    n_batches = 12
    chance = 0.1
    space = {
        "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
        "init_scale": FloatDistribution(0.1, 1.5, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }
    loader = staticmethod(_digits_tensors)

    def __init__(self) -> None:
        super().__init__("digits-sgd", max_epochs=30, budget=450)


class CancerSGDProblem(_SGDProblem):
    """A 30-32-32-32-2 tanh MLP, plain SGD, 8 minibatches per epoch, on breast-cancer data.

    scikit-learn's bundled Wisconsin breast-cancer data (426 training, 143 validation samples,
    stratified split, standardised with the training statistics). Small initialisations keep
    the network at the majority-class accuracy (0.63) for a number of epochs that depends on
    the learning rate and the initialisation; some never leave it.
    """

    hardness = (
        "real training; majority-class accuracy (0.63) for a configuration-dependent number of "
        "epochs"
    )
    hidden = (32, 32, 32)
    activation = "tanh"
    n_batches = 8
    chance = 0.629
    space = {
        "learning_rate": FloatDistribution(1e-3, 1.0, log=True),
        "init_scale": FloatDistribution(0.05, 0.3, log=True),
        "weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    }
    loader = staticmethod(_cancer_tensors)

    def __init__(self) -> None:
        super().__init__("cancer-sgd", max_epochs=40, budget=480)


REAL_PROBLEMS: dict[str, Callable[[], Problem]] = {
    "digits-sgd": DigitsSGDProblem,
    "cancer-sgd": CancerSGDProblem,
}


def parse_family_spec(spec: str) -> list[Problem]:
    """Problems of a suite specification.

    Args:
        spec: ``family:<kind>``, ``family:<kind>:e<max epochs>``, ``family:all``, ``suite``,
            ``digits-sgd`` or ``cancer-sgd``.

    Returns:
        The problems.

    Raises:
        ValueError: For an unknown specification.
    """
    if spec in REAL_PROBLEMS:
        return [REAL_PROBLEMS[spec]()]
    if spec == "suite":
        return [cls() for cls in FAMILIES.values()] + [f() for f in REAL_PROBLEMS.values()]
    prefix, _, rest = spec.partition(":")
    if prefix != "family" or not rest:
        raise ValueError(f"not a suite specification: {spec!r}")
    kind, _, epochs = rest.partition(":")
    max_epochs: int | None = None
    if epochs:
        if not (epochs.startswith("e") and epochs[1:].isdigit()):
            raise ValueError(f"bad max epochs {epochs!r} in {spec!r} (use e<number>, e.g. e8)")
        max_epochs = int(epochs[1:])
    if kind == "all":
        return [cls(max_epochs) for cls in FAMILIES.values()]
    if kind not in FAMILIES:
        raise ValueError(f"unknown family {kind!r}; choose from {', '.join(FAMILIES)}, all")
    return [FAMILIES[kind](max_epochs)]
