"""Benchmark runner: methods x problems x seeds at a fixed epoch budget.

Example (from the repository root)::

    python -m benchmarks.run --problems lcbench:3945 lcbench:167168 digits \\
        --methods dyhpo tpe-hyperband tpe-sh random smac-mf --seeds 0-4 --budget 1000

    # The robustness suite, each problem at its own default budget (no --budget):
    python -m benchmarks.run --problems suite \\
        --methods dyhpo tpe-hyperband random-hyperband tpe-sh --seeds 0-4

Outputs, under ``--out`` (default ``benchmarks/out``):
    results/<run id>.json   one file per finished run (written atomically at the end).
    studies/<run id>.journal  the run's Optuna study (a JournalStorage file per run, so parallel
                            runs never share a lock; ``python -m benchmarks.merge`` copies
                            finished runs into one journal file for optuna-dashboard).
    work/<run id>/          scratch (DyHPO checkpoints, SMAC's own output); removed after a
                            finished run unless ``--keep-work``.

The runner is resumable: a run whose results file exists is skipped; an unfinished run (no
results file) is restarted from scratch, its old study file deleted first.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Sequence
import concurrent.futures
from dataclasses import dataclass
import datetime
import json
import multiprocessing
import os
from pathlib import Path
import shlex
import shutil
import sys
import time
import traceback
from typing import Any

from benchmarks._env import REPO_ROOT
from benchmarks._env import machine_info
from benchmarks.methods import METHODS
from benchmarks.methods import BudgetRecorder
from benchmarks.methods import MethodUnavailable
from benchmarks.methods import RunContext
from benchmarks.methods import check_available
from benchmarks.problems import LCBENCH_METRICS
from benchmarks.problems import Problem
from benchmarks.problems import parse_problems
from benchmarks.timing import OverheadTimer

SCHEMA_VERSION = 1
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "out"


@dataclass(frozen=True)
class RunSpec:
    """One run: a problem, a method, a seed (plus the options shared by all runs)."""

    problem_spec: str
    problem_name: str
    method: str
    seed: int
    budget: int
    metric: str
    data_dir: str | None
    digits_max_epochs: int

    @property
    def run_id(self) -> str:
        return f"{self.problem_name}__{self.method}__b{self.budget}__s{self.seed}"

    def problem(self) -> Problem:
        (p,) = parse_problems(
            [self.problem_spec],
            metric=self.metric,
            data_dir=self.data_dir,
            digits_max_epochs=self.digits_max_epochs,
        )
        return p


def parse_seeds(text: str) -> list[int]:
    """Parse ``"0-4"``, ``"0,2,5"`` or ``"3"`` into a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return sorted(set(seeds))


def _problem_spec(p: Problem) -> str:
    return p.spec


def result_path(out: Path, run_id: str) -> Path:
    """Path of a run's results file."""
    return out / "results" / f"{run_id}.json"


