"""The README's API example as a new user writes it: plain SGD whose first epochs sit at chance.

A 64-32-10 MLP trained with plain SGD (no momentum) on scikit-learn's digits, 12 minibatches per
epoch, the learning rate searched on [1e-4, 1e-1] (log), ``max_budget=50``. After epoch 1 the
validation accuracy is about 0.10 for every learning rate. The script prints what DyHPO did:
how many configurations it started, how many stayed at one epoch, the longest curves and the
best accuracy.

Example (from the repository root)::

    python -m benchmarks.readme_sgd --epochs 300 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import tempfile
import time
from typing import Any

import optuna


def _data() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    import torch

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr.astype("int64")),
        torch.from_numpy(x_va),
        torch.from_numpy(y_va.astype("int64")),
    )


def run(epochs: int, seed: int) -> str:
    """One study of ``epochs`` epochs; returns the summary line."""
    import torch
    from torch import nn

    from optuna_dyhpo import DyHPOPruner
    from optuna_dyhpo import DyHPOSampler
    from optuna_dyhpo import StopAfterEpochs
    from optuna_dyhpo import TrialResume
    from optuna_dyhpo import get_configurations

    x_tr, y_tr, x_va, y_va = _data()
    batch = (len(x_tr) + 11) // 12

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        torch.manual_seed(trial.number)
        model = nn.Sequential(
            nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        resume = TrialResume(trial)
        state = resume.load()
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        accuracy = 0.0
        for epoch in resume.steps():
            perm = torch.randperm(len(x_tr))
            for i in range(0, len(x_tr), batch):
                idx = perm[i : i + batch]
                loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                accuracy = (model(x_va).argmax(1) == y_va).float().mean().item()
            trial.report(accuracy, epoch)
            if trial.should_prune():
                resume.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
                raise optuna.TrialPruned()
        return accuracy

    from optuna.artifacts import FileSystemArtifactStore

    with tempfile.TemporaryDirectory() as artifacts:
        sampler = DyHPOSampler(
            max_budget=50, seed=seed, artifact_store=FileSystemArtifactStore(artifacts)
        )
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=DyHPOPruner())
        t0 = time.perf_counter()
        study.optimize(objective, callbacks=[StopAfterEpochs(epochs)])
        wall = time.perf_counter() - t0
        configs = get_configurations(study)
    lengths = sorted((c.last_step for c in configs), reverse=True)
    best = max(max(c.curve) for c in configs if c.curve)
    return (
        f"seed {seed}: {len(configs)} configurations, {lengths.count(1)} of one epoch, "
        f"longest {lengths[:8]}, best accuracy {best:.3f}, {wall:.0f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed in args.seeds:
        print(run(args.epochs, seed), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
