"""Successive-halving promotions and Hyperband brackets."""

from __future__ import annotations

from collections import Counter

from optuna.distributions import FloatDistribution

from optuna_dyhpo._promotion import bracket_floor
from optuna_dyhpo._promotion import promotion
from optuna_dyhpo._promotion import rungs
from optuna_dyhpo._state import Configuration

SPACE = {"x": FloatDistribution(0.0, 1.0)}


def _config(cid: int, curve: list[float], status: str = "paused") -> Configuration:
    return Configuration(cid, {"x": 0.5}, curve, [cid], status, dict(SPACE))


def test_rungs() -> None:
    assert rungs(27, 3) == [1, 3, 9, 27]
    assert rungs(30, 3) == [1, 3, 9, 27, 30]
    assert rungs(1, 3) == [1]


def test_bracket_floors_follow_hyperband_shares() -> None:
    """Bracket s gets configurations in proportion to ceil((s_max+1)/(s+1) eta^s)."""
    floors = Counter(bracket_floor(0, i, 27, 3) for i in range(20_000))
    assert set(floors) == {1, 3, 9, 27}
    weights = {1: 27, 3: 12, 9: 6, 27: 4}  # s = 3, 2, 1, 0 for max_budget 27, eta 3
    total = sum(weights.values())
    for floor, w in weights.items():
        assert abs(floors[floor] / 20_000 - w / total) < 0.015
    assert bracket_floor(5, 7, 27, 3) == bracket_floor(5, 7, 27, 3)  # a function of its inputs


def test_one_step_configurations_are_promoted_from_the_top_third() -> None:
    """Nine configurations at one step: the best three may be promoted, the best first."""
    configs = [_config(i, [0.1 * i]) for i in range(9)]
    chosen = promotion(configs, configs, 1.0, 27, 3)
    assert chosen is not None and chosen.config_id == 8
    # Minimisation: the smallest value is best.
    chosen = promotion(configs, configs, -1.0, 27, 3)
    assert chosen is not None and chosen.config_id == 0


def test_a_configuration_on_its_way_to_a_rung_keeps_training() -> None:
    configs = [_config(i, [0.1 * i]) for i in range(9)] + [_config(9, [0.0, 0.0])]
    # Configuration 9 is at step 2, on its way to rung 3: it comes before any promotion.
    assert promotion(configs, configs, 1.0, 27, 3).config_id == 9  # type: ignore[union-attr]
    # The running configuration keeps its right to train whatever the others.
    running = promotion(configs, configs, 1.0, 27, 3, running=8)
    assert running is not None and running.config_id == 8


def test_a_configuration_below_its_bracket_floor_comes_first() -> None:
    configs = [_config(i, [0.1 * i]) for i in range(9)]
    chosen = promotion(configs, configs, 1.0, 27, 3, floors={2: 9})
    assert chosen is not None and chosen.config_id == 2


def test_nothing_to_promote_means_a_new_configuration() -> None:
    configs = [_config(0, [0.5]), _config(1, [0.4])]  # two at rung 1: top third is empty
    assert promotion(configs, configs, 1.0, 27, 3) is None
    at_max = [_config(0, [0.1] * 27)]
    assert promotion(at_max, at_max, 1.0, 27, 3) is None
