from __future__ import annotations

import math

from benchmarks.trace import trace


def test_the_trace_shows_each_decision_and_shares_the_epochs() -> None:
    t = trace("noisy:e6", seed=0, every=1, top=2)
    headers = [line for line in t.lines if line.startswith("decision ")]
    assert headers, "a look-ahead decision was traced"
    # Each decision shows at most ``top`` paused configurations.
    assert len(t.lines) <= 3 * len(headers)
    # Steps seen at the decisions: within the family's 6 epochs, qualities within [0, 1].
    assert all(0 <= n <= 6 and -1e-9 <= q <= 1 + 1e-9 for n, q in t.epochs.values())
    assert math.isclose(sum(t.shares()), 1.0)
