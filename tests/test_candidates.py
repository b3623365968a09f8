from __future__ import annotations

import math
import random

from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
import torch

from optuna_dyhpo._candidates import SpaceTracker
from optuna_dyhpo._candidates import best_per_length
from optuna_dyhpo._candidates import current_space
from optuna_dyhpo._candidates import fresh_candidates
from optuna_dyhpo._search_space import SearchSpaceEncoder
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


@pytest.mark.parametrize("seed", range(5))
def test_the_kept_space_is_the_current_space(seed: int) -> None:
    # New configurations declaring wider ranges or new parameters, others leaving or
    # arriving in the middle, re-read objects: the tracker always gives current_space.
    rng = random.Random(seed)
    tracker = SpaceTracker()
    configs: dict[int, Configuration] = {}
    for _ in range(80):
        move = rng.random()
        if move < 0.5 or len(configs) < 3:
            cid = max(configs, default=-1) + 1
            if move < 0.1 and configs:  # one arriving in the middle
                cid = rng.choice([i for i in range(cid) if i not in configs] or [cid])
            names = rng.sample(["x", "y", "z"], rng.randint(1, 3))
            space = {n: FloatDistribution(0.0, float(rng.randint(1, 4))) for n in names}
            configs[cid] = Configuration(cid, {}, [0.0], [cid], "paused", space)
        elif move < 0.65:
            del configs[rng.choice(sorted(configs))]
        elif move < 0.9:
            c = configs[rng.choice(sorted(configs))]
            configs[c.config_id] = Configuration(**{**c.__dict__, "curve": [*c.curve, 1.0]})
        else:  # its distributions read from a later trial (its first one declared none)
            c = configs[rng.choice(sorted(configs))]
            space = {"y": FloatDistribution(0.0, float(rng.randint(5, 9)))}
            configs[c.config_id] = Configuration(**{**c.__dict__, "distributions": space})
        ordered = [configs[i] for i in sorted(configs)]
        assert tracker.space(ordered) == current_space(ordered)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_conditional_candidates_are_encoded_as_their_parameters(seed: int) -> None:
    space = {
        "opt": CategoricalDistribution(["sgd", "adam", "rmsprop"]),
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "momentum": FloatDistribution(0.0, 0.99),
        "hidden": IntDistribution(8, 256, log=True),
        "layers": IntDistribution(1, 3),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "act": CategoricalDistribution(["relu", "tanh"]),
    }
    observed = []
    for i in range(12):
        params: dict[str, object] = {"opt": ["sgd", "adam"][i % 2], "lr": 0.01, "layers": 2}
        if i % 2 == 0:
            params.update(momentum=0.9, act="relu", hidden=32)
        else:
            params.update(dropout=0.2)
        dists = {k: space[k] for k in params}
        observed.append(Configuration(i, params, [0.5], [i], "paused", dists))
    encoder = SearchSpaceEncoder(space)
    candidates, x = fresh_candidates(encoder, observed, 64, seed)
    assert not isinstance(candidates, torch.Tensor)
    assert len(candidates) == 64 and x.shape == (64, encoder.dim)
    patterns = {frozenset(c.params) for c in observed}
    for i in range(64):
        params = candidates[i]
        assert frozenset(params) in patterns
        assert torch.allclose(x[i], torch.tensor(encoder.encode(params), dtype=torch.float64))
        # Choices seen only with another pattern are not proposed; unseen ones may be.
        if "momentum" in params:
            assert params["opt"] != "adam"
        else:
            assert params["opt"] != "sgd"
    assert candidates[-1] == candidates[63]
