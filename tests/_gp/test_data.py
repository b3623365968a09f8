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


def _arrived_first(table: CurveTable, before: int) -> CurveTable:
    """The table as it was when only its first ``before`` observations had arrived."""
    order = sorted(
        (float(table.recency[i, b]), i, b)
        for i in range(table.n)
        for b in range(int(table.lengths[i]))
    )[:before]
    kept = sorted({i for _, i, _ in order})
    length = {i: sum(1 for _, j, _ in order if j == i) for i in kept}
    values = table.curves * table.scale + table.loc  # the sign is -1: values are negated
    curves = [(-values[i, : length[i]]).tolist() for i in kept]
    recency = [table.recency[i, : length[i]].tolist() for i in kept]
    return CurveTable.build(table.x[kept], curves, recency, -1.0, table.max_budget)


def _row_set(table: CurveTable, lookahead: bool, index: torch.Tensor) -> list[tuple[float, ...]]:
    """The rows in user units (the curve columns are normalised per table), as a sorted list."""
    rows, targets = table.training_rows(lookahead, index)
    out = []
    for r in range(rows.n):
        seen = int(rows.masks[r].sum())
        prefix = rows.curves[r, :seen] * table.scale + table.loc
        out.append(
            (
                *rows.params[r].tolist(),
                float(rows.budgets[r]),
                float(rows.prefix[r]),
                *[round(v, 9) for v in prefix.tolist()],
                round(float(targets[r] * table.scale + table.loc), 9),
            )
        )
    return sorted(out)


@pytest.mark.parametrize("lookahead", [False, True])
@pytest.mark.parametrize("before", [3, 8, 12])
@pytest.mark.parametrize("max_rows", [4, 100])
def test_rows_before_an_arrival_are_the_rows_of_the_table_then(
    lookahead: bool, before: int, max_rows: int
) -> None:
    table = _table()
    then = _arrived_first(table, before)
    assert int(then.lengths.sum()) == before
    picked = table.conditioning_subset(max_rows, lookahead, before=before)
    assert _row_set(table, lookahead, picked) == _row_set(
        then, lookahead, then.conditioning_subset(max_rows, lookahead)
    )


def test_held_out_rows_predict_each_later_observation_from_what_was_seen_before() -> None:
    table = _table()
    before = 8
    rows, observed = table.holdout_rows(before)
    n_obs = int(table.lengths.sum())
    assert rows.n == n_obs - before
    seen_then = table.lengths_before(before)
    assert int(seen_then.sum()) == before
    budgets = torch.round(rows.budgets * table.max_budget).long()
    seen = torch.round(rows.prefix * table.max_budget).long()
    assert torch.all(budgets > seen)
    assert torch.equal(rows.masks.sum(dim=1).long(), seen)
    # Each held-out row is one of the later observations, exactly once.
    later = {
        (tuple(table.x[i].tolist()), b + 1, float(table.curves[i, b]))
        for i in range(table.n)
        for b in range(int(seen_then[i]), int(table.lengths[i]))
    }
    got = {
        (tuple(rows.params[r].tolist()), int(budgets[r]), float(observed[r]))
        for r in range(rows.n)
    }
    assert got == later and len(later) == rows.n


@pytest.mark.parametrize("lookahead", [False, True])
def test_before_every_observation_is_the_whole_table(lookahead: bool) -> None:
    table = _table()
    n_obs = int(table.lengths.sum())
    for max_rows in (5, 100):
        assert torch.equal(
            table.conditioning_subset(max_rows, lookahead, before=n_obs),
            table.conditioning_subset(max_rows, lookahead),
        )
    assert table.holdout_rows(n_obs)[0].n == 0


def test_the_evidence_budget_is_reached_by_enough_configurations() -> None:
    table = _table()  # curve lengths 1, 4, 2, 7, 3
    assert [table.evidence_budget(k) for k in range(1, 6)] == [7, 4, 3, 2, 1]
    assert table.evidence_budget(6) == 1  # fewer configurations than asked for
