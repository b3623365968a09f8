from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalStorage
import pytest

from benchmarks.calibration import calibrate
from benchmarks.calibration import load_run
from benchmarks.calibration import spearman
from benchmarks.families import FAMILIES
from benchmarks.families import CurveFamily
from benchmarks.families import from_unit
from optuna_dyhpo import Configuration


def test_spearman_is_one_for_the_same_order_and_minus_one_for_the_reverse() -> None:
    a = np.array([0.3, 0.1, 0.9, 0.5])
    assert spearman(a, 2 * a + 1) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(spearman(a, np.ones(4)))


def _configs(kind: str, seed: int, n: int) -> tuple[CurveFamily, list[Configuration]]:
    family = FAMILIES[kind]()
    space = family.search_space()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        params = {name: from_unit(dist, float(rng.random())) for name, dist in space.items()}
        shape = family.shape(params, seed)
        length = 1 + i % 8
        curve = [shape.value(b) for b in range(1, length + 1)]
        out.append(
            Configuration(i, params, curve, [i], "paused", dict(space), step_trials=[i] * length)
        )
    return family, out


def test_calibration_reports_valid_figures_at_every_budget() -> None:
    family, configs = _configs("crossing", 0, 24)
    result = calibrate(family, 0, configs, [1, 5, family.max_epochs], n_samples=40)
    assert [c.budget for c in result] == [1, 5, family.max_epochs]
    for c in result:
        assert -1.0 <= c.rank_correlation <= 1.0
        assert c.median_abs_z >= 0.0 and 0.0 <= c.coverage95 <= 1.0
        mean, sd, true = c.optimum
        assert math.isfinite(mean) and sd > 0 and math.isfinite(true)
        # Recalibration only widens: |z| shrinks by the spread, coverage can only grow.
        assert c.spread == result[0].spread >= 1.0
        assert c.recalibrated_median_abs_z == pytest.approx(c.median_abs_z / c.spread)
        assert c.recalibrated_coverage95 >= c.coverage95
    # Noise-free curves of observed kinds: at budget 1 (observed for every configuration) the
    # model ranks new configurations better than chance.
    assert result[0].rank_correlation > 0.3


def test_only_runs_of_a_synthetic_family_are_accepted(tmp_path: Path) -> None:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "run.journal")))
    study = optuna.create_study(storage=storage, study_name="lcbench-3945__dyhpo__b10__s0")
    study.set_user_attr("benchmark_problem", "lcbench-3945-val_accuracy")
    study.set_user_attr("benchmark_seed", 0)
    with pytest.raises(ValueError, match="not of a synthetic family"):
        load_run(tmp_path / "run.journal")
