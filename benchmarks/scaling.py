"""How DyHPO scales with worker processes on one PostgreSQL study.

For each worker count (default 1, 2, 4, 8) a fresh study is optimised by that many processes
for a fixed wall time. The objective only sleeps (``--epoch-seconds``, default 1 s per epoch)
and saves / loads real checkpoints (``benchmarks.stress.StressObjective``), so the figures are
DyHPO's and the storage's cost, not training. Reported per worker count:

- epochs completed per second (all workers; epochs reported before the deadline) and the
  speed-up over one worker (ideal: the worker count);
- the sampler's overhead per decision: wall time inside ``DyHPOSampler.before_trial`` (a
  trial start) and ``DyHPOPruner.prune`` (after each epoch), median / p95 over all calls of all
  workers, and the mean time in every sampler + pruner hook per decision;
- SQL statements per decision: statements the worker's SQLAlchemy engine executed
  (``before_cursor_execute`` listener), divided by its decisions; once for everything the
  worker did (objective's ``trial.report``, the optimize loop, Optuna's heartbeat thread,
  artifacts' attributes) and once for the statements issued inside the sampler and pruner.

Workers start, import torch and load the study first; the clock starts when all are ready.

Usage (from the repository root; a throwaway PostgreSQL cluster is started when
``--storage`` is omitted)::

    python -m benchmarks.scaling run --workers 1 2 4 8 --seconds 60 --out scaling.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import functools
import json
import math
import os
from pathlib import Path
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
import uuid
import warnings

import optuna

from benchmarks.stress import REPO_ROOT
from benchmarks.stress import StressObjective
from benchmarks.stress import dispose_storage
from benchmarks.stress import make_storage
from benchmarks.stress import storage_or_throwaway
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import epochs_spent

DECISION_HOOKS = ("before_trial", "prune")
SAMPLER_HOOKS = ("before_trial", "sample_independent", "after_trial")


# --------------------------------------------------------------------------- worker
class _Probe:
    """Times the sampler's and pruner's hooks and counts SQL statements (per thread kind)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {k: [] for k in (*SAMPLER_HOOKS, "prune")}
        self.sql_total = 0
        self.sql_dyhpo = 0
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._local.inside = True
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.calls[name].append(time.perf_counter() - t0)
                self._local.inside = False

        return timed

    def on_statement(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.sql_total += 1
            if getattr(self._local, "inside", False):
                self.sql_dyhpo += 1


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    from optuna.artifacts import FileSystemArtifactStore
    from sqlalchemy import event

    import optuna_dyhpo._gp._model  # noqa: F401  (import torch/gpytorch before the clock)

    storage = make_storage(args.storage)
    try:
        sampler = DyHPOSampler(
            args.max_budget,
            seed=args.seed + args.index,
            artifact_store=FileSystemArtifactStore(args.artifact_dir),
        )
        pruner = DyHPOPruner()
        study = optuna.load_study(
            study_name=args.study, storage=storage, sampler=sampler, pruner=pruner
        )
        probe = _Probe()
        for name in SAMPLER_HOOKS:
            setattr(sampler, name, probe.wrap(name, getattr(sampler, name)))
        pruner.prune = probe.wrap("prune", pruner.prune)  # type: ignore[method-assign]
        engine = getattr(storage, "engine", None)
        if engine is not None:
            event.listen(engine, "before_cursor_execute", probe.on_statement)
        Path(args.ready_file).write_text("ready")
        go = Path(args.go_file)
        while not go.exists():
            time.sleep(0.02)
        t0 = float(go.read_text())
        time.sleep(max(0.0, t0 - time.time()))
        with probe._lock:
            probe.sql_total = probe.sql_dyhpo = 0
        objective = StressObjective(args.epoch_seconds, args.index, deadline=t0 + args.seconds)
        study.optimize(objective, catch=(Exception,))
        stats = {
            "index": args.index,
            "epochs": objective.epochs,
            "calls": probe.calls,
            "sql_total": probe.sql_total,
            "sql_dyhpo": probe.sql_dyhpo,
            "engine": sampler._engine.stats.__dict__,
        }
        Path(args.stats_out).write_text(json.dumps(stats))
    finally:
        dispose_storage(storage)


# --------------------------------------------------------------------------- parent
def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _median(stats: list[dict[str, Any]], hook: str) -> float:
    values = [dt for s in stats for dt in s["calls"][hook]]
    return statistics.median(values) if values else math.nan


def run_workers(
    storage_url: str,
    n_workers: int,
    *,
    seconds: float,
    epoch_seconds: float = 1.0,
    max_budget: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Optimise a fresh study with ``n_workers`` processes for ``seconds``; return figures."""
    study_name = f"scaling-{n_workers}-{uuid.uuid4().hex[:6]}"
    tmp = Path(tempfile.mkdtemp(prefix="dyhpo-scaling-"))
    storage = make_storage(storage_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize")
        (tmp / "artifacts").mkdir()
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
        go = tmp / "go"
        for i in range(n_workers):
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.scaling",
                "worker",
                "--storage",
                storage_url,
                "--study",
                study_name,
                "--index",
                str(i),
                "--max-budget",
                str(max_budget),
                "--seed",
                str(seed),
                "--artifact-dir",
                str(tmp / "artifacts"),
                "--epoch-seconds",
                str(epoch_seconds),
                "--seconds",
                str(seconds),
                "--ready-file",
                str(tmp / f"ready-{i}"),
                "--go-file",
                str(go),
                "--stats-out",
                str(tmp / f"stats-{i}.json"),
            ]
            with open(tmp / f"worker-{i}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        limit = time.time() + 180
        while not all((tmp / f"ready-{i}").exists() for i in range(n_workers)):
            if time.time() > limit or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"workers did not start; see logs in {tmp}")
            time.sleep(0.1)
        t0 = time.time() + 1.0
        go.write_text(repr(t0))
        limit = t0 + seconds + max_budget * epoch_seconds + 180
        for p in procs:
            p.wait(timeout=max(1.0, limit - time.time()))
        stats = []
        for i in range(n_workers):
            path = tmp / f"stats-{i}.json"
            if not path.exists():
                log = (tmp / f"worker-{i}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {i} wrote no statistics:\n{log}")
            stats.append(json.loads(path.read_text()))
        epochs = epochs_spent(study)
        decision_times = [dt for s in stats for hook in DECISION_HOOKS for dt in s["calls"][hook]]
        hook_seconds = sum(dt for s in stats for v in s["calls"].values() for dt in v)
        decisions = len(decision_times)
        return {
            "workers": n_workers,
            "seconds": seconds,
            "epoch_seconds": epoch_seconds,
            "epochs": epochs,
            "epochs_per_second": epochs / seconds,
            "trials": len(study.get_trials(deepcopy=False)),
            "decisions": decisions,
            "decision_ms_p50": 1000 * statistics.median(decision_times),
            "decision_ms_p95": 1000 * _percentile(decision_times, 0.95),
            "trial_start_ms_p50": 1000 * _median(stats, "before_trial"),
            "prune_ms_p50": 1000 * _median(stats, "prune"),
            "hooks_ms_per_decision": 1000 * hook_seconds / decisions,
            "sql_per_decision": sum(s["sql_total"] for s in stats) / decisions,
            "sql_per_decision_in_hooks": sum(s["sql_dyhpo"] for s in stats) / decisions,
            "fits": {
                "scratch": sum(s["engine"]["scratch_fits"] for s in stats),
                "warm": sum(s["engine"]["warm_fits"] for s in stats),
                "fit_seconds": sum(s["engine"]["fit_seconds"] for s in stats),
            },
        }
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        dispose_storage(storage)
        shutil.rmtree(tmp, ignore_errors=True)


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (speed-up relative to the first row)."""
    base = results[0]["epochs_per_second"] if results else math.nan
    lines = [
        "| workers | epochs | epochs/s | speed-up | decisions | decision p50 / p95 (ms) "
        "| sampler+pruner ms per decision | SQL per decision (all / in DyHPO hooks) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['workers']} | {r['epochs']} | {r['epochs_per_second']:.2f} "
            f"| {r['epochs_per_second'] / base:.2f}x | {r['decisions']} "
            f"| {r['decision_ms_p50']:.0f} / {r['decision_ms_p95']:.0f} "
            f"| {r['hooks_ms_per_decision']:.0f} "
            f"| {r['sql_per_decision']:.1f} / {r['sql_per_decision_in_hooks']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``run`` (the benchmark) or ``worker`` (one worker, started by ``run``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the scaling benchmark")
    run.add_argument("--storage", default=None, help="storage URL (default: throwaway Postgres)")
    run.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    run.add_argument("--seconds", type=float, default=60.0, help="wall time per worker count")
    run.add_argument("--epoch-seconds", type=float, default=1.0)
    run.add_argument("--max-budget", type=int, default=20)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default=None, help="write the results as JSON")
    worker = sub.add_parser("worker", help="one worker process (started by `run`)")
    for name in ("--storage", "--study", "--artifact-dir", "--ready-file", "--go-file"):
        worker.add_argument(name, required=True)
    worker.add_argument("--stats-out", required=True)
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--max-budget", type=int, required=True)
    worker.add_argument("--seed", type=int, default=0)
    worker.add_argument("--epoch-seconds", type=float, default=1.0)
    worker.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    if args.command == "worker":
        _worker(args)
        return 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    results = []
    with storage_or_throwaway(args.storage) as url:
        for n in args.workers:
            r = run_workers(
                url,
                n,
                seconds=args.seconds,
                epoch_seconds=args.epoch_seconds,
                max_budget=args.max_budget,
                seed=args.seed,
            )
            results.append(r)
            print(json.dumps(r), flush=True)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
        f"optuna {optuna.__version__}, {args.seconds:g} s per worker count, "
        f"{args.epoch_seconds:g} s per epoch, max_budget {args.max_budget}\n"
    )
    print(markdown_table(results))
    if args.out:
        Path(args.out).write_text(
            json.dumps({"args": vars(args), "results": results}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
