"""Storage cost of DyHPO's decisions as a sequential study grows to 10,000 epochs.

One process optimises a study over synthetic learning curves (``max_budget`` 50, the curves of
``benchmarks.sampler_overhead``) until it has reported ``--epochs`` epochs, on the SQLite
factory (:func:`optuna_dyhpo.storages.create_sqlite_storage`) and/or on PostgreSQL (a plain
:class:`~optuna.storages.RDBStorage`; a throwaway cluster is started when ``--postgres-url`` is
omitted). A *decision* is a call of ``DyHPOPruner.prune`` (after every epoch) or of
``DyHPOSampler.before_trial`` (a trial start). Reported at 1k, 5k and 10k observations (the
decisions made while the study held the last 10 % of epochs before that mark):

- p50 / p95 wall time per decision, split into the *model* part (time inside
  ``DyHPOSampler._decide``, which never touches storage) and the *storage* part (the rest:
  reading the study, claims, writing attributes and resumed curves);
- SQL statements per decision (mean), counted with a SQLAlchemy ``before_cursor_execute``
  listener on the storage's engine for statements issued inside the decision hooks;
- SQL statements per epoch for everything the process did (``trial.report``, Optuna's loop).

Plus, per run, the total time spent in every sampler and pruner hook (``before_trial``,
``sample_independent``, ``after_trial``, ``prune``), and that total as it stood at each mark
(a sequential run with a seed is deterministic, so the total at 1k observations of the 10k
run is that of a 1k run under the same conditions). With ``--out``, the results are written
after every 1,000 epochs too, so a run stopped early keeps its figures.

``--prefill N`` first adds finished trials holding ``N`` observations to the study (one
configuration per trial, curve lengths drawn so that a configuration averages about 3.3 epochs
as DyHPO's do on these curves; 2 % reach ``max_budget``), so the decisions at 5k or 10k
observations can be measured without running the 10k epochs before them: e.g.
``--prefill 9800 --epochs 10000`` measures the decisions from 9,800 to 10,000 observations
(``--epochs`` counts the prefilled observations).
The first read of a prefilled study fetches every trial once (as any process joining a study
does); that decision is in the window.

``--policy stub`` replaces the model with ``benchmarks._stub_policy`` (pause every 2 steps,
resume the deepest paused configuration at 2 of 3 trial starts): the same storage work per kind
of decision, without the model's cost, to measure the storage part alone on a busy machine.

The sampler is built as any user could: ``DyHPOSampler(50, seed=..., n_candidates=...)``;
``--n-candidates`` (default 64, the package default is 512) keeps the model part cheap so the
storage part is visible.

Usage (from the repository root)::

    python -m benchmarks.storage_scaling --epochs 1000 10000 --storages sqlite postgres \\
        --out benchmarks/out/storage_scaling.json
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from collections.abc import Iterator
import contextlib
import json
import math
import os
from pathlib import Path
import platform
import tempfile
import time
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy import event

from benchmarks._storage_probe import HOOKS
from benchmarks._storage_probe import MAX_BUDGET
from benchmarks._storage_probe import Probe
from benchmarks._storage_probe import prefill
from benchmarks._storage_probe import window
from benchmarks._stub_policy import stub_decide
from benchmarks.sampler_overhead import synthetic_value
from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import TrialResume

MARKS = (1000, 5000, 10000)


def _objective(probe: Probe) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        params = {f"x{i}": trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, 5)}
        value = 0.0
        for epoch in TrialResume(trial).steps():
            value = synthetic_value(params, epoch)
            probe.obs += 1
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    return objective


@contextlib.contextmanager
def _storage(kind: str, workdir: Path, postgres_url: str | None) -> Iterator[RDBStorage]:
    if kind == "sqlite":
        from optuna_dyhpo.storages import create_sqlite_storage

        storage = create_sqlite_storage(workdir / "study.db")
        try:
            yield storage
        finally:
            storage.engine.dispose()
        return
    with contextlib.ExitStack() as stack:
        url = postgres_url
        if url is None:
            from benchmarks._postgres import throwaway_postgres

            url = stack.enter_context(throwaway_postgres("dyhpo_storage_scaling"))
        rdb = RDBStorage(url)
        try:
            yield rdb
        finally:
            rdb.engine.dispose()


def run(
    kind: str,
    epochs: int,
    *,
    seed: int = 0,
    n_candidates: int = 64,
    postgres_url: str | None = None,
    progress: bool = True,
    policy: str = "dyhpo",
    out: Callable[[dict[str, Any]], None] | None = None,
    prefilled: int = 0,
) -> dict[str, Any]:
    """One sequential study of ``epochs`` epochs on ``kind`` (``sqlite`` or ``postgres``)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dyhpo-storage-scaling-") as tmp:
        with _storage(kind, Path(tmp), postgres_url) as storage:
            from optuna.artifacts import FileSystemArtifactStore

            sampler = DyHPOSampler(
                MAX_BUDGET,
                seed=seed,
                n_candidates=n_candidates,
                artifact_store=FileSystemArtifactStore(tmp),
            )
            if policy == "stub":
                sampler._decide = stub_decide(sampler)  # type: ignore[method-assign]
            pruner = DyHPOPruner()
            study = optuna.create_study(
                direction="maximize",
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                study_name=f"storage-scaling-{epochs}-{os.getpid()}",
            )
            probe = Probe()
            if prefilled:
                if progress:
                    print(f"  [{kind}] prefilling {prefilled} observations", flush=True)
                prefill(study, prefilled, seed)
                probe.obs = prefilled
            for name in HOOKS[:-1]:
                setattr(sampler, name, probe.wrap(name, getattr(sampler, name)))
            pruner.prune = probe.wrap("prune", pruner.prune)  # type: ignore[method-assign]
            sampler._decide = probe.wrap_model(sampler._decide)  # type: ignore[method-assign]
            engine = storage.engine
            event.listen(engine, "before_cursor_execute", probe.on_statement)
            step = 50 if prefilled else 1000  # results saved every `step` epochs
            next_report = [prefilled + step]
            at_mark: dict[str, float] = {}
            t0 = time.perf_counter()

            def result() -> dict[str, Any]:
                decisions = probe.decisions
                return {
                    "storage": kind,
                    "policy": policy,
                    "epochs": probe.obs,
                    "target_epochs": epochs,
                    "prefilled": prefilled,
                    "seed": seed,
                    "n_candidates": n_candidates,
                    "trials": len(study.get_trials(deepcopy=False)),
                    "wall_seconds": time.perf_counter() - t0,
                    "hook_seconds": dict(probe.hook_seconds),
                    "sampler_pruner_seconds": sum(probe.hook_seconds.values()),
                    "sampler_pruner_seconds_at": dict(at_mark),
                    "model_seconds": sum(d[3] for d in decisions),
                    "decisions": len(decisions),
                    "sql_per_epoch_all": probe.sql_all / max(probe.obs, 1),
                    "load_average": os.getloadavg()[0],
                    "windows": {str(m): window(decisions, m) for m in MARKS if m <= probe.obs},
                }

            def stop(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
                for m in MARKS:
                    if not prefilled and probe.obs >= m and str(m) not in at_mark:
                        at_mark[str(m)] = sum(probe.hook_seconds.values())
                if probe.obs >= next_report[0]:
                    if progress:
                        hooks = sum(probe.hook_seconds.values())
                        print(f"  [{kind}] {probe.obs} epochs, hooks {hooks:.1f} s", flush=True)
                    if out is not None:
                        out(result())
                    next_report[0] += step
                if probe.obs >= epochs:
                    study.stop()

            study.optimize(_objective(probe), callbacks=[stop])
            final = result()
            event.remove(engine, "before_cursor_execute", probe.on_statement)
    return final


def _label(r: dict[str, Any]) -> str:
    return f"{r['storage']} ({r.get('policy', 'dyhpo')})"


def table(results: list[dict[str, Any]]) -> str:
    """Markdown tables of the per-decision figures and the run totals."""
    lines = [
        "| storage (decisions) | observations | p50 / p95 ms per decision "
        "| storage part p50 / p95 ms | model part p50 / p95 ms "
        "| SQL statements per decision (prune / trial start) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    # One row per (storage, decisions, mark): the run that reached furthest wins.
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in sorted(results, key=lambda r: r["epochs"]):
        for mark, w in r["windows"].items():
            if w is not None:
                rows[(_label(r), int(mark))] = w
    for (label, mark), w in sorted(rows.items()):
        lines.append(
            f"| {label} | {mark:,} | {w['p50_ms']:.1f} / {w['p95_ms']:.1f} "
            f"| {w['storage_p50_ms']:.1f} / {w['storage_p95_ms']:.1f} "
            f"| {w['model_p50_ms']:.1f} / {w['model_p95_ms']:.1f} "
            f"| {w['sql_per_decision']:.1f} ({w['sql_per_prune']:.1f} / "
            f"{w['sql_per_start']:.1f}) |"
        )
    lines += [
        "",
        "| storage (decisions) | observations | CPU ms per decision p50 / p95 "
        "| storage part CPU p50 / p95 | model part CPU p50 / p95 |",
        "|---|---:|---:|---:|---:|",
    ]
    for (label, mark), w in sorted(rows.items()):
        if "cpu_p50_ms" in w:
            lines.append(
                f"| {label} | {mark:,} | {w['cpu_p50_ms']:.1f} / {w['cpu_p95_ms']:.1f} "
                f"| {w['storage_cpu_p50_ms']:.1f} / {w['storage_cpu_p95_ms']:.1f} "
                f"| {w['model_cpu_p50_ms']:.1f} / {w['model_cpu_p95_ms']:.1f} |"
            )
    lines += [
        "",
        "| storage (decisions) | run: epochs reached / planned | trials "
        "| sampler+pruner s at 1k / 5k / 10k observations | of which model s | wall s "
        "| load average at the end |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        at = r.get("sampler_pruner_seconds_at", {})
        marks = " / ".join(f"{at[str(m)]:.1f}" if str(m) in at else "-" for m in MARKS)
        lines.append(
            f"| {_label(r)} | {r['epochs']:,} / {r.get('target_epochs', r['epochs']):,} "
            f"| {r['trials']:,} | {marks} | {r['model_seconds']:.1f} "
            f"| {r['wall_seconds']:.1f} | {r.get('load_average', math.nan):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--storages", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--postgres-url", default=None, help="default: a throwaway cluster")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-candidates", type=int, default=64)
    parser.add_argument("--policy", choices=["dyhpo", "stub"], default="dyhpo")
    parser.add_argument(
        "--prefill", type=int, default=0, help="observations added before the run (see above)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        default=None,
        help="print the tables of earlier --out files instead of running",
    )
    args = parser.parse_args()
    if args.report:
        summarise([r for path in args.report for r in json.loads(path.read_text())])
        return
    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()
    results: list[dict[str, Any]] = []
    for kind in args.storages:
        for epochs in args.epochs:
            print(f"{kind}: {epochs} epochs", flush=True)
            done = list(results)

            def save(partial: dict[str, Any], done: list[dict[str, Any]] = done) -> None:
                if args.out:
                    args.out.write_text(json.dumps([*done, partial], indent=2))

            r = run(
                kind,
                epochs,
                seed=args.seed,
                n_candidates=args.n_candidates,
                postgres_url=args.postgres_url,
                policy=args.policy,
                out=save,
                prefilled=args.prefill,
            )
            results.append(r)
            save(r, results[:-1])
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"optuna {optuna.__version__}; load average at start {load[0]:.2f}, "
        f"at end {os.getloadavg()[0]:.2f}"
    )
    summarise(results)


def summarise(results: list[dict[str, Any]]) -> None:
    """Print the tables and the ratios the targets are stated in."""
    print(table(results))
    for r in results:
        w = r["windows"]
        last = max((int(m) for m in w if w[m]), default=0)
        if w.get("1000") and last > 1000:
            ratio = w[str(last)]["sql_per_decision"] / w["1000"]["sql_per_decision"]
            print(f"{_label(r)}: SQL statements per decision at {last:,} / at 1,000 = {ratio:.2f}")
        at = r.get("sampler_pruner_seconds_at", {})
        if "1000" in at and "10000" in at:
            print(
                f"{_label(r)}: sampler+pruner time at 10k / at 1k observations = "
                f"{at['10000'] / at['1000']:.1f}x"
            )


if __name__ == "__main__":
    main()