def is_finished(out: Path, spec: RunSpec) -> bool:
    """Whether a valid results file of ``spec`` exists (the run is then skipped)."""
    path = result_path(out, spec.run_id)
    if not path.is_file():
        return False
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return False
    return (
        data.get("schema") == SCHEMA_VERSION
        and data.get("status") == "finished"
        and data.get("budget_epochs") == spec.budget
        and len(data.get("trajectory", {}).get("incumbent_value", [])) == spec.budget
    )


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def execute_run(
    spec: RunSpec,
    out: Path,
    *,
    command: str,
    keep_work: bool = False,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Run one benchmark run and write its results file.

    Args:
        spec: What to run.
        out: Output folder.
        command: The command line, recorded in the results file.
        keep_work: Keep the run's scratch folder (checkpoints, SMAC output).
        progress: Called with 1 after each epoch spent.

    Returns:
        The results (also written to ``results/<run id>.json``).

    Raises:
        MethodUnavailable: When the method cannot run here.
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalStorage

    method = METHODS[spec.method]
    problem = spec.problem()
    run_id = spec.run_id
    study_path = out / "studies" / f"{run_id}.journal"
    work_dir = out / "work" / run_id
    # An unfinished earlier attempt is discarded: runs restart from scratch.
    for stale in (study_path, study_path.with_name(study_path.name + ".lock")):
        if stale.exists():
            stale.unlink()
    shutil.rmtree(work_dir, ignore_errors=True)
    study_path.parent.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(study_path)))
    # Imports and data loading happen before the clock starts.
    if method.warm_up is not None:
        method.warm_up()
    problem.warm_up()
    timer = OverheadTimer()
    recorder = BudgetRecorder(problem, spec.budget, timer, progress)
    ctx = RunContext(
        problem=problem,
        seed=spec.seed,
        budget=spec.budget,
        study_name=run_id,
        storage=storage,
        work_dir=work_dir,
        recorder=recorder,
        timer=timer,
    )
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stats = method.run(ctx)
    wall = time.perf_counter() - t0
    overhead = timer.total
    n_decisions = int(stats.get("n_decisions", 0))
    best = recorder.best
    result: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "status": "finished",
        "run_id": run_id,
        "method": spec.method,
        "method_description": method.description,
        "problem": problem.describe(),
        "seed": spec.seed,
        "budget_epochs": spec.budget,
        "budget_accounting": method.accounting,
        "budget_accounting_note": (
            "continuation-aware: a resumed configuration costs only its new epochs"
            if method.accounting == "continuation"
            else "restart-aware: every trial/evaluation trains from scratch and costs all "
            "its epochs"
        ),
        "epochs_spent": recorder.spent,
        "final": {
            "incumbent_value": best,
            "incumbent_noiseless_value": recorder.best_noiseless,
            "regret": recorder.final_regret,
        },
        "wall_time_s": wall,
        "objective_time_s": recorder.objective_seconds,
        "checkpoint_time_s": recorder.checkpoint_seconds,
        "overhead_s": overhead,
        "overhead_per_decision_s": overhead / n_decisions if n_decisions else None,
        "overhead_breakdown": timer.breakdown(),
        "overhead_definition": (
            "seconds inside the sampler's and pruner's methods (SMAC: ask, tell and facade "
            "set-up), outermost calls only; excludes the objective's compute, checkpoint I/O "
            "and the objective's own storage writes (trial.report)"
        ),
        **stats,
        "trajectory": {
            "note": "entry i is the state after i+1 epochs spent",
            "incumbent_value": recorder.incumbent,
            "regret": recorder.regret,
            "wall_time_s": recorder.wall,
            "overhead_s": recorder.overhead,
        },
        "storage": {
            "kind": "JournalStorage(JournalFileBackend), one file per run",
            "path": os.path.relpath(study_path, out),
            "study_name": run_id,
        },
        "command": command,
        "machine": machine_info(),
        "started_at": started.isoformat(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    _write_json_atomic(result_path(out, run_id), result)
    if not keep_work:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _init_worker(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    torch.set_num_threads(threads)


def _worker(
    spec: RunSpec, out: str, command: str, keep_work: bool, threads: int
) -> dict[str, Any]:
    _init_worker(threads)
    try:
        res = execute_run(spec, Path(out), command=command, keep_work=keep_work)
    except MethodUnavailable as exc:
        return {"run_id": spec.run_id, "status": "unavailable", "error": str(exc)}
    except Exception:  # noqa: BLE001 - reported, the other runs go on.
        return {"run_id": spec.run_id, "status": "failed", "error": traceback.format_exc()}
    return _summary(res)


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_id": res["run_id"],
        "status": res["status"],
        "regret": res["final"]["regret"],
        "wall_time_s": res["wall_time_s"],
        "overhead_s": res["overhead_s"],
    }


def build_parser() -> argparse.ArgumentParser:
    """The runner's command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Run methods x problems x seeds at an epoch budget (resumable).",
    )
    p.add_argument(
        "--problems",
        nargs="+",
        default=["lcbench:3945"],
        help=(
            "lcbench:<task id>, lcbench:all, digits, family:<name>[:e<max epochs>], family:all, "
            "digits-sgd, cancer-sgd, suite (space or comma separated)"
        ),
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        help=f"subset of {', '.join(METHODS)} (default: all)",
    )
    p.add_argument("--seeds", default="0", help="e.g. 0-4 or 0,3,7 (default 0)")
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="epochs per run (default: each problem's own, 1000 for LCBench and digits)",
    )
    p.add_argument("--metric", choices=LCBENCH_METRICS, default="val_accuracy")
    p.add_argument(
        "--data-dir",
        default=None,
        help="YAHPO LCBench folder (default: $YAHPO_LCBENCH_DIR or ../shared/data/yahpo_lcbench)",
    )
    p.add_argument("--digits-max-epochs", type=int, default=27)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--workers", type=int, default=1, help="parallel runs (processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--force", action="store_true", help="rerun finished runs too")
    p.add_argument("--keep-work", action="store_true", help="keep checkpoints / SMAC output")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 when no run failed)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    command = shlex.join(["python", "-m", "benchmarks.run", *args_list])
    if args.budget is not None and args.budget < 1:
        raise SystemExit("--budget must be >= 1")
    methods = [m for item in args.methods for m in item.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    try:
        seeds = parse_seeds(args.seeds)
        problems = parse_problems(
            args.problems,
            metric=args.metric,
            data_dir=args.data_dir,
            digits_max_epochs=args.digits_max_epochs,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    out: Path = args.out.resolve()
    unavailable = {m: r for m in methods if (r := check_available(m)) is not None}
    for m, reason in unavailable.items():
        print(f"[benchmarks] skipping method {m}: {reason}", file=sys.stderr)
    specs = [
        RunSpec(
            problem_spec=_problem_spec(p),
            problem_name=p.name,
            method=m,
            seed=s,
            budget=args.budget if args.budget is not None else p.default_budget,
            metric=args.metric,
            data_dir=args.data_dir,
            digits_max_epochs=args.digits_max_epochs,
        )
        for p in problems
        for m in methods
        if m not in unavailable
        for s in seeds
    ]
    todo = [s for s in specs if args.force or not is_finished(out, s)]
    print(
        f"[benchmarks] {len(specs)} runs, {len(specs) - len(todo)} already finished, "
        f"{len(todo)} to run; results in {out / 'results'}",
        file=sys.stderr,
    )
    summaries = _run_all(todo, out, command, args)
    failed = [s for s in summaries if s["status"] == "failed"]
    for s in failed:
        print(f"[benchmarks] run {s['run_id']} FAILED:\n{s['error']}", file=sys.stderr)
    return 1 if failed else 0


def _run_all(
    todo: list[RunSpec], out: Path, command: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    from tqdm import tqdm

    summaries: list[dict[str, Any]] = []
    disable = args.no_progress
    with tqdm(total=len(todo), desc="runs", unit="run", disable=disable, position=0) as bar:
        if args.workers <= 1:
            _init_worker(args.threads)
            for spec in todo:
                bar.set_postfix_str(spec.run_id)
                with tqdm(
                    total=spec.budget,
                    desc="epochs",
                    unit="ep",
                    leave=False,
                    disable=disable,
                    position=1,
                ) as inner:
                    try:
                        res = execute_run(
                            spec,
                            out,
                            command=command,
                            keep_work=args.keep_work,
                            progress=inner.update,
                        )
                        summaries.append(_summary(res))
                    except MethodUnavailable as exc:
                        summaries.append(
                            {"run_id": spec.run_id, "status": "unavailable", "error": str(exc)}
                        )
                    except Exception:  # noqa: BLE001 - reported at the end.
                        summaries.append(
                            {
                                "run_id": spec.run_id,
                                "status": "failed",
                                "error": traceback.format_exc(),
                            }
                        )
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(args.workers, mp_context=ctx) as pool:
                futures = [
                    pool.submit(_worker, s, str(out), command, args.keep_work, args.threads)
                    for s in todo
                ]
                for fut in concurrent.futures.as_completed(futures):
                    summaries.append(fut.result())
                    bar.set_postfix_str(summaries[-1]["run_id"])
                    bar.update(1)
    return summaries


if __name__ == "__main__":
    raise SystemExit(main())
