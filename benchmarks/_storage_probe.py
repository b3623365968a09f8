"""Measuring a study's decisions: the probe, the per-mark windows and the prefilled studies.

Used by ``benchmarks.storage_scaling`` (see its docstring for what is measured).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import math
import random
import statistics
import threading
import time
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from benchmarks.sampler_overhead import synthetic_value
from optuna_dyhpo._state import PAUSED_KEY
from optuna_dyhpo._state import SEGMENT_KEY
from optuna_dyhpo._state import USER_CONFIG
from optuna_dyhpo._state import USER_START
from optuna_dyhpo._state import USER_STATUS

MAX_BUDGET = 50
HOOKS = ("before_trial", "sample_independent", "after_trial", "prune")


class Probe:
    """Times sampler / pruner hooks, the model part, and counts SQL statements.

    Attributes:
        obs: Epochs reported so far (set by the objective).
        decisions: ``(kind, obs, seconds, model_seconds, statements)`` per decision.
        hook_seconds: Total seconds per hook.
        sql_all: Every statement the engine executed.
    """

    def __init__(self) -> None:
        self.obs = 0
        # (kind, obs, seconds, model seconds, statements, CPU seconds, model CPU seconds)
        self.decisions: list[tuple[str, int, float, float, int, float, float]] = []
        self.hook_seconds: dict[str, float] = dict.fromkeys(HOOKS, 0.0)
        self.sql_all = 0
        self._sql_inside = 0
        self._model = 0.0
        self._model_cpu = 0.0
        self._depth = 0
        self._tid = threading.get_ident()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        decision = name in ("before_trial", "prune")

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            sql0, model0, mcpu0 = self._sql_inside, self._model, self._model_cpu
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dt, cpu = time.perf_counter() - t0, time.thread_time() - c0
                self._depth -= 1
                self.hook_seconds[name] += dt
                if decision:
                    self.decisions.append(
                        (
                            name,
                            self.obs,
                            dt,
                            self._model - model0,
                            self._sql_inside - sql0,
                            cpu,
                            self._model_cpu - mcpu0,
                        )
                    )

        return timed

    def wrap_model(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self._model += time.perf_counter() - t0
                self._model_cpu += time.thread_time() - c0

        return timed

    def on_statement(self, *args: Any, **kwargs: Any) -> None:
        # Statements of Optuna's heartbeat thread (none here: heartbeats are off) would not
        # count as the decision's.
        self.sql_all += 1
        if self._depth and threading.get_ident() == self._tid:
            self._sql_inside += 1


_LENGTHS = ((1, 0.60), (2, 0.15), (3, 0.10), (6, 0.08), (12, 0.05), (MAX_BUDGET, 0.02))


def prefill(study: optuna.Study, n_obs: int, seed: int) -> int:
    """Add finished DyHPO trials holding ``n_obs`` observations; return their number."""
    rng = random.Random(seed)
    dists: dict[str, BaseDistribution] = {
        f"x{i}": FloatDistribution(0.0, 1.0) for i in range(1, 5)
    }
    lengths, weights = zip(*_LENGTHS, strict=True)
    trials: list[optuna.trial.FrozenTrial] = []
    total = 0
    while total < n_obs:
        number = len(trials)
        length = min(rng.choices(lengths, weights)[0], n_obs - total)
        params = {k: rng.random() for k in dists}
        values = {e: synthetic_value(params, e) for e in range(1, length + 1)}
        done = length == MAX_BUDGET
        system: dict[str, Any] = {SEGMENT_KEY: {"config": number, "start": 1, "parent": None}}
        if not done:
            system[PAUSED_KEY] = length
        trials.append(
            create_trial(
                state=TrialState.COMPLETE if done else TrialState.PRUNED,
                value=values[length] if done else None,
                params=params,
                distributions=dists,
                intermediate_values=values,
                system_attrs=system,
                user_attrs={
                    USER_CONFIG: number,
                    USER_START: 1,
                    USER_STATUS: "completed" if done else "paused",
                },
            )
        )
        total += length
    study.add_trials(trials)
    return len(trials)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def window(
    decisions: list[tuple[str, int, float, float, int, float, float]], mark: int
) -> dict[str, Any] | None:
    """Figures of the decisions made while the study held (0.9 * mark, mark] epochs."""
    sel = [d for d in decisions if 0.9 * mark < d[1] <= mark]
    if not sel:
        return None
    total = [d[2] for d in sel]
    model = [d[3] for d in sel]
    rest = [d[2] - d[3] for d in sel]
    prunes = [d[4] for d in sel if d[0] == "prune"]
    starts = [d[4] for d in sel if d[0] == "before_trial"]
    return {
        "n": len(sel),
        "p50_ms": 1000 * _percentile(total, 0.5),
        "p95_ms": 1000 * _percentile(total, 0.95),
        "storage_p50_ms": 1000 * _percentile(rest, 0.5),
        "storage_p95_ms": 1000 * _percentile(rest, 0.95),
        "model_p50_ms": 1000 * _percentile(model, 0.5),
        "model_p95_ms": 1000 * _percentile(model, 0.95),
        "sql_per_decision": statistics.fmean(d[4] for d in sel),
        "sql_per_prune": statistics.fmean(prunes) if prunes else math.nan,
        "sql_per_start": statistics.fmean(starts) if starts else math.nan,
        "sql_max": max(d[4] for d in sel),
        # CPU time of the deciding thread: what the decision costs this process, without the
        # time it waited for a CPU on a busy machine (nor for the database server).
        "cpu_p50_ms": 1000 * _percentile([d[5] for d in sel], 0.5),
        "cpu_p95_ms": 1000 * _percentile([d[5] for d in sel], 0.95),
        "storage_cpu_p50_ms": 1000 * _percentile([d[5] - d[6] for d in sel], 0.5),
        "storage_cpu_p95_ms": 1000 * _percentile([d[5] - d[6] for d in sel], 0.95),
        "model_cpu_p50_ms": 1000 * _percentile([d[6] for d in sel], 0.5),
        "model_cpu_p95_ms": 1000 * _percentile([d[6] for d in sel], 0.95),
    }
