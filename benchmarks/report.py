"""Benchmark report: tables and plots from the runner's results files.

Example (from the repository root)::

    python -m benchmarks.report --results benchmarks/out/results --output benchmarks/RESULTS.md

Writes a Markdown report (mean and median normalised regret at 10/25/50/100 % of the budget,
mean rank over time, optimiser overhead per method, total and per decision) and PNG plots
(regret vs epochs with a band over seeds, log y; rank vs epochs) next to it.

Runs are grouped by (problem family, budget): e.g. all LCBench tasks with the val_accuracy metric
at 1000 epochs form one group. Within a group, an *instance* is a (problem, seed) pair.

Problems of the robustness suite (``benchmarks.families``) get their own section: per family a
table (mean final regret +- standard error, mean rank) and a plot of regret vs epochs, then a
summary over all families with the acceptance check (DyHPO's mean final regret no worse than the
best baseline's mean plus one standard error on every family, and the best mean rank).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
import datetime
import json
import math
import os
from pathlib import Path
import re
import shlex
import sys
from typing import Any

import numpy as np

from benchmarks._env import REPO_ROOT
from benchmarks._env import describe_machine
from benchmarks._env import machine_info
from benchmarks.methods import METHODS
from benchmarks.run import SCHEMA_VERSION

FRACTIONS = (0.10, 0.25, 0.50, 1.00)
PLOT_FLOOR = 1e-5  # Log-scale plots show regret below this (or negative) at the floor.
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "out" / "results"
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "RESULTS.md"


@dataclass
class Run:
    """One finished run, as loaded from its results file."""

    data: dict[str, Any]
    path: Path

    @property
    def method(self) -> str:
        return str(self.data["method"])

    @property
    def problem(self) -> str:
        return str(self.data["problem"]["name"])

    @property
    def family(self) -> str:
        return str(self.data["problem"]["family"])

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def budget(self) -> int:
        return int(self.data["budget_epochs"])

    @property
    def regret(self) -> np.ndarray:
        return np.asarray(self.data["trajectory"]["regret"], dtype=float)

    @property
    def suite(self) -> str | None:
        return self.data["problem"].get("suite")


def load_runs(results_dir: Path) -> tuple[list[Run], list[str]]:
    """Load every finished results file under ``results_dir``.

    Returns:
        The runs and a list of problems found (files skipped and why).
    """
    runs: list[Run] = []
    problems: list[str] = []
    for path in sorted(results_dir.glob("*.json")):
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if data.get("schema") != SCHEMA_VERSION or data.get("status") != "finished":
            problems.append(f"{path.name}: not a finished schema-{SCHEMA_VERSION} run")
            continue
        run = Run(data, path)
        if len(run.regret) != run.budget:
            problems.append(f"{path.name}: trajectory length {len(run.regret)} != budget")
            continue
        runs.append(run)
    return runs, problems


def _method_order(methods: set[str]) -> list[str]:
    known = [m for m in METHODS if m in methods]
    return known + sorted(methods - set(known))


def _ranks(matrix: np.ndarray) -> np.ndarray:
    """Average ranks (1 = lowest regret) along axis 0 of ``matrix`` (methods x epochs)."""
    # Element [i, k, j] tells whether method k beats (or ties) method i at epoch j.
    less = (matrix[None, :, :] < matrix[:, None, :]).sum(axis=1)
    equal = (matrix[None, :, :] == matrix[:, None, :]).sum(axis=1)
    return less + (equal + 1) / 2.0


@dataclass
class Group:
    """All runs of one (family, budget)."""

    family: str
    budget: int
    runs: list[Run]

    @property
    def key(self) -> str:
        return f"{self.family}-b{self.budget}"

    @property
    def methods(self) -> list[str]:
        return _method_order({r.method for r in self.runs})

    @property
    def problems(self) -> list[str]:
        return sorted({r.problem for r in self.runs})

    def by_method(self, method: str) -> list[Run]:
        return [r for r in self.runs if r.method == method]

    def rank_curves(self) -> tuple[dict[str, np.ndarray], int]:
        """Mean rank per method over epochs, over the instances every method finished."""
        methods = self.methods
        table: dict[tuple[str, int], dict[str, np.ndarray]] = defaultdict(dict)
        for r in self.runs:
            table[(r.problem, r.seed)][r.method] = r.regret
        complete = [v for v in table.values() if all(m in v for m in methods)]
        if len(methods) < 2 or not complete:
            return {}, 0
        total = np.zeros((len(methods), self.budget))
        for inst in complete:
            total += _ranks(np.stack([inst[m] for m in methods]))
        mean = total / len(complete)
        return {m: mean[i] for i, m in enumerate(methods)}, len(complete)


def group_runs(runs: list[Run]) -> list[Group]:
    """Group runs by (problem family, budget)."""
    groups: dict[tuple[str, int], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.family, r.budget)].append(r)
    return [Group(f, b, rs) for (f, b), rs in sorted(groups.items())]


def _at(budget: int, fraction: float) -> int:
    """Index of the trajectory entry after ``fraction`` of the budget (at least epoch 1)."""
    return max(1, math.ceil(fraction * budget)) - 1


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}"


def _regret_table(g: Group) -> list[str]:
    ranks, n_inst = g.rank_curves()
    head = ["method", "runs"]
    head += [f"mean @{int(f * 100)}%" for f in FRACTIONS]
    head += [f"median @{int(f * 100)}%" for f in FRACTIONS]
    head += [f"rank @{int(f * 100)}%" for f in FRACTIONS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in g.methods:
        runs = g.by_method(m)
        mat = np.stack([r.regret for r in runs])
        cells = [m, str(len(runs))]
        cells += [_fmt(float(np.mean(mat[:, _at(g.budget, f)]))) for f in FRACTIONS]
        cells += [_fmt(float(np.median(mat[:, _at(g.budget, f)]))) for f in FRACTIONS]
        cells += [
            _fmt(float(ranks[m][_at(g.budget, f)]), 2) if m in ranks else "-" for f in FRACTIONS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Epoch checkpoints: {', '.join(str(_at(g.budget, f) + 1) for f in FRACTIONS)} of "
        f"{g.budget}. Ranks over {n_inst} (problem, seed) instances that every method finished "
        "(1 = best; ties share the average rank)."
    )
    return lines


def _overhead_table(g: Group) -> list[str]:
    head = [
        "method",
        "budget accounting",
        "wall s/run",
        "objective s/run",
        "checkpoint s/run",
        "overhead s/run",
        "overhead share",
        "storage+other s/run",
        "decisions/run",
        "overhead ms/decision",
        "trials/run",
        "configs/run",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in g.methods:
        runs = g.by_method(m)

        def mean(key: str, runs: list[Run] = runs) -> float:
            return float(np.mean([float(r.data.get(key) or 0.0) for r in runs]))

        decisions = mean("n_decisions")
        overhead = mean("overhead_s")
        wall = mean("wall_time_s")
        lines.append(
            "| "
            + " | ".join(
                [
                    m,
                    str(runs[0].data.get("budget_accounting", "?")),
                    _fmt(wall, 2),
                    _fmt(mean("objective_time_s"), 2),
                    _fmt(mean("checkpoint_time_s"), 2),
                    _fmt(overhead, 3),
                    f"{100 * overhead / wall:.1f}%" if wall > 0 else "-",
                    _fmt(
                        wall - overhead - mean("objective_time_s") - mean("checkpoint_time_s"),
                        2,
                    ),
                    _fmt(decisions, 1),
                    _fmt(1000 * overhead / decisions, 3) if decisions else "-",
                    _fmt(mean("n_trials"), 1),
                    _fmt(mean("n_configs"), 1),
                ]
            )
            + " |"
        )
    return lines


def _per_problem_table(g: Group) -> list[str]:
    methods = g.methods
    head = ["problem", *methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in g.problems:
        cells = [p]
        for m in methods:
            vals = [r.regret[-1] for r in g.runs if r.problem == p and r.method == m]
            cells.append(f"{_fmt(float(np.mean(vals)))} ({len(vals)})" if vals else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _band(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = mat.mean(axis=0)
    if mat.shape[0] > 1:
        se = mat.std(axis=0, ddof=1) / math.sqrt(mat.shape[0])
    else:
        se = np.zeros_like(mean)
    return mean, mean - se, mean + se


def _style(method: str) -> dict[str, Any]:
    """A fixed colour and line style per method, so identical curves stay visible."""
    order = list(METHODS)
    i = order.index(method) if method in order else len(order) + hash(method) % 5
    styles = ("-", "--", "-.", ":", (0, (5, 1)))
    return {"color": f"C{i % 10}", "linestyle": styles[i % len(styles)]}


def _plot_regret(ax: Any, g: Group, runs_of: dict[str, list[Run]], title: str) -> None:
    epochs = np.arange(1, g.budget + 1)
    for m, runs in runs_of.items():
        if not runs:
            continue
        mean, lo, hi = _band(np.stack([r.regret for r in runs]))
        (line,) = ax.plot(
            epochs, np.maximum(mean, PLOT_FLOOR), label=f"{m} (n={len(runs)})", **_style(m)
        )
        ax.fill_between(
            epochs,
            np.maximum(lo, PLOT_FLOOR),
            np.maximum(hi, PLOT_FLOOR),
            color=line.get_color(),
            alpha=0.2,
            linewidth=0,
        )
    ax.set_yscale("log")
    ax.set_xlabel("epochs spent")
    ax.set_ylabel("normalised regret")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)


def write_plots(g: Group, plot_dir: Path) -> list[Path]:
    """Write the group's PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    methods = g.methods

    fig, ax = plt.subplots(figsize=(7, 4.5))
    _plot_regret(
        ax,
        g,
        {m: g.by_method(m) for m in methods},
        f"{g.family}, budget {g.budget} epochs: mean over problems and seeds (band: ±1 s.e.)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = plot_dir / f"regret_{g.key}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)

    problems = g.problems
    if len(problems) > 1:
        ncol = min(4, len(problems))
        nrow = math.ceil(len(problems) / ncol)
        fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), squeeze=False)
        for ax, p in zip(axes.flat, problems, strict=False):
            _plot_regret(
                ax,
                g,
                {m: [r for r in g.by_method(m) if r.problem == p] for m in methods},
                p,
            )
        for ax in list(axes.flat)[len(problems) :]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, [lab.split(" (")[0] for lab in labels], loc="lower right")
        fig.suptitle(f"{g.family}: regret per problem (mean over seeds, band ±1 s.e.)")
        fig.tight_layout()
        path = plot_dir / f"regret_per_problem_{g.key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)

    ranks, n_inst = g.rank_curves()
    if ranks:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        epochs = np.arange(1, g.budget + 1)
        for m in methods:
            ax.plot(epochs, ranks[m], label=m, **_style(m))
        ax.set_xlabel("epochs spent")
        ax.set_ylabel("mean rank (1 = best)")
        ax.set_ylim(0.8, len(methods) + 0.2)
        ax.set_title(f"{g.family}, budget {g.budget}: mean rank over {n_inst} instances")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = plot_dir / f"rank_{g.key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Robustness suite
