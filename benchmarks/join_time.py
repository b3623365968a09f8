"""Time from process start to first trial of a worker that joins a running study.

The parent creates a study on the SQLite factory
(:func:`optuna_dyhpo.storages.create_sqlite_storage`), fills it with finished DyHPO trials
holding ``--prefill`` observations (:func:`benchmarks._storage_probe.prefill`: ``max_budget``
50, the curves of ``benchmarks.sampler_overhead``), then starts ``--joiners`` worker processes
one after the other (``python -m benchmarks.join_time worker``; joiner ``i`` seeds its sampler
with ``seed + i``). Each joiner loads the study, runs one trial (one epoch, then the pruner's
decision) and exits. It reports, in seconds from the parent's ``time.time()`` just before it
launched the process:

- ``imports``: until ``optuna``, ``optuna_dyhpo`` and its model (torch, gpytorch) are imported;
- ``read``: ``optuna.load_study`` and the sampler's first read of the study;
- ``fit``: the engine's first fit (``DecisionEngine._fit``: a fit from scratch, a warm refit,
  or nothing when a published model is adopted without a refit);
- ``rest``: everything else until the objective is called (the decision's prediction, claims,
  storage writes);
- ``first_trial``: the total, process launch to the objective's first line;

with the engine's counters at that moment (``scratch_fits``, ``warm_fits``, ``adopted``) and the
reason of the decision. The first joiner finds no model published in the study; the others find
the one an earlier joiner published (when the package shares fitted models). A decision that is
a successive-halving promotion (probability 0.25) uses no model; its row says so.

Usage (from the repository root)::

    python -m benchmarks.join_time run --prefill 1000 --joiners 6 --out join.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
import warnings

MAX_BUDGET = 50


def _worker(args: argparse.Namespace) -> None:
    import optuna
    from optuna.artifacts import FileSystemArtifactStore

    from benchmarks.sampler_overhead import synthetic_value
    import optuna_dyhpo
    import optuna_dyhpo._gp  # noqa: F401  (torch, gpytorch: what the first decision imports)
    from optuna_dyhpo.storages import create_sqlite_storage

    t_imports = time.time()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    storage = create_sqlite_storage(args.db)
    sampler = optuna_dyhpo.DyHPOSampler(
        MAX_BUDGET, seed=args.seed, artifact_store=FileSystemArtifactStore(args.artifacts)
    )
    engine = sampler._engine
    marks: dict[str, float] = {"read": 0.0, "fit": 0.0}
    counts = {"read": 0, "fit": 0}

    def timed(kind: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                counts[kind] += 1
                if counts[kind] == 1:
                    marks[kind] += time.perf_counter() - t0

        return wrapper

    sampler._reader.read = timed("read", sampler._reader.read)  # type: ignore[method-assign]
    engine._fit = timed("fit", engine._fit)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    study = optuna.load_study(
        study_name="join", storage=storage, sampler=sampler, pruner=optuna_dyhpo.DyHPOPruner()
    )
    marks["read"] += time.perf_counter() - t0
    out: dict[str, Any] = {}

    def objective(trial: optuna.Trial) -> float:
        if not out:
            first = time.time()
            stats = engine.stats
            out.update(
                first_trial=first - args.launched,
                imports=t_imports - args.launched,
                read=marks["read"],
                fit=marks["fit"],
                scratch_fits=stats.scratch_fits,
                warm_fits=stats.warm_fits,
                adopted=getattr(stats, "adopted_models", None),
                reason=sampler._start_notes.get(trial._trial_id, ""),
            )
            out["rest"] = out["first_trial"] - out["imports"] - out["read"] - out["fit"]
        x = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, 5)}
        resume = optuna_dyhpo.TrialResume(trial)
        epoch = resume.start_step  # one epoch, then the pruner's decision
        trial.report(synthetic_value(x, epoch), epoch)
        if trial.should_prune() or epoch < MAX_BUDGET:
            resume.save({"epoch": epoch})
            raise optuna.TrialPruned()
        return synthetic_value(x, epoch)

    study.optimize(objective, n_trials=1)
    storage.engine.dispose()
    Path(args.result).write_text(json.dumps(out))


def run(prefill_obs: int, joiners: int, seed: int) -> list[dict[str, Any]]:
    """Prefill a study, start the joiners one by one; return each joiner's figures."""
    import optuna

    from benchmarks._storage_probe import prefill
    from optuna_dyhpo.storages import create_sqlite_storage

    rows = []
    with tempfile.TemporaryDirectory(prefix="dyhpo-join-") as tmp:
        db = Path(tmp) / "study.db"
        storage = create_sqlite_storage(db)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(storage=storage, study_name="join", direction="maximize")
        prefill(study, prefill_obs, seed)
        storage.engine.dispose()
        for i in range(joiners):
            result = Path(tmp) / f"joiner-{i}.json"
            cmd = [sys.executable, "-m", "benchmarks.join_time", "worker", "--db", str(db)]
            cmd += ["--seed", str(seed + i), "--result", str(result), "--artifacts", tmp]
            launched = time.time()
            subprocess.run([*cmd, "--launched", repr(launched)], check=True, env=os.environ)
            row = {"joiner": i, **json.loads(result.read_text())}
            rows.append(row)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            print(json.dumps(shown), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``run`` (prefill, start the joiners) or ``worker`` (one joiner)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.join_time", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--prefill", type=int, default=1000, help="observations in the study")
    r.add_argument("--joiners", type=int, default=6)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default=None, help="write the rows as JSON")
    w = sub.add_parser("worker")
    w.add_argument("--db", required=True)
    w.add_argument("--seed", type=int, required=True)
    w.add_argument("--result", required=True)
    w.add_argument("--launched", type=float, required=True)
    w.add_argument("--artifacts", required=True)
    args = parser.parse_args(argv)
    if args.command == "worker":
        _worker(args)
        return 0
    rows = run(args.prefill, args.joiners, args.seed)
    modelled = [r for r in rows[1:] if r["scratch_fits"] or r["warm_fits"] or r["adopted"]]
    if modelled:
        print(
            "median first_trial of joiners 2.. with a model decision:",
            round(statistics.median(r["first_trial"] for r in modelled), 3),
        )
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
