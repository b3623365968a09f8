from __future__ import annotations

import pytest
import torch

from optuna_dyhpo._gp import CurveTable


def _table() -> CurveTable:
    g = torch.Generator().manual_seed(0)
    lengths = [1, 4, 2, 7, 3]
    x = torch.rand((len(lengths), 2), generator=g, dtype=torch.float64)
    curves = [torch.rand(k, generator=g, dtype=torch.float64).tolist() for k in lengths]
    # Interleaved arrival: configuration i's step b arrived at b * 10 + i.
    recency = [[b * 10 + i for b in range(1, k + 1)] for i, k in enumerate(lengths)]
    return CurveTable.build(x, curves, recency, -1.0, 10)


def test_build_pads_each_curve_in_place() -> None:
    table = _table()
    assert table.width == 7 and table.lengths.tolist() == [1, 4, 2, 7, 3]
    for i, k in enumerate(table.lengths.tolist()):
        assert torch.all(table.curves[i, k:] == 0.0)
        assert table.recency[i, :k].tolist() == [b * 10 + i for b in range(1, k + 1)]


@pytest.mark.parametrize("lookahead", [False, True])
def test_a_subset_of_training_rows_is_the_same_rows(lookahead: bool) -> None:
    table = _table()
    rows, targets = table.training_rows(lookahead)
    assert rows.n == table.n_training_rows(lookahead)
    index = torch.tensor([0, 3, 5, rows.n - 1])
    sub, sub_targets = table.training_rows(lookahead, index)
    assert torch.equal(sub.pack(), rows.select(index).pack())
    assert torch.equal(sub_targets, targets[index])


def test_one_recency_key_per_value_is_required() -> None:
    x = torch.zeros((1, 1), dtype=torch.float64)
    with pytest.raises(ValueError, match="recency"):
        CurveTable.build(x, [[0.1, 0.2]], [[1]], 1.0, 10)