# --------------------------------------------------------------------------------------------

SUITE = "robustness"
SUITE_METHOD = "dyhpo"
SUITE_BASELINES = ("tpe-hyperband", "random-hyperband", "tpe-sh")


def is_suite_group(g: Group) -> bool:
    """Whether every run of ``g`` belongs to the robustness suite."""
    return all(r.suite == SUITE for r in g.runs)


def _mean_se(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    se = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan
    return float(arr.mean()), se


def _suite_methods(g: Group) -> list[str]:
    """The compared methods present in ``g`` (DyHPO first, then the baselines, then others)."""
    present = set(g.methods)
    head = [m for m in (SUITE_METHOD, *SUITE_BASELINES) if m in present]
    return head + [m for m in g.methods if m not in head]


def final_ranks(g: Group, methods: list[str]) -> tuple[dict[str, float], int]:
    """Mean rank of the final regret over the (problem, seed) instances all ``methods`` finished.

    Returns:
        Method -> mean rank (1 = best, ties share the average rank), and the instance count.
    """
    table: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for r in g.runs:
        if r.method in methods:
            table[(r.problem, r.seed)][r.method] = float(r.regret[-1])
    complete = [v for v in table.values() if all(m in v for m in methods)]
    if not complete or not methods:
        return {}, 0
    total = np.zeros(len(methods))
    for inst in complete:
        total += _ranks(np.array([[inst[m]] for m in methods]))[:, 0]
    return {m: float(total[i] / len(complete)) for i, m in enumerate(methods)}, len(complete)


@dataclass
class SuiteRow:
    """The summary of one suite family at one budget."""

    group: Group
    stats: dict[str, tuple[float, float, int]]  # method -> (mean, s.e., runs) of final regret
    ranks: dict[str, float]
    n_instances: int
    threshold: float | None  # min over baselines of (mean + 1 s.e.)
    holds: bool | None  # None: DyHPO or the baselines missing

    @property
    def label(self) -> str:
        return f"{self.group.family} (b={self.group.budget})"


def suite_rows(groups: list[Group]) -> list[SuiteRow]:
    """Per (family, budget) of the suite: final-regret statistics, ranks and the check."""
    rows: list[SuiteRow] = []
    for g in groups:
        compared = [m for m in (SUITE_METHOD, *SUITE_BASELINES) if m in g.methods]
        stats = {}
        for m in _suite_methods(g):
            finals = [float(r.regret[-1]) for r in g.by_method(m)]
            mean, se = _mean_se(finals)
            stats[m] = (mean, se, len(finals))
        ranks, n_inst = final_ranks(g, compared)
        baselines = [m for m in SUITE_BASELINES if m in stats]
        threshold = None
        if baselines:
            threshold = min(
                stats[m][0] + (0.0 if math.isnan(stats[m][1]) else stats[m][1]) for m in baselines
            )
        holds = None
        if (
            SUITE_METHOD in stats
            and threshold is not None
            and len(baselines) == len(SUITE_BASELINES)
        ):
            holds = stats[SUITE_METHOD][0] <= threshold
        rows.append(SuiteRow(g, stats, ranks, n_inst, threshold, holds))
    return rows


def write_suite_plot(g: Group, plot_dir: Path) -> Path:
    """One PNG per suite family: regret vs epochs, mean over seeds with a ±1 s.e. band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    seeds = len({r.seed for r in g.runs})
    _plot_regret(
        ax,
        g,
        {m: g.by_method(m) for m in _suite_methods(g)},
        f"{g.family}, budget {g.budget} epochs: mean over {seeds} seeds (band ±1 s.e.)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = plot_dir / f"suite_{g.key}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _pm(mean: float, se: float) -> str:
    return f"{_fmt(mean)} ± {_fmt(se)}" if math.isfinite(se) else _fmt(mean)


def _verdict(holds: bool | None) -> str:
    return "-" if holds is None else ("holds" if holds else "fails")


def _acceptance(rows: list[SuiteRow], method: str) -> str:
    """The suite's acceptance check for ``method`` (DyHPO or one of its variants), ranked
    against the baselines alone."""
    complete = all(method in r.stats and r.threshold is not None for r in rows) and rows
    if not complete:
        return (
            f"**Acceptance of `{method}`: not evaluated** — no complete `{method}` runs on the "
            "suite yet (the baselines' numbers above stand on their own)."
        )
    compared = [method, *SUITE_BASELINES]
    ranks = [final_ranks(r.group, compared)[0] for r in rows]
    mean_rank = {m: float(np.mean([rk[m] for rk in ranks])) for m in compared}
    failed = [
        r.label for r in rows if r.threshold is not None and r.stats[method][0] > r.threshold
    ]
    rank_ok = all(v > mean_rank[method] for m, v in mean_rank.items() if m != method)
    return (
        f"**Acceptance of `{method}`: {'holds' if not failed and rank_ok else 'fails'}.** Per "
        f"family: {'holds on every family' if not failed else 'fails on ' + ', '.join(failed)}. "
        f"Mean rank against the baselines: `{method}` {mean_rank[method]:.2f}, "
        + ", ".join(f"`{m}` {v:.2f}" for m, v in mean_rank.items() if m != method)
        + f" ({'best' if rank_ok else 'not the best'})."
    )


def render_suite(groups: list[Group], plots: dict[str, list[Path]], out_dir: Path) -> list[str]:
    """The Markdown of the robustness-suite section."""
    rows = suite_rows(groups)
    methods = _method_order({m for r in rows for m in r.stats})
    methods = [m for m in (SUITE_METHOD, *SUITE_BASELINES) if m in methods] + [
        m for m in methods if m not in (SUITE_METHOD, *SUITE_BASELINES)
    ]
    commands = _unique([str(r.data.get("command", "?")) for g in groups for r in g.runs])
    lines = [
        "## Robustness suite",
        "",
        "Learning-curve families built to mislead multi-fidelity optimisers "
        "(`benchmarks/families.py`; see `benchmarks/README.md`). Each family is run at its own "
        "budget of epochs (the runner's default when `--budget` is omitted).",
        "",
        "Commands of these runs:",
        "",
        "```",
        *commands,
        "```",
        "",
        "| family | what makes it hard | hyperparameters | max epochs | budget | direction | "
        "regret |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        prob = row.group.runs[0].data["problem"]
        lines.append(
            f"| {row.group.family} | {prob.get('hardness', '')} | {prob.get('n_params', '?')} | "
            f"{prob.get('max_epochs')} | {row.group.budget} | "
            f"{prob.get('direction', 'maximize')} | {prob.get('regret_definition', '')} |"
        )
    lines += [
        "",
        "### Summary: mean final normalised regret ± standard error over seeds",
        "",
        f"The check per family: is `{SUITE_METHOD}`'s mean final regret <= min over the "
        f"baselines ({', '.join(SUITE_BASELINES)}) of (mean + 1 s.e.)? Mean rank: per "
        "(problem, seed) instance the compared methods are ranked by final regret (1 = best, "
        "ties averaged), averaged over the instances of a family, then over families.",
        "",
    ]
    head = ["family", *methods, "best baseline + 1 s.e.", f"{SUITE_METHOD} within?"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.label]
        for m in methods:
            if m in row.stats:
                mean, se, n = row.stats[m]
                cells.append(f"{_pm(mean, se)} ({n})")
            else:
                cells.append("-")
        cells.append(_fmt(row.threshold) if row.threshold is not None else "-")
        cells.append(_verdict(row.holds))
        lines.append("| " + " | ".join(cells) + " |")
    ranked = [m for m in (SUITE_METHOD, *SUITE_BASELINES) if all(m in r.ranks for r in rows)]
    mean_rank = {m: float(np.mean([r.ranks[m] for r in rows])) for m in ranked} if rows else {}
    cells = ["**mean rank over families**"]
    for m in methods:
        cells.append(_fmt(mean_rank[m], 2) if m in mean_rank else "-")
    cells += ["", ""]
    lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(_acceptance(rows, SUITE_METHOD))
    for variant in [m for m in methods if m.startswith(f"{SUITE_METHOD}-")]:
        lines += ["", _acceptance(rows, variant)]
    lines.append("")
    for row in rows:
        g = row.group
        lines += [
            f"### {g.family}, budget {g.budget} epochs",
            "",
            f"Seeds: {', '.join(map(str, sorted({r.seed for r in g.runs})))}; ranks over "
            f"{row.n_instances} instances.",
            "",
        ]
        head = [
            "method",
            "runs",
            "mean final regret ± s.e.",
            "median",
            "mean rank",
            "trials/run",
            "diverged trials/run",
            "wall s/run",
        ]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m in _suite_methods(g):
            runs = g.by_method(m)
            mean, se, n = row.stats[m]

            def avg(key: str, runs: list[Run] = runs) -> float:
                return float(np.mean([float(r.data.get(key) or 0.0) for r in runs]))

            lines.append(
                "| "
                + " | ".join(
                    [
                        m,
                        str(n),
                        _pm(mean, se),
                        _fmt(float(np.median([r.regret[-1] for r in runs]))),
                        _fmt(row.ranks[m], 2) if m in row.ranks else "-",
                        _fmt(avg("n_trials"), 1),
                        _fmt(avg("n_diverged_trials"), 1),
                        _fmt(avg("wall_time_s"), 2),
                    ]
                )
                + " |"
            )
        lines.append("")
        for p in plots.get(g.key, []):
            lines += [f"![{p.stem}]({os.path.relpath(p, out_dir)})", ""]
    return lines


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def render(
    groups: list[Group],
    plots: dict[str, list[Path]],
    output: Path,
    command: str,
    skipped: list[str],
) -> str:
    """Render the Markdown report."""
    runs = [r for g in groups for r in g.runs]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run_commands = _unique([str(r.data.get("command", "?")) for r in runs])
    machines = _unique([describe_machine(r.data.get("machine", {})) for r in runs])
    versions = _unique(
        [
            ", ".join(f"{k} {v}" for k, v in r.data.get("machine", {}).get("versions", {}).items())
            for r in runs
        ]
    )
    lines = [
        "# Benchmark results",
        "",
        f"Generated {now} from {len(runs)} finished runs.",
        "",
        "## How these numbers were produced",
        "",
        "Runner command(s) (from the repository root):",
        "",
        "```",
        *run_commands,
        "```",
        "",
        "Report command:",
        "",
        "```",
        command,
        "```",
        "",
        "Machine(s) the runs were measured on:",
        "",
        *[f"- {m}" for m in machines],
        "",
        "Software:",
        "",
        *[f"- {v}" for v in versions],
        f"- report machine: {describe_machine(machine_info())}",
        "",
        "## Definitions",
        "",
        "- **Methods**: "
        + "; ".join(f"`{m.name}` = {m.description}" for m in METHODS.values())
        + ". Every method records into an Optuna study (one JournalStorage file per run; "
        "`python -m benchmarks.merge` combines finished runs into one journal file for "
        "optuna-dashboard).",
        "- **Budget accounting** (epochs the objective actually trains): `dyhpo` is "
        "continuation-aware (a paused configuration resumes from its checkpoint and costs only "
        "its new epochs); all other methods are restart-aware (every trial, or SMAC evaluation "
        "at budget b, trains from scratch and costs all its epochs). A run stops the moment its "
        "budget is spent, mid-trial if need be.",
        "- **Incumbent**: the best validation metric seen so far at any epoch of any "
        "configuration. **Normalised regret**: LCBench `(max - best) / (max - min)` with the "
        "task's min/max from YAHPO's global statistics (can be slightly negative when the "
        "surrogate exceeds YAHPO's sampled max); digits `1 - best validation accuracy`; the "
        "robustness suite defines it per family (see its section). "
        f"Log-scale plots draw values below {PLOT_FLOOR:g} at {PLOT_FLOOR:g}.",
        "- **Mean rank**: per (problem, seed) instance and epoch, methods ranked by regret "
        "(1 = best, ties averaged), then averaged over instances every method finished.",
        "- **Optimiser overhead**: wall-clock seconds spent inside the sampler's methods "
        "(`infer_relative_search_space`, `sample_relative`, `sample_independent`, "
        "`before_trial`, `after_trial`) and the pruner's `prune`, measured by thin timing "
        "wrappers installed on the sampler/pruner instances (outermost calls only, so nested "
        "calls are not double counted); for SMAC the time in `ask`, `tell` and the facade's "
        "set-up. It excludes the objective's compute, checkpoint save/load (reported "
        "separately) and the objective's own storage writes (`trial.report`). A **decision** is "
        "one trial started plus one `should_prune` call per reported epoch (Optuna methods) or "
        "one `ask` (SMAC); `random` makes no pruning decisions. *storage+other* is the wall "
        "time left: Optuna's own bookkeeping and the objective's storage writes.",
        "- Caveats: Optuna's TPE + HyperbandPruner models all trials, not per bracket (TPE reads "
        "through `Study._get_trials`, which the pruner's bracket filter does not touch). SMAC's "
        "Hyperband budgets are real numbers; an evaluation trains round(budget) epochs.",
        "",
    ]
    out_dir = output.parent
    suite_groups = [g for g in groups if is_suite_group(g)]
    for g in groups:
        if is_suite_group(g):
            continue
        lines += [
            f"## {g.family}, budget {g.budget} epochs",
            "",
            f"Problems: {len(g.problems)}; methods: {', '.join(g.methods)}; "
            f"seeds: {', '.join(map(str, sorted({r.seed for r in g.runs})))}.",
            "",
            "### Normalised regret and mean rank",
            "",
            *_regret_table(g),
            "",
            "### Optimiser overhead (means per run)",
            "",
            *_overhead_table(g),
            "",
        ]
        if len(g.problems) > 1:
            lines += [
                "### Final normalised regret per problem (mean over seeds, number of runs)",
                "",
                *_per_problem_table(g),
                "",
            ]
        for p in plots.get(g.key, []):
            rel = os.path.relpath(p, out_dir)
            lines += [f"![{p.stem}]({rel})", ""]
    if suite_groups:
        lines += render_suite(suite_groups, plots, out_dir)
    if skipped:
        lines += ["## Files skipped", "", *[f"- {s}" for s in skipped], ""]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The report's command-line interface."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="results folder")
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="Markdown file")
    p.add_argument(
        "--plots", type=Path, default=None, help="plot folder (default: <output dir>/plots)"
    )
    return p


_KEPT = re.compile(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", re.DOTALL)


def kept_sections(text: str) -> list[str]:
    """The blocks ``<!-- name:begin --> ... <!-- name:end -->`` of an earlier report: results
    of other scripts (e.g. ``benchmarks/storage_scaling.py``) that a new report keeps."""
    return [m.group(0) for m in _KEPT.finditer(text)]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when there is nothing to report)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(args_list)
    command = shlex.join(["python", "-m", "benchmarks.report", *args_list])
    runs, skipped = load_runs(args.results)
    if not runs:
        print(f"[benchmarks] no finished runs in {args.results}", file=sys.stderr)
        return 1
    groups = group_runs(runs)
    output: Path = args.output
    plot_dir: Path = args.plots or output.parent / "plots"
    plots = {
        g.key: [write_suite_plot(g, plot_dir)] if is_suite_group(g) else write_plots(g, plot_dir)
        for g in groups
    }
    text = render(groups, plots, output, command, skipped)
    if output.exists():  # sections other scripts wrote into the file are kept
        text += "".join("\n\n" + block for block in kept_sections(output.read_text()))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    print(f"[benchmarks] wrote {output} and {sum(len(v) for v in plots.values())} plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
