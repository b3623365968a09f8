"""Benchmark report: tables and plots from the runner's results files.

Example (from the repository root)::

    python -m benchmarks.report --results benchmarks/out/results --output benchmarks/RESULTS.md

Writes a Markdown report (mean and median normalised regret at 10/25/50/100 % of the budget,
mean rank over time, optimiser overhead per method, total and per decision) and PNG plots
(regret vs epochs with a band over seeds, log y; rank vs epochs) next to it.

Runs are grouped by (problem family, budget): e.g. all LCBench tasks with the val_accuracy metric
at 1000 epochs form one group. Within a group, an *instance* is a (problem, seed) pair.
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
        "surrogate exceeds YAHPO's sampled max); digits `1 - best validation accuracy`. "
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
    for g in groups:
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
    plots = {g.key: write_plots(g, plot_dir) for g in groups}
    text = render(groups, plots, output, command, skipped)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n")
    print(f"[benchmarks] wrote {output} and {sum(len(v) for v in plots.values())} plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
