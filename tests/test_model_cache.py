"""The engine's model cache: the curve table kept between decisions."""

from __future__ import annotations

import random

from optuna.distributions import FloatDistribution
import pytest
import torch

from optuna_dyhpo._gp import CurveTable
from optuna_dyhpo._model_cache import ModelCache
from optuna_dyhpo._model_cache import arrival_keys
from optuna_dyhpo._model_cache import curve_table
from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration

MAX_BUDGET = 9
SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(-2.0, 2.0)}


def _config(rng: random.Random, config_id: int, length: int) -> Configuration:
    status = rng.choice(["paused", "running", "diverged", "finished"])
    curve = [rng.choice([0.5, rng.uniform(-3.0, 3.0)]) for _ in range(length)]
    trials = sorted(rng.sample(range(1000), max(1, length // 2)))
    steps = [trials[min(b // 2, len(trials) - 1)] for b in range(length)]
    params = {"x": config_id / 100, "y": (config_id % 7) / 4 - 1.5}  # never change
    return Configuration(config_id, params, curve, trials, status, dict(SPACE), -1, steps)


def _whole(observed: list[Configuration], encoder: SearchSpaceEncoder, sign: float) -> CurveTable:
    """The table built from scratch, as the engine did before it kept rows."""
    x = torch.tensor([encoder.encode(c.params) for c in observed], dtype=torch.float64)
    curves = [list(c.curve) for c in observed]
    worst = min((sign * v for c in observed for v in c.curve), default=0.0)
    for i, c in enumerate(observed):
        if c.status == "diverged":
            curves[i].append(sign * worst)
    keys = [arrival_keys(c, MAX_BUDGET + 1) for c in observed]
    return CurveTable.build(x.reshape(len(observed), encoder.dim), curves, keys, sign, MAX_BUDGET)


@pytest.mark.parametrize("seed", range(6))
def test_kept_rows_give_the_table_built_from_scratch(seed: int) -> None:
    # Appends, longer curves, a configuration leaving or entering in the middle, new objects
    # with the same content, diverged ones: the kept table is always the whole one, and its
    # version changes exactly when the table does.
    rng = random.Random(seed)
    encoder = SearchSpaceEncoder(SPACE)
    sign = rng.choice([1.0, -1.0])
    cache = ModelCache()
    configs = {i: _config(rng, i, rng.randint(1, 4)) for i in range(4)}
    previous, version = None, cache.rows.version
    for _ in range(60):
        move = rng.random()
        ids = sorted(configs)
        if move < 0.3:
            cid = max(ids) + 1
            configs[cid] = _config(rng, cid, 1)
        elif move < 0.6:
            c = configs[rng.choice(ids)]
            longer = min(len(c.curve) + 1, MAX_BUDGET - 1)
            configs[c.config_id] = _config(rng, c.config_id, longer)
        elif move < 0.7 and len(ids) > 2:
            del configs[rng.choice(ids[:-1])]  # leaves the middle (its first trial crashed)
        elif move < 0.8:
            cid = rng.choice([i for i in range(max(ids)) if i not in configs] or [max(ids) + 1])
            configs[cid] = _config(rng, cid, rng.randint(1, 3))
        else:
            c = configs[rng.choice(ids)]  # the reader re-read it: a new, equal object
            configs[c.config_id] = Configuration(**c.__dict__)
        observed = [configs[i] for i in sorted(configs)]
        table = curve_table(observed, encoder, sign, MAX_BUDGET, cache)
        whole = _whole(observed, encoder, sign)
        for name in ("x", "curves", "lengths", "recency"):
            assert torch.equal(getattr(table, name), getattr(whole, name)), name
        assert (table.loc, table.scale) == (whole.loc, whole.scale)
        assert cache.rows.row_of == {c.config_id: i for i, c in enumerate(observed)}
        same = previous is not None and all(
            torch.equal(getattr(table, n), getattr(previous, n))
            for n in ("x", "curves", "lengths", "recency")
        )
        assert (cache.rows.version == version) == same
        previous, version = table, cache.rows.version
