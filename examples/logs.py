"""What DyHPO prints while it runs: the epoch bar and one INFO line per trial.

A 120-epoch study over synthetic learning curves (no training: each epoch is a formula), with
Optuna's default INFO logging and the progress bar of :class:`~optuna_dyhpo.StopAfterEpochs`.
The README's "Budget and logs" section shows this script's output.

Run:
    python examples/logs.py            # a few seconds
    python examples/logs.py --smoke    # 20 epochs (used by the tests)
"""

from __future__ import annotations

import argparse
import math

import optuna

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume


def objective(trial: optuna.Trial) -> float:
    """A learning curve that rises towards a ceiling set by ``x`` at a speed set by ``lr``."""
    x = trial.suggest_float("x", 0.0, 1.0)
    lr = trial.suggest_float("lr", 1e-2, 1.0, log=True)
    value = 0.0
    for epoch in TrialResume(trial).steps():
        value = (1.0 - (x - 0.7) ** 2) * (1.0 - math.exp(-3.0 * lr * epoch))
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()  # paused: nothing to checkpoint for a formula
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="20 epochs, for the tests")
    args = parser.parse_args()
    study = optuna.create_study(
        direction="maximize",
        sampler=DyHPOSampler(max_budget=20, seed=0),
        pruner=DyHPOPruner(summary_every=100),
    )
    budget = 20 if args.smoke else 120
    study.optimize(objective, callbacks=[StopAfterEpochs(budget)], show_progress_bar=True)


if __name__ == "__main__":
    main()
