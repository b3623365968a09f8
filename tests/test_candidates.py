from __future__ import annotations

import math

from optuna.distributions import FloatDistribution
import pytest

from optuna_dyhpo._candidates import best_per_length
from optuna_dyhpo._state import Configuration

SPACE = {"x": FloatDistribution(0.0, 1.0)}


def _paused(lengths_values: list[tuple[int, float]]) -> list[Configuration]:
    return [
        Configuration(i, {"x": 0.5}, [0.0] * (k - 1) + [v], [i], "paused", dict(SPACE))
        for i, (k, v) in enumerate(lengths_values)
    ]


def test_under_the_limit_every_paused_configuration_is_kept() -> None:
    paused = _paused([(1, 0.1), (2, 0.2), (3, 0.3)])
    assert best_per_length(paused, 3, 1.0) == paused


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_best_of_every_length_comes_first(sign: float) -> None:
    # Lengths 1..4, five configurations each, values 0.0 .. 0.4 (one non-finite).
    spec = [(k, v / 10) for k in range(1, 5) for v in range(5)]
    spec[7] = (2, math.nan)
    paused = _paused(spec)
    for limit in (4, 8, 13):
        kept = best_per_length(paused, limit, sign)
        assert len(kept) == limit
        assert [c.config_id for c in kept] == sorted(c.config_id for c in kept)
        by_length: dict[int, list[float]] = {}
        for c in kept:
            by_length.setdefault(c.last_step, []).append(sign * c.curve[-1])
        # Each length keeps its floor(limit / 4) or ceil(limit / 4) best values.
        assert sorted(len(v) for v in by_length.values())[0] >= limit // 4
        for k, values in by_length.items():
            everything = [sign * c.curve[-1] for c in paused if c.last_step == k]
            best = sorted((v for v in everything if math.isfinite(v)), reverse=True)
            assert sorted(values, reverse=True) == best[: len(values)]


def test_the_same_configurations_whatever_their_order() -> None:
    paused = _paused([(k % 7 + 1, (k * 37 % 11) / 11) for k in range(60)])
    kept = best_per_length(paused, 20, 1.0)
    assert best_per_length(list(reversed(paused)), 20, 1.0) == kept
