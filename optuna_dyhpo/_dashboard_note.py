"""The study note of :class:`~optuna_dyhpo.DashboardUpdater`: the race in numbers, the best
configuration and the top configurations, in Markdown."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from datetime import timezone
import math

from optuna.trial import TrialState

from optuna_dyhpo._incumbent import BestConfiguration
from optuna_dyhpo._state import Configuration
from optuna_dyhpo._state import Segment

# Configuration statuses in the order the note lists them.
_STATUSES = ("running", "paused", "completed", "stopped", "diverged", "failed", "crashed")
_TOP = 10  # configurations in the note's table
_LISTED = 30  # paused trials named in the note


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def render_note(
    segments: list[Segment],
    configs: dict[int, Configuration],
    best: BestConfiguration | None,
    spent: int,
    n_epochs: int | None,
    maximize: bool,
    target_name: str = "Objective Value",
    now: datetime | None = None,
) -> str:
    """The study note: the race in numbers, the best configuration, the top configurations.

    Args:
        segments: The study's segments (trials).
        configs: Its configurations.
        best: Its best configuration, or ``None``.
        spent: Epochs spent.
        n_epochs: The epoch budget, or ``None``.
        maximize: Whether the study maximises.
        target_name: Name of the reported metric.
        now: Time stamp of the note (default: now, UTC).

    Returns:
        Markdown.
    """
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
    by_status = Counter(c.status for c in configs.values())
    trial_status = Counter(s.status for s in segments)
    n_pruned = sum(s.state == TrialState.PRUNED for s in segments)
    resumes = sum(s.parent is not None for s in segments)
    budget = f" of {n_epochs} ({100 * spent / n_epochs:.0f} %)" if n_epochs else ""
    statuses = [s for s in _STATUSES if by_status[s]] + sorted(
        s for s in by_status if s not in _STATUSES
    )
    counts = ", ".join(f"{by_status[s]} {s}" for s in statuses) or "none yet"
    lines = [
        "## DyHPO race",
        "",
        f"*Updated {stamp} by `optuna_dyhpo.DashboardUpdater`.*",
        "",
        f"- **Epochs spent:** {spent}{budget}",
        f"- **Configurations:** {len(configs)}: {counts}",
        f"- **Trials:** {len(segments)}, of which {resumes} "
        f"resume{'s' if resumes == 1 else ''} a paused configuration",
        f"- **Shown as Pruned:** {n_pruned} trials: {trial_status['paused']} **paused** "
        f"(resumable from their checkpoint), {trial_status['stopped']} stopped, "
        f"{trial_status['diverged']} diverged",
        "",
        "### Best configuration",
        "",
    ]
    if best is None:
        lines.append("No finite value reported yet.")
    else:
        ckpt = f", checkpoint artifact `{best.checkpoint}`" if best.checkpoint else ""
        lines += [
            f"**{target_name} {_fmt(best.value)}** at epoch {best.epoch} of configuration "
            f"{best.config_id} (trial {best.trial.number}; configuration {best.status}{ckpt}).",
            "",
            "| parameter | value |",
            "| --- | --- |",
            *(
                f"| {k} | {_fmt(v) if isinstance(v, float) else v} |"
                for k, v in best.params.items()
            ),
        ]
    lines += [
        "",
        "The *Best Trial* card and the history plot's best line show `study.best_trial`: "
        "COMPLETE trials' final values only. The best configuration above is the best value "
        "at any epoch of any configuration, paused ones included: "
        "`optuna_dyhpo.best_configuration(study)`, the `dyhpo:best` study user attribute and "
        "the *DyHPO Anytime Incumbent* plot.",
    ]
    sign = -1.0 if maximize else 1.0
    ranked = sorted(
        (c for c in configs.values() if any(math.isfinite(v) for v in c.curve)),
        key=lambda c: (sign * _best_of(c, maximize), c.config_id),
    )[:_TOP]
    if ranked:
        lines += [
            "",
            f"### Top {len(ranked)} configurations",
            "",
            f"| configuration | status | epochs | best {target_name} | trials |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in ranked:
            trials = ", ".join(f"#{n}" for n in c.trial_numbers)
            value = _fmt(_best_of(c, maximize))
            lines.append(f"| {c.config_id} | {c.status} | {c.last_step} | {value} | {trials} |")
    paused = [c.trial_numbers[-1] for c in configs.values() if c.status == "paused"]
    if paused:
        shown = ", ".join(f"#{n}" for n in sorted(paused)[:_LISTED])
        more = f" and {len(paused) - _LISTED} more" if len(paused) > _LISTED else ""
        lines += [
            "",
            f"**Paused** (shown as Pruned, latest trial of each paused configuration): "
            f"{shown}{more}. Each DyHPO trial's user attribute `dyhpo_status` says how it "
            "ended: `paused`, `completed`, `stopped`, `diverged` or `failed`.",
        ]
    return "\n".join(lines) + "\n"


def _best_of(c: Configuration, maximize: bool) -> float:
    finite = [v for v in c.curve if math.isfinite(v)]
    return max(finite) if maximize else min(finite)
