"""Which new configuration does the look-ahead start? A probe on the synthetic families.

Runs the default DyHPO on a synthetic family of the robustness suite (whose noise-free
final value of every configuration is known in closed form) and, at every ``--every``-th
look-ahead decision, compares the *quality* (the noise-free final value, 0 = chance, 1 = the
family's optimum) of

- the fresh candidate the engine chose (expected improvement at the evidence budget,
  ``optuna_dyhpo._scores.fresh_choice``),
- the one the expected improvement at ``max_budget`` over the best value observed would have
  chosen from the same candidates with the same model (the rule before ``fresh_choice``),
- the mean of all the fresh candidates (the Sobol points: what a random choice gets).

The three are measured on the same decisions, so the comparison does not depend on where the
two rules would have led the run. Flat search spaces only (not ``family:conditional``).

Example (from the repository root)::

    python -m benchmarks.fresh_choice --family noisy --seeds 0-2
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import tempfile
from typing import Any

import numpy as np

from benchmarks.run import parse_seeds


def _quality(problem: Any, params: dict[str, Any], seed: int) -> float:
    from benchmarks.families import CHANCE
    from benchmarks.families import LOSS_CHANCE
    from benchmarks.families import LOSS_MIN
    from benchmarks.families import TOP

    final = problem.shape(params, seed).final
    if problem.direction == "minimize":
        return (LOSS_CHANCE - final) / (LOSS_CHANCE - LOSS_MIN)
    return (final - CHANCE) / (TOP - CHANCE)


def probe(family: str, seed: int, every: int) -> np.ndarray:
    """Rows (chosen, max-budget rule, pool mean) of the qualities at the probed decisions."""
    import torch

    from benchmarks.families import parse_family_spec
    import optuna_dyhpo._engine as engine_module
    from optuna_dyhpo._gp import log_expected_improvement

    (problem,) = parse_family_spec(f"family:{family}")
    original = engine_module.lookahead_scores
    calls, rows = [0], []

    def spy(s: Any, table: Any, cache: Any, idx: torch.Tensor, fresh_x: torch.Tensor) -> Any:
        out = original(s, table, cache, idx, fresh_x)
        calls[0] += 1
        candidates = cache.fresh[1]
        if calls[0] % every or not isinstance(candidates, torch.Tensor):
            return out
        encoder = engine_module.SearchSpaceEncoder(problem.search_space())
        q = np.array([_quality(problem, encoder.decode(u.tolist()), seed) for u in candidates])
        mean, sd = cache.surrogate.predict(table.fresh_rows(fresh_x, s.max_budget))
        best = torch.tensor(table.best(), dtype=torch.float64)
        far = int(torch.argmax(log_expected_improvement(mean, cache.spread * sd, best)))
        rows.append((q[cache.fresh_winner], q[far], q.mean()))
        return out

    run_patched(family, seed, [(engine_module, "lookahead_scores", spy)])
    return np.array(rows)


def run_patched(family: str, seed: int, patches: Sequence[tuple[Any, str, Any]]) -> None:
    """Run the default DyHPO on synthetic ``family`` with ``seed`` (its results in a
    temporary folder) while each ``(owner, name, value)`` of ``patches`` replaces
    ``owner.name``; the originals are restored afterwards."""
    import benchmarks.run as runner

    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, value in patches:
        setattr(owner, name, value)
    try:
        with tempfile.TemporaryDirectory() as out:
            argv = ["--problems", f"family:{family}", "--methods", "dyhpo", "--seeds", str(seed)]
            runner.main([*argv, "--no-progress", "--out", out])
    finally:
        for owner, name, value in originals:
            setattr(owner, name, value)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.fresh_choice", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--family", default="noisy", help="synthetic family (flat space)")
    p.add_argument("--seeds", default="0", help="e.g. 0-2")
    p.add_argument("--every", type=int, default=10, help="probe every k-th decision")
    args = p.parse_args(argv)
    print("seed  decisions  chosen (evidence budget)  max-budget rule  candidates' mean")
    means = []
    for seed in parse_seeds(args.seeds):
        r = probe(args.family, seed, args.every)
        means.append(r.mean(axis=0))
        print(
            f"{seed:4d}  {len(r):9d}  {r[:, 0].mean():24.3f}  {r[:, 1].mean():15.3f}  "
            f"{r[:, 2].mean():16.3f}"
        )
    m = np.mean(means, axis=0)
    print(f"mean  {'':9s}  {m[0]:24.3f}  {m[1]:15.3f}  {m[2]:16.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
