"""Ablation of DyHPO's decision and model settings on the LCBench development tasks.

Each *variant* overrides fields of ``optuna_dyhpo._engine.EngineSettings`` (and of the
surrogate's ``SurrogateSettings``); every variant runs the same tasks x seeds at the same epoch
budget through the benchmark runner, and the report gives the mean normalised regret at the
end of the budget and DyHPO's own time (sampler + pruner) per run.

Example (from the repository root)::

    python -m benchmarks.ablation --variants default no-promotions refit-every-5 \\
        --tasks dev --seeds 0-1 --budget 1000

The development tasks are the 10 LCBench tasks of ``benchmarks/RESULTS.md``; the other 24 are
held out for testing and are never used here.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import dataclasses
import json
from pathlib import Path
import shlex
import sys
import time
from typing import Any

import numpy as np

from benchmarks._env import REPO_ROOT
from benchmarks.run import RunSpec
from benchmarks.run import execute_run
from benchmarks.run import is_finished
from benchmarks.run import parse_seeds
from benchmarks.run import result_path

DEV_TASKS = (
    "3945",
    "7593",
    "34539",
    "126025",
    "146212",
    "167104",
    "167168",
    "168330",
    "189906",
    "189909",
)

# name -> (EngineSettings overrides, SurrogateSettings overrides)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "next-step-ei": ({"acquisition": "next-step"}, {}),
    "lookahead-ei": ({"acquisition": "lookahead"}, {}),
    "rung-ei": ({"acquisition": "rung"}, {}),
    "rung-9-ei": ({"acquisition": "rung", "horizon": 9}, {}),
    "no-promotions": ({"promotion_probability": 0.0, "hyperband_brackets": False}, {}),
    "no-hyperband-brackets": ({"hyperband_brackets": False}, {}),
    "promotions-0.5": ({"promotion_probability": 0.5}, {}),
    "no-collapse-guard": ({"collapse_window": 10**9}, {}),
    "no-scratch-restarts": ({"stagnation": 0.0}, {}),
    "up-to-budget-incumbent": ({"acquisition": "next-step", "incumbent": "up-to-budget"}, {}),
    "refit-every-5": ({"refit_every": 5, "refit_growth": 0.0}, {}),
    "refit-growth-only": ({"refit_every": 1, "refit_growth": 0.1}, {}),
    "rows-250": ({"max_rows": 250}, {}),
    "rows-1000": ({"max_rows": 1000}, {}),
    "warm-steps-100": ({}, {"warm_steps": 100}),
    "fit-rows-512": ({}, {"max_fit_rows": 512}),
    "no-recalibration": ({"recalibrate": False}, {}),
}
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "out" / "ablation"


@contextlib.contextmanager
def _variant(name: str) -> Iterator[None]:
    """Make every DyHPOSampler built inside the block use the variant's settings."""
    import optuna_dyhpo
    from optuna_dyhpo._gp import SurrogateSettings

    engine_overrides, surrogate_overrides = VARIANTS[name]
    original = optuna_dyhpo.DyHPOSampler

    class Variant(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            settings = self._engine.settings
            surrogate = dataclasses.replace(SurrogateSettings(), **surrogate_overrides)
            self._engine.settings = dataclasses.replace(
                settings, surrogate=surrogate, **engine_overrides
            )

    optuna_dyhpo.DyHPOSampler = Variant  # type: ignore[misc]
    try:
        yield
    finally:
        optuna_dyhpo.DyHPOSampler = original  # type: ignore[misc]


def _spec(task: str, seed: int, budget: int, data_dir: str | None) -> RunSpec:
    return RunSpec(
        problem_spec=f"lcbench:{task}",
        problem_name=f"lcbench-{task}-val_accuracy",
        method="dyhpo",
        seed=seed,
        budget=budget,
        metric="val_accuracy",
        data_dir=data_dir,
        digits_max_epochs=27,
    )


def run(
    variants: Sequence[str],
    tasks: Sequence[str],
    seeds: Sequence[int],
    budget: int,
    out: Path,
    data_dir: str | None,
) -> None:
    """Run every (variant, task, seed) not finished yet; results under ``out/<variant>``."""
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", "benchmarks.ablation"])
    for name in variants:
        with _variant(name):
            for task in tasks:
                for seed in seeds:
                    spec = _spec(task, seed, budget, data_dir)
                    if is_finished(out / name, spec):
                        continue
                    t0 = time.perf_counter()
                    res = execute_run(spec, out / name, command=f"{command} (variant {name})")
                    print(
                        f"{name:24s} {task:>7s} s{seed} regret {res['final']['regret']:.4f} "
                        f"dyhpo {res['overhead_s']:.1f} s wall {time.perf_counter() - t0:.0f} s",
                        flush=True,
                    )


def summarise(
    variants: Sequence[str], tasks: Sequence[str], seeds: Sequence[int], budget: int, out: Path
) -> str:
    """A Markdown table: mean (and standard error) of the final normalised regret, mean
    DyHPO seconds per run, over the runs every listed variant finished."""
    rows = []
    for name in variants:
        regrets, seconds, n = [], [], 0
        for task in tasks:
            for seed in seeds:
                path = result_path(out / name, _spec(task, seed, budget, None).run_id)
                if not path.exists():
                    continue
                data = json.loads(path.read_text())
                regrets.append(data["final"]["regret"])
                seconds.append(data["overhead_s"] * 1000.0 / data["epochs_spent"])
                n += 1
        if not n:
            rows.append(f"| {name} | 0 | - | - | - |")
            continue
        r = np.asarray(regrets)
        se = r.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        rows.append(f"| {name} | {n} | {r.mean():.4f} | {se:.4f} | {np.mean(seconds):.1f} |")
    head = (
        "| variant | runs | mean normalised regret @ budget | standard error | "
        "DyHPO s per 1000 epochs |\n|---|---|---|---|---|"
    )
    return head + "\n" + "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--tasks", nargs="+", default=["dev"], help="task ids, or 'dev'")
    parser.add_argument("--seeds", default="0-1")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args(argv)
    tasks = list(DEV_TASKS) if args.tasks == ["dev"] else args.tasks
    held_out = [t for t in tasks if t not in DEV_TASKS]
    if held_out:
        parser.error(f"tasks {held_out} are held out for testing; ablate on {DEV_TASKS} only")
    seeds = parse_seeds(args.seeds)
    if not args.summary_only:
        run(args.variants, tasks, seeds, args.budget, args.out, args.data_dir)
    print(summarise(args.variants, tasks, seeds, args.budget, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
