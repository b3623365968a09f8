"""Overhead of DyHPOSampler + DyHPOPruner over a full sequential run on synthetic curves.

Measures the time spent inside the sampler and the pruner (the objective's own work is a
closed-form learning curve and is excluded), per decision, and reports the total plus p50/p95
per decision around 100, 500 and 1000 observations.

    python benchmarks/sampler_overhead.py --epochs 1000 --seeds 0 1 2
    python benchmarks/sampler_overhead.py --epochs 1000 --storage sqlite   # incl. SQLite I/O

With ``--fit-in-background`` the sampler refits in its helper process; ``--epoch-seconds S``
then gives every epoch S seconds of training (``--epoch-work sleep``: the CPU stays free, as
when a GPU trains; ``cpu``: torch matrix products on this process's threads), which is when a
background fit runs. The overhead is still only the time inside the sampler and the pruner.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import functools
import json
import math
from pathlib import Path
import platform
import random
import tempfile
import time
from typing import Any

import optuna

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import epochs_spent

MAX_BUDGET = 50


def synthetic_value(params: dict[str, float], epoch: int) -> float:
    """A saturating learning curve whose ceiling and speed depend on the hyperparameters.

    Early epochs are informative but misleading in part (fast learners start high and may
    plateau low), as on real learning-curve benchmarks.
    """
    x1, x2, x3, x4 = params["x1"], params["x2"], params["x3"], params["x4"]
    ceiling = 0.95 - 0.5 * (x1 - 0.3) ** 2 - 0.3 * (x2 - 0.6) ** 2 - 0.05 * x4
    speed = 0.03 + 0.6 * x3 * (1.0 - 0.5 * x1)
    noise = random.Random(hash((round(x1, 9), round(x2, 9), epoch))).gauss(0.0, 0.003)
    return ceiling * (1.0 - math.exp(-speed * epoch)) + noise


def train(seconds: float, work: str) -> None:
    """Stand-in for an epoch of training: ``seconds`` of sleep or of CPU work."""
    if seconds <= 0:
        return
    if work == "sleep":
        time.sleep(seconds)
        return
    import torch

    a = torch.rand(256, 256)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)


def objective(trial: optuna.Trial, epoch_seconds: float = 0.0, work: str = "sleep") -> float:
    params = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, 5)}
    value = 0.0
    for epoch in TrialResume(trial).steps():
        train(epoch_seconds, work)
        value = synthetic_value(params, epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


class _Timer:
    """Wraps sampler and pruner methods and records (observations, seconds) per call."""

    def __init__(self, study_ref: Callable[[], optuna.Study]) -> None:
        self.calls: list[tuple[str, int, float]] = []
        self._study = study_ref

    def wrap(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.calls.append((kind, epochs_spent(self._study()), dt))

        return timed


def run(
    seed: int,
    epochs: int,
    storage_kind: str,
    background: bool = False,
    epoch_seconds: float = 0.0,
    work: str = "sleep",
    acquisition: str = "lookahead",
    proposal: str = "gp",
) -> dict[str, Any]:
    storage: str | None = None
    if storage_kind == "sqlite":
        storage = f"sqlite:///{tempfile.mkdtemp()}/overhead.db"
    sampler = DyHPOSampler(
        MAX_BUDGET,
        seed=seed,
        fit_in_background=background,
        acquisition=acquisition,  # type: ignore[arg-type]
        proposal=proposal,  # type: ignore[arg-type]
    )
    pruner = DyHPOPruner()
    study = optuna.create_study(
        direction="maximize", storage=storage, sampler=sampler, pruner=pruner
    )
    timer = _Timer(lambda: study)
    # Everything the sampler and pruner do per trial / per step, including storage writes.
    for name in ("before_trial", "sample_independent", "after_trial"):
        setattr(sampler, name, timer.wrap("sampler", getattr(sampler, name)))
    pruner.prune = timer.wrap("pruner", pruner.prune)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    study.optimize(
        functools.partial(objective, epoch_seconds=epoch_seconds, work=work),
        callbacks=[StopAfterEpochs(epochs)],
    )
    wall = time.perf_counter() - t0
    total = sum(dt for _, _, dt in timer.calls)
    # A decision is a pruner call or a trial start (before_trial); sample_independent and
    # after_trial are folded into the totals but are not decisions.
    # Per-decision percentiles use the pruner's decisions (one per epoch); trial starts are
    # in the total.
    decisions = [(n, dt) for (k, n, dt) in timer.calls if k == "pruner"]
    windows = {}
    for target in (100, 500, 1000):
        if target > epochs:
            continue
        sample = sorted(dt for n, dt in decisions if 0.9 * target < n <= target)
        if sample:
            windows[target] = {
                "n": len(sample),
                "p50_ms": 1000 * sample[len(sample) // 2],
                "p95_ms": 1000 * sample[min(len(sample) - 1, math.ceil(0.95 * len(sample)) - 1)],
            }
    best = max((v for t in study.trials for v in t.intermediate_values.values()), default=math.nan)
    stats = sampler._engine.stats
    return {
        "seed": seed,
        "storage": storage_kind,
        "fit_in_background": background,
        "acquisition": acquisition,
        "proposal": proposal,
        "epoch_seconds": epoch_seconds,
        "epoch_work": work,
        "epochs": epochs_spent(study),
        "trials": len(study.trials),
        "wall_seconds": wall,
        "overhead_seconds": total,
        "decisions": len(decisions) + len(study.trials),
        "windows": windows,
        "best_value": best,
        "fits": {
            "scratch": stats.scratch_fits,
            "warm": stats.warm_fits,
            "failed": stats.failed_fits,
            "background": stats.background_fits,
            "fit_seconds": stats.fit_seconds,
            "background_fit_seconds": stats.background_fit_seconds,
            "predict_seconds": stats.predict_seconds,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--storage", choices=["inmemory", "sqlite"], default="inmemory")
    parser.add_argument("--fit-in-background", action="store_true")
    parser.add_argument("--epoch-seconds", type=float, default=0.0)
    parser.add_argument("--epoch-work", choices=["sleep", "cpu"], default="sleep")
    parser.add_argument(
        "--acquisition",
        choices=["lookahead", "multi-horizon", "rung", "next-step"],
        default="lookahead",
    )
    parser.add_argument("--proposal", choices=["gp", "tpe"], default="gp")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = [
        run(
            s,
            args.epochs,
            args.storage,
            args.fit_in_background,
            args.epoch_seconds,
            args.epoch_work,
            args.acquisition,
            args.proposal,
        )
        for s in args.seeds
    ]
    print(
        f"# machine: {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}, optuna {optuna.__version__}"
    )
    for r in results:
        w = "  ".join(
            f"@{k}: p50 {v['p50_ms']:.1f} ms p95 {v['p95_ms']:.1f} ms (n={v['n']})"
            for k, v in r["windows"].items()
        )
        print(
            f"seed {r['seed']} [{r['storage']}] epochs {r['epochs']} trials {r['trials']} "
            f"overhead {r['overhead_seconds']:.1f} s of wall {r['wall_seconds']:.1f} s, "
            f"{r['decisions']} decisions; {w}; best {r['best_value']:.4f}; fits {r['fits']}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
