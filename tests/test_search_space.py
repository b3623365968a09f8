from __future__ import annotations

from collections import Counter
import math
from typing import Any

from optuna.distributions import BaseDistribution
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
    # Discrete ranges are padded by half a step: dropout's six values own the cells of
    # [-0.05, 0.55], and its upper bound encodes to the centre of the last one.
    assert x[0] == pytest.approx(11 / 12)
    assert x[1] == pytest.approx(0.5)  # layers 5 of [1, 9] (padded: [0, 10])
    assert x[2] == pytest.approx(0.5)  # lr halfway in log space
    assert x[3] == pytest.approx(0.25)
    assert x[4:7] == [0.0, 1.0, 0.0]  # one-hot "adam"
    # width 16 is the centre of [log 15.5, log 16.5] within [log 15.5, log 256.5].
    lo, hi = math.log(15.5), math.log(256.5)
    assert x[7] == pytest.approx((0.5 * (math.log(15.5) + math.log(16.5)) - lo) / (hi - lo))


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


def _draw_values(dist: BaseDistribution, n: int = 100_000) -> tuple[list[Any], torch.Tensor]:
    """Decode ``n`` uniform draws of a one-parameter space; also their vectorised encodings."""
    enc = SearchSpaceEncoder({"p": dist})
    u = torch.rand(n, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return [enc.decode(row)["p"] for row in u.tolist()], enc.encode_unit(u)


@pytest.mark.parametrize(
    "dist,values",
    [
        (IntDistribution(1, 3), [1, 2, 3]),
        (IntDistribution(0, 10, step=2), [0, 2, 4, 6, 8, 10]),
        (FloatDistribution(0.0, 1.0, step=0.25), [0.0, 0.25, 0.5, 0.75, 1.0]),
        (IntDistribution(-2, 2), [-2, -1, 0, 1, 2]),
    ],
)
def test_linear_grid_values_are_equally_likely(dist: BaseDistribution, values: list[Any]) -> None:
    drawn, encoded = _draw_values(dist)
    counts = Counter(drawn)
    assert sorted(counts) == values
    for v in values:
        assert counts[v] / len(drawn) == pytest.approx(1 / len(values), abs=0.01), v
    # The vectorised path sees the same distribution of cells.
    enc = SearchSpaceEncoder({"p": dist})
    for v in values:
        share = float((encoded[:, 0] == enc.encode({"p": v})[0]).double().mean())
        assert share == pytest.approx(counts[v] / len(drawn), abs=1e-12), v


def test_log_integers_get_the_mass_of_their_padded_log_cells() -> None:
    dist = IntDistribution(1, 8, log=True)
    drawn, _ = _draw_values(dist)
    counts = Counter(drawn)
    assert sorted(counts) == list(range(1, 9))
    total = math.log(8.5) - math.log(0.5)
    for v in range(1, 9):
        expected = (math.log(v + 0.5) - math.log(v - 0.5)) / total
        assert counts[v] / len(drawn) == pytest.approx(expected, abs=0.005), v


@pytest.mark.parametrize(
    "dist",
    [
        IntDistribution(1, 3),
        IntDistribution(0, 10, step=2),
        FloatDistribution(0.0, 1.0, step=0.25),
        IntDistribution(1, 8, log=True),
        IntDistribution(16, 256, log=True),
        IntDistribution(5, 5),
        IntDistribution(4, 4, log=True),
        FloatDistribution(0.5, 0.5, step=0.1),
    ],
)
def test_grid_values_encode_to_the_centre_of_their_cells(dist: BaseDistribution) -> None:
    # The cell of a value is the set of unit points that decode to it; find it on a fine grid.
    enc = SearchSpaceEncoder({"p": dist})
    grid = torch.linspace(0.0, 1.0, 40_001, dtype=torch.float64).tolist()
    cells: dict[Any, list[float]] = {}
    for u in grid:
        cells.setdefault(enc.decode([u])["p"], []).append(u)
    for value, us in cells.items():
        centre = 0.5 * (min(us) + max(us))
        assert enc.encode({"p": value})[0] == pytest.approx(centre, abs=3e-5), value
        assert enc.decode(enc.encode({"p": value}))["p"] == value


def test_single_value_ranges() -> None:
    space = {
        "a": IntDistribution(3, 3),
        "b": FloatDistribution(0.2, 0.2),
        "c": FloatDistribution(0.5, 0.5, step=0.1),
        "d": IntDistribution(4, 4, log=True),
        "e": FloatDistribution(2.0, 2.0, log=True),
    }
    enc = SearchSpaceEncoder(space)
    u = torch.rand(
        50, enc.n_params, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    for row in u.tolist():
        assert enc.decode(row) == {"a": 3, "b": 0.2, "c": 0.5, "d": 4, "e": 2.0}
    half = torch.full((50, 5), 0.5, dtype=torch.float64)
    assert torch.allclose(enc.encode_unit(u), half, rtol=0.0, atol=1e-12)
    assert enc.encode({"a": 3, "b": 0.2, "c": 0.5, "d": 4, "e": 2.0}) == pytest.approx([0.5] * 5)


def test_round_trips() -> None:
    space = {
        **{k: v for k, v in SPACE.items() if not isinstance(v, CategoricalDistribution)},
        "ints": IntDistribution(1, 3),
        "evens": IntDistribution(0, 10, step=2),
        "quarters": FloatDistribution(0.0, 1.0, step=0.25),
        "logints": IntDistribution(1, 8, log=True),
    }
    enc = SearchSpaceEncoder(space)
    u = torch.rand(
        300, enc.n_params, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    fast = enc.encode_unit(u)
    for i, row in enumerate(u.tolist()):
        params = enc.decode(row)
        x = enc.encode(params)
        assert x == pytest.approx(fast[i].tolist(), abs=1e-12)
        # Without categoricals a feature vector is a unit-cube point: it decodes back.
        again = enc.decode(x)
        for name, dist in space.items():
            if isinstance(dist, IntDistribution) or dist.step is not None:
                assert again[name] == params[name], name
            else:
                assert again[name] == pytest.approx(params[name], rel=1e-12), name


def test_empty_space() -> None:
    enc = SearchSpaceEncoder({})
    assert enc.dim == 0 and enc.encode({}) == [] and enc.decode([]) == {}


def test_to_unit_inverts_decode_categoricals_included() -> None:
    space = {
        **SPACE,
        "ints": IntDistribution(1, 3),
        "logints": IntDistribution(1, 8, log=True),
        "pick": CategoricalDistribution(("a", "b", "c")),
    }
    enc = SearchSpaceEncoder(space)
    u = torch.rand(
        200, enc.n_params, generator=torch.Generator().manual_seed(7), dtype=torch.float64
    )
    for row in u.tolist():
        params = enc.decode(row)
        point = enc.to_unit(params)
        assert point is not None and all(0.0 <= v <= 1.0 for v in point)
        again = enc.decode(point)
        for name, dist in space.items():
            if isinstance(dist, FloatDistribution) and dist.step is None:
                assert again[name] == pytest.approx(params[name], rel=1e-12), name
            else:
                assert again[name] == params[name], name
    some = enc.decode(u[0].tolist())
    assert enc.to_unit({k: v for k, v in some.items() if k != "ints"}) is None
    assert enc.to_unit({**some, "pick": "z"}) is None
