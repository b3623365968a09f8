from __future__ import annotations

import math

from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest
import torch

from optuna_dyhpo._search_space import INACTIVE
from optuna_dyhpo._search_space import SearchSpaceEncoder

SPACE = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    "width": IntDistribution(16, 256, log=True),
    "layers": IntDistribution(1, 9, step=2),
    "opt": CategoricalDistribution(["sgd", "adam", "rmsprop"]),
    "momentum": FloatDistribution(0.0, 1.0),
}


def test_encoding_layout_and_values() -> None:
    enc = SearchSpaceEncoder(SPACE)
    # sorted names: dropout, layers, lr, momentum, opt(3), width
    assert enc.dim == 8 and enc.n_params == 6
    x = enc.encode(
        {
            "lr": 1e-4 * 10**1.5,
            "dropout": 0.5,
            "width": 16,
            "layers": 5,
            "opt": "adam",
            "momentum": 0.25,
        }
    )
    assert x[0] == pytest.approx(1.0)  # dropout at its upper bound
    assert x[1] == pytest.approx(0.5)  # layers 5 of [1, 9]
    assert x[2] == pytest.approx(0.5)  # lr halfway in log space
    assert x[3] == pytest.approx(0.25)
    assert x[4:7] == [0.0, 1.0, 0.0]  # one-hot "adam"
    assert x[7] == pytest.approx(0.0)


def test_inactive_parameters_are_marked() -> None:
    enc = SearchSpaceEncoder(SPACE)
    x = enc.encode({"lr": 0.01})
    assert x[0] == INACTIVE and x[3] == INACTIVE and x[4:7] == [0.0, 0.0, 0.0]


def test_decode_respects_types_steps_and_bounds() -> None:
    enc = SearchSpaceEncoder(SPACE)
    g = torch.Generator().manual_seed(0)
    for u in torch.rand(200, enc.n_params, generator=g, dtype=torch.float64).tolist():
        p = enc.decode(u)
        for name, dist in SPACE.items():
            assert dist._contains(dist.to_internal_repr(p[name])), (name, p[name])
        assert isinstance(p["width"], int) and isinstance(p["layers"], int)
        assert math.isclose(round(p["dropout"] / 0.1) * 0.1, p["dropout"], abs_tol=1e-9)


def test_vectorised_encoding_matches_decode_then_encode() -> None:
    enc = SearchSpaceEncoder(SPACE)
    u = torch.rand(
        100, enc.n_params, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    fast = enc.encode_unit(u)
    slow = torch.tensor([enc.encode(enc.decode(row)) for row in u.tolist()], dtype=torch.float64)
    assert torch.allclose(fast, slow, atol=1e-9)


def test_empty_space() -> None:
    enc = SearchSpaceEncoder({})
    assert enc.dim == 0 and enc.encode({}) == [] and enc.decode([]) == {}
