"""optuna-dyhpo quickstart: tune a small PyTorch MLP on scikit-learn's digits with DyHPO.

Every configuration trains epoch by epoch. After each epoch DyHPO decides whether it deserves
the next one; if not, the trial saves a checkpoint and is paused (PRUNED), and a later trial
may resume it from that checkpoint. A trial that reaches the last epoch saves its final
model too; each configuration keeps one checkpoint (DyHPO removes the ones a newer checkpoint
replaced). The study stops after a total budget of epochs.

Run:
    python examples/quickstart.py             # about 1 min on 2 CPU cores
    python examples/quickstart.py --smoke     # a few seconds (used by the tests)

Then look at the race in optuna-dashboard (also while it runs: the DyHPO plots and the study
note are kept up to date):
    optuna-dashboard sqlite:///quickstart_output/dyhpo.db \
        --artifact-dir quickstart_output/artifacts
"""

from __future__ import annotations

import argparse
from pathlib import Path
import time

import optuna
from optuna.artifacts import FileSystemArtifactStore
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import torch
from torch import nn

from optuna_dyhpo import DashboardUpdater
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import best_configuration
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from optuna_dyhpo import load_checkpoint
from optuna_dyhpo import remove_all_checkpoints


def load_data(seed: int) -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=0.3, random_state=seed, stratify=y
    )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return as_x(x_train), as_y(y_train), as_x(x_val), as_y(y_val)


def make_objective(data: tuple[torch.Tensor, ...], seed: int):  # type: ignore[no-untyped-def]
    x_train, y_train, x_val, y_val = data

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_int("hidden", 8, 256, log=True)
        dropout = trial.suggest_float("dropout", 0.0, 0.6)
        batch_size = trial.suggest_categorical("batch_size", [16, 64, 256])
        optimizer_name = trial.suggest_categorical("optimizer", ["sgd", "adam"])
        momentum = trial.suggest_float("momentum", 0.0, 0.99) if optimizer_name == "sgd" else 0.0

        resume = TrialResume(trial)
        torch.manual_seed(seed + resume.config_id)
        model = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )
        if optimizer_name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=lr, momentum=momentum
            )
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed + resume.config_id)

        state = resume.load()  # None for a new configuration
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])

        accuracy = 0.0
        for epoch in resume.steps():
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            for i in range(0, len(order), batch_size):
                batch = order[i : i + batch_size]
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
            trial.report(accuracy, epoch)
            if trial.should_prune():  # paused: save what a resume needs
                resume.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                    }
                )
                raise optuna.TrialPruned()
        # Reached max_budget (or the study's budget ended): keep the final model too.
        resume.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()})
        return accuracy

    return objective


def create_fresh_study(name: str, out: Path, max_budget: int, seed: int) -> optuna.Study:
    """A new DyHPO study in ``out/dyhpo.db`` with checkpoints in ``out/artifacts``."""
    (out / "artifacts").mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{out / 'dyhpo.db'}"
    store = FileSystemArtifactStore(str(out / "artifacts"))
    if name in optuna.get_all_study_names(storage):  # a demo: start afresh
        old = optuna.load_study(study_name=name, storage=storage)
        remove_all_checkpoints(old, artifact_store=store)  # delete_study leaves artifacts
        optuna.delete_study(study_name=name, storage=storage)
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=DyHPOSampler(max_budget=max_budget, seed=seed, artifact_store=store),
        pruner=DyHPOPruner(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budget, for the tests")
    parser.add_argument("--output", default="quickstart_output", help="folder for db/artifacts")
    parser.add_argument("--epochs", type=int, default=None, help="total budget in epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    max_budget = 5 if args.smoke else 25
    total = args.epochs or (20 if args.smoke else 300)
    out = Path(args.output)
    storage = f"sqlite:///{out / 'dyhpo.db'}"
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = create_fresh_study("dyhpo-quickstart", out, max_budget, args.seed)
    # DashboardUpdater keeps the DyHPO plots and a study note up to date in optuna-dashboard
    # while the study runs (after StopAfterEpochs, so that the final state is saved too).
    dashboard = DashboardUpdater(n_epochs=total, target_name="validation accuracy")
    started = time.perf_counter()
    study.optimize(
        make_objective(load_data(args.seed), args.seed),
        callbacks=[StopAfterEpochs(total), dashboard],
    )
    wall = time.perf_counter() - started

    configs = get_configurations(study)
    best = best_configuration(study)  # the best epoch of any configuration, paused or not
    resumed = [c for c in configs if len(c.trial_numbers) > 1]
    print(f"epochs spent:             {epochs_spent(study)} (budget {total})")
    print(f"trials:                   {len(study.trials)}")
    print(f"configurations started:   {len(configs)}")
    n_resumes = sum(len(c.trial_numbers) - 1 for c in configs)
    print(f"configurations resumed:   {len(resumed)} ({n_resumes} resumes)")
    print(f"paused at the end:        {sum(c.status == 'paused' for c in configs)}")
    print(f"trained to {max_budget} epochs:     {sum(c.last_step == max_budget for c in configs)}")
    print(
        f"best validation accuracy: {best.value:.4f} (configuration {best.config_id}, "
        f"epoch {best.epoch}, trial {best.trial.number}, {best.status})"
    )
    print(f"best params:              {best.params}")
    print(
        f"dashboard updates:        {dashboard.n_updates} ({dashboard.seconds:.2f} s of "
        f"{wall:.1f} s, {100 * dashboard.seconds / wall:.2f} %)"
    )
    n_files = sum(f.is_file() for f in (out / "artifacts").iterdir())
    print(f"checkpoints kept:         {n_files} for {len(configs)} configurations")
    # The best configuration's live checkpoint (its last epoch), e.g. to deploy it.
    model_state = load_checkpoint(study, best.config_id)["model"]
    last = next(c.last_step for c in configs if c.config_id == best.config_id)
    print(f"best checkpoint:          {len(model_state)} tensors, epoch {last}")
    print(f"dashboard: optuna-dashboard {storage} --artifact-dir {out / 'artifacts'}")


if __name__ == "__main__":
    main()
