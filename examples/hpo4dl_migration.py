"""HPO4DL's "Getting started" example, run by optuna-dyhpo's Tuner.

The objective function and the ``Tuner(...)`` call are HPO4DL's README example; only the import
changed (``from optuna_dyhpo import Tuner`` instead of ``from hpo4dl.tuner import Tuner``). The
metric ``(x - 2) ** 2`` is minimised over ``x`` in [-5, 10], so the incumbent is near ``x = 2``.

Run:
    python examples/hpo4dl_migration.py            # max_budget=1000 epochs, as in HPO4DL
    python examples/hpo4dl_migration.py --smoke    # max_budget=40 epochs (used by the tests)

Every run writes a new experiment folder, as HPO4DL does:
``hpo4dl_results/experiment_<YYYYmmdd-HHMMSS>/`` with ``hpo4dl_results.csv``,
``configuration_space.json``, ``checkpoints/`` (the best configuration's checkpoint folder) and
``dyhpo.db`` (the Optuna study; the script prints the optuna-dashboard command).
"""

from __future__ import annotations

import argparse
import time
from typing import Dict  # noqa: UP035 - kept as in HPO4DL's README
from typing import List  # noqa: UP035
from typing import Union

from ConfigSpace import ConfigurationSpace

from optuna_dyhpo import Tuner
from optuna_dyhpo import get_configurations


def objective_function(
    configuration: Dict,  # noqa: UP006
    epoch: int,
    previous_epoch: int,
    checkpoint_path: str,
) -> Union[Dict, List[Dict]]:  # noqa: UP006, UP007
    x = configuration["x"]
    evaluated_info = [
        {"epoch": i, "metric": (x - 2) ** 2} for i in range(previous_epoch + 1, epoch + 1)
    ]
    return evaluated_info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="max_budget=40 instead of 1000")
    parser.add_argument("--output", default="hpo4dl_results", help="output_path of the Tuner")
    args = parser.parse_args()
    started = time.perf_counter()

    configspace = ConfigurationSpace({"x": (-5.0, 10.0)})

    tuner = Tuner(
        objective_function=objective_function,
        configuration_space=configspace,
        minimize=True,
        max_budget=40 if args.smoke else 1000,
        optimizer="dyhpo",
        seed=0,
        max_epochs=27,
        num_configurations=1000,
        output_path=args.output,
    )

    incumbent = tuner.run()

    seconds = time.perf_counter() - started
    configs = get_configurations(tuner.study)
    with open(tuner.results_path) as f:
        epochs = sum(1 for _ in f) - 1
    print(f"incumbent:       {incumbent}")
    print(f"x:               {incumbent['configuration']['x']:.6f}")
    print(f"metric:          {incumbent['metric']:.3g}")
    print(f"trials:          {len(tuner.study.trials)} ({len(configs)} configurations)")
    print(f"epochs spent:    {epochs}")
    print(f"runtime:         {seconds:.1f} s")
    print(f"experiment:      {tuner.output_path}")
    print(f"results:         {tuner.results_path}")
    print(f"best checkpoint: {tuner.best_checkpoint_path}")
    print(f"dashboard:       optuna-dashboard {tuner.storage_url}")


if __name__ == "__main__":
    main()
