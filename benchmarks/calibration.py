"""How well DyHPO's surrogate knows what it does not know, on a finished synthetic-family run.

Replays a run of the robustness suite (``python -m benchmarks.run --problems family:<name>``
keeps each run's study in ``<out>/studies/<run id>.journal``): the surrogate is fitted from
scratch, as the engine fits it, on the curves of the first ``--configs`` configurations, then
predicts random configurations of the family (and its known optimum) at several budgets, and
the predictions are compared with the family's noise-free curves:

* *rank correlation* (Spearman) of the predicted means with the true values: can the model
  tell good configurations from bad ones at that budget?
* *median |z|*, ``z = (true - mean) / sd``: about 0.67 for a calibrated model; far above it
  the model is overconfident (its expected improvement collapses on confident wrong
  predictions), far below it underconfident;
* *95 % coverage*: the share of true values inside ``mean +- 1.96 sd``.

    python -m benchmarks.run --problems family:noisy --methods dyhpo --seeds 0 --out /tmp/runs
    python -m benchmarks.calibration /tmp/runs/studies/fam-noisy__dyhpo__b450__s0.journal \\
        --configs 60

Only synthetic families qualify (their noise-free curves are known in closed form).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import math
from pathlib import Path
import sys
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalStorage

from benchmarks.families import FAMILIES
from benchmarks.families import CurveFamily

if TYPE_CHECKING:
    from optuna_dyhpo import Configuration
    from optuna_dyhpo._decision import EngineSettings
    from optuna_dyhpo._gp import CurveTable


@dataclass(frozen=True)
class Calibration:
    """The surrogate's predictions of random configurations at one budget, against the truth.

    Attributes:
        budget: The budget predicted.
        rank_correlation: Spearman correlation of predicted means and true values.
        median_abs_z: Median of ``|true - mean| / sd``.
        coverage95: Share of true values within ``mean +- 1.96 sd``.
        optimum: (predicted mean, predicted sd, true value) of the family's optimum.
        spread: The factor the engine's recalibration would widen the predictions by
            (``optuna_dyhpo._gp._calibration``), estimated as the engine does: from a model of
            the earlier observations and its errors on the newest ones.
        recalibrated_median_abs_z: ``median_abs_z`` with the standard deviations widened.
        recalibrated_coverage95: ``coverage95`` with the standard deviations widened.
    """

    budget: int
    rank_correlation: float
    median_abs_z: float
    coverage95: float
    optimum: tuple[float, float, float]
    spread: float = 1.0
    recalibrated_median_abs_z: float = math.nan
    recalibrated_coverage95: float = math.nan


def _ranks(a: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties broken by position; enough for continuous values);
    NaN when either side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def calibrate(
    family: CurveFamily,
    seed: int,
    configs: Sequence[Configuration],
    budgets: Sequence[int],
    n_samples: int = 300,
    model_seed: int = 0,
) -> list[Calibration]:
    """Fit the surrogate on ``configs`` as the engine does and measure its calibration.

    Args:
        family: The family the configurations come from.
        seed: The run's seed (it selects the family's instance).
        configs: The configurations to fit on (each with at least one observation).
        budgets: The budgets to predict random configurations at.
        n_samples: How many random configurations to predict.
        model_seed: Seed of the surrogate's initialisation.
    """
    import torch

    from optuna_dyhpo._candidates import current_space
    from optuna_dyhpo._decision import EngineSettings
    from optuna_dyhpo._gp import Surrogate
    from optuna_dyhpo._model_cache import ModelCache
    from optuna_dyhpo._model_cache import curve_table
    from optuna_dyhpo._model_cache import fit_rows
    from optuna_dyhpo._search_space import SearchSpaceEncoder

    # The engine's default settings, rows and conditioning (diverged configurations included).
    settings = EngineSettings(family.max_epochs)
    lookahead = settings.acquisition != "next-step"
    observed = [c for c in configs if c.curve or c.status == "diverged"]
    if len(observed) < 2:
        raise ValueError("calibration needs at least two observed configurations")
    sign = 1.0 if family.direction == "maximize" else -1.0
    space = current_space([c for c in observed if c.curve])
    encoder = SearchSpaceEncoder(space)
    table = curve_table(observed, encoder, sign, family.max_epochs, ModelCache())
    surrogate = Surrogate(encoder.dim, model_seed, settings.surrogate)
    surrogate.fit(*fit_rows(surrogate, table, lookahead), warm_start=False)
    keep = table.conditioning_subset(settings.max_rows, lookahead)
    surrogate.condition(*table.training_rows(lookahead, keep))
    spread = _spread(table, encoder.dim, settings, lookahead, model_seed)

    # Random configurations as the objective builds them (conditional spaces included).
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + 1))
    samples = []
    for _ in range(n_samples):
        trial = study.ask()
        samples.append(family.suggest(trial))
        study.tell(trial, 0.0)
    samples.append(family.optimum_config(seed))
    enc = torch.tensor([encoder.encode(p) for p in samples], dtype=torch.float64)
    out = []
    widen = spread
    for budget in budgets:
        mean, sd = surrogate.predict(table.fresh_rows(enc, budget))
        pred = sign * (mean.numpy() * table.scale + table.loc)
        spread = sd.numpy() * table.scale
        truth = np.array([family.shape(p, seed).value(budget) for p in samples])
        z = np.abs(truth - pred) / spread
        out.append(
            Calibration(
                budget=budget,
                rank_correlation=spearman(pred[:-1], truth[:-1]),
                median_abs_z=float(np.median(z[:-1])),
                coverage95=float(np.mean(z[:-1] <= 1.96)),
                optimum=(float(pred[-1]), float(spread[-1]), float(truth[-1])),
                spread=widen,
                recalibrated_median_abs_z=float(np.median(z[:-1] / widen)),
                recalibrated_coverage95=float(np.mean(z[:-1] / widen <= 1.96)),
            )
        )
    return out


def _spread(
    table: CurveTable, dim: int, settings: EngineSettings, lookahead: bool, model_seed: int
) -> float:
    """The engine's spread factor for ``table``: a model fitted from scratch on all but the
    newest observations (a fifth of them, at most the engine's 100) predicts those from the
    rows before them; the factor comes from its standardised errors."""
    from optuna_dyhpo._gp import Surrogate
    from optuna_dyhpo._gp._calibration import spread_scale
    from optuna_dyhpo._gp._calibration import standardised_errors
    from optuna_dyhpo._refit import MAX_ERRORS

    n_obs = int(table.lengths.sum())
    before = n_obs - min(MAX_ERRORS, n_obs // 5)
    earlier = Surrogate(dim, model_seed, settings.surrogate)
    everything = table.n_training_rows(lookahead)
    earlier.fit(
        *table.training_rows(lookahead, table.conditioning_subset(everything, lookahead, before)),
        warm_start=False,
    )
    keep = table.conditioning_subset(settings.max_rows, lookahead, before)
    query, observed = table.holdout_rows(before)
    mean, sd = earlier.predict_held_out(*table.training_rows(lookahead, keep), query)
    return spread_scale(standardised_errors(mean, sd, observed))


def load_run(path: Path) -> tuple[CurveFamily, int, list[Configuration]]:
    """The family, seed and configurations (by id) of a run's journal."""
    import optuna_dyhpo as dy

    storage = JournalStorage(JournalFileBackend(str(path)))
    (study_name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=study_name, storage=storage)
    attrs = study.user_attrs
    name = str(attrs.get("benchmark_problem", study_name.split("__")[0]))
    kind, _, epochs = name.removeprefix("fam-").partition("-e")
    if not name.startswith("fam-") or kind not in FAMILIES:
        raise ValueError(f"{path} is a run of {name!r}, not of a synthetic family")
    family = FAMILIES[kind](int(epochs) if epochs else None)
    configs = sorted(dy.get_configurations(study), key=lambda c: c.config_id)
    return family, int(attrs["benchmark_seed"]), configs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("journal", type=Path, help="a run's <out>/studies/<run id>.journal")
    parser.add_argument("--configs", type=int, default=None, help="fit on the first N only")
    parser.add_argument("--budgets", type=int, nargs="+", default=None)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    family, seed, configs = load_run(args.journal)
    if args.configs is not None:
        configs = configs[: args.configs]
    budgets = args.budgets or sorted({1, 3, 10, family.max_epochs})
    budgets = [b for b in budgets if 1 <= b <= family.max_epochs]
    print(f"{family.name} seed {seed}: {len(configs)} configurations")
    results = calibrate(family, seed, configs, budgets, args.samples)
    print(f"recalibration widens the spread by {results[0].spread:.2f}")
    print(
        "budget | rank corr. | median |z| | 95% coverage | recalibrated: median |z|, coverage"
        " | optimum: mean +- sd (true)"
    )
    for c in results:
        m, s, t = c.optimum
        print(
            f"{c.budget:6d} | {c.rank_correlation:10.3f} | {c.median_abs_z:10.2f} | "
            f"{c.coverage95:12.2f} | {c.recalibrated_median_abs_z:12.2f}, "
            f"{c.recalibrated_coverage95:.2f} | {m:.3f} +- {s:.3f} ({t:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
