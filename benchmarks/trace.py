"""Where did the epochs go, and why? A decision trace of DyHPO on a synthetic family.

Runs the default DyHPO on a synthetic family of the robustness suite (whose noise-free final
value of every configuration is known in closed form) and prints, for each look-ahead
decision, what the model predicted and what the expected improvement compared: the
decision, the incumbent, the spread widening, and the best-scored paused configurations with
their steps, predicted mean and (widened) standard deviation at ``max_budget``, log expected
improvement and *quality* (noise-free final value, 0 = chance, 1 = the family's optimum).
At the end it reports how the run's epochs were shared between poor (quality < 0.3), middling
and good (> 0.7) configurations.

Example (from the repository root)::

    python -m benchmarks.trace --family noisy --seed 0 --top 3 --every 10
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

POOR, GOOD = 0.3, 0.7


@dataclass
class Trace:
    """What a traced run decided.

    Attributes:
        lines: The printable trace, one entry per traced decision (several lines each).
        epochs: For each configuration id: (steps trained, quality).
    """

    lines: list[str] = field(default_factory=list)
    epochs: dict[int, tuple[int, float]] = field(default_factory=dict)

    def shares(self) -> tuple[float, float, float]:
        """Shares of the epochs spent on poor, middling and good configurations."""
        total = sum(n for n, _ in self.epochs.values()) or 1
        poor = sum(n for n, q in self.epochs.values() if q < POOR)
        good = sum(n for n, q in self.epochs.values() if q > GOOD)
        return poor / total, (total - poor - good) / total, good / total


def trace(family: str, seed: int, every: int = 1, top: int = 3) -> Trace:
    """Run DyHPO on ``family`` with ``seed`` and trace every ``every``-th look-ahead decision
    (its ``top`` best-scored paused configurations)."""
    import torch

    from benchmarks.families import parse_family_spec
    from benchmarks.fresh_choice import _quality
    from benchmarks.fresh_choice import run_patched
    import optuna_dyhpo._engine as engine_module

    (problem,) = parse_family_spec(f"family:{family}")
    out = Trace()
    scored: dict[str, Any] = {}
    original_scores = engine_module.lookahead_scores
    original_decide = engine_module.DecisionEngine.decide
    calls = [0]

    known: dict[int, float] = {}

    def quality(c: Any) -> float:
        """The quality of configuration ``c`` (computed once: its parameters never change)."""
        if c.config_id not in known:
            known[c.config_id] = _quality(problem, c.params, seed)
        return known[c.config_id]

    def scores(s: Any, table: Any, cache: Any, idx: torch.Tensor, fresh_x: torch.Tensor) -> Any:
        log_ei = original_scores(s, table, cache, idx, fresh_x)
        scored.update(s=s, table=table, cache=cache, idx=idx, log_ei=log_ei)
        return log_ei

    def decide(self: Any, configs: dict[int, Any], maximize: bool, *a: Any, **k: Any) -> Any:
        scored.clear()
        decision = original_decide(self, configs, maximize, *a, **k)
        for c in configs.values():
            out.epochs[c.config_id] = (c.last_step, quality(c))
        if not scored:
            return decision
        calls[0] += 1
        if calls[0] % every:
            return decision
        s, table, cache, idx = scored["s"], scored["table"], scored["cache"], scored["idx"]
        by_row = {row: cid for cid, row in cache.rows.row_of.items()}
        budgets = torch.full((len(idx),), s.max_budget)
        mean, sd = cache.surrogate.predict(table.next_step_rows(idx, budgets))
        out.lines.append(
            f"decision {calls[0]}: {decision.kind} {decision.config_id} at step "
            f"{decision.budget}, log EI {decision.log_ei:.2f} ({decision.reason}); best "
            f"observed {table.best():.2f}, spread x{cache.spread:.2f}, fresh log EI "
            f"{float(scored['log_ei'][len(idx) :].max()):.2f}"
        )
        order = torch.argsort(scored["log_ei"][: len(idx)], descending=True)[:top]
        for j in order.tolist():
            c = configs[by_row[int(idx[j])]]
            out.lines.append(
                f"    config {c.config_id:4d}: {c.last_step:3d} steps, at max_budget "
                f"{float(mean[j]):6.2f} +- {cache.spread * float(sd[j]):5.2f}, log EI "
                f"{float(scored['log_ei'][j]):7.2f}, quality {quality(c):.2f}"
            )
        return decision

    patches = [
        (engine_module, "lookahead_scores", scores),
        (engine_module.DecisionEngine, "decide", decide),
    ]
    run_patched(family, seed, patches)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.trace", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--family", default="noisy", help="synthetic family (flat space)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=1, help="trace every k-th decision")
    p.add_argument("--top", type=int, default=3, help="paused configurations shown")
    args = p.parse_args(argv)
    t = trace(args.family, args.seed, args.every, args.top)
    print("\n".join(t.lines))
    poor, mid, good = t.shares()
    print(
        f"epochs on poor (quality < {POOR}) / middling / good (> {GOOD}) configurations: "
        f"{poor:.0%} / {mid:.0%} / {good:.0%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
