from __future__ import annotations

import logging

from optuna.distributions import FloatDistribution
import pytest

from optuna_dyhpo._engine import DecisionEngine
from optuna_dyhpo._engine import EngineSettings
from optuna_dyhpo._state import Configuration

SPACE = {"x": FloatDistribution(0.0, 1.0)}


def _curve(x: float, k: int, sign: float = 1.0) -> list[float]:
    return [sign * x * (1.0 - 0.5**b) for b in range(1, k + 1)]


def _configs(sign: float = 1.0) -> dict[int, Configuration]:
    """Ten configurations of y_b = x (1 - 0.5^b), three steps each, all paused except the
    ones a test marks as running."""
    xs = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.6, 0.65, 0.7, 0.95]
    out = {}
    for i, x in enumerate(xs):
        out[i] = Configuration(i, {"x": x}, _curve(x, 3, sign), [i], "paused", dict(SPACE))
    return out


def _engine() -> DecisionEngine:
    # Pure DyHPO decisions (no successive-halving promotions mixed in).
    settings = EngineSettings(10, n_startup_configs=3, n_candidates=64, promotion_probability=0)
    return DecisionEngine(settings, seed=0)


@pytest.mark.parametrize("maximize", [True, False])
def test_resumes_the_most_promising_paused_configuration(maximize: bool) -> None:
    configs = _configs(1.0 if maximize else -1.0)
    configs[0].status = "running"
    d = _engine().decide(configs, maximize=maximize, running=0)
    assert d.kind == "resume" and d.config_id == 9 and d.budget == 4 and d.reason == "ei"


@pytest.mark.parametrize("maximize", [True, False])
def test_continues_the_best_running_configuration(maximize: bool) -> None:
    configs = _configs(1.0 if maximize else -1.0)
    configs[9].status = "running"
    d = _engine().decide(configs, maximize=maximize, running=9)
    assert d.kind == "continue" and d.config_id == 9


def test_never_picks_other_running_finished_or_failed_configurations() -> None:
    configs = _configs()
    configs[9].status = "running"  # another worker's
    configs[8].status = "failed"
    configs[7].status = "completed"
    configs[6].curve = _curve(0.6, 10)  # paused at max budget
    d = _engine().decide(configs, maximize=True, running=0)
    assert d.config_id not in (9, 8, 7, 6)


def test_per_budget_incumbent_beats_overall_best() -> None:
    """A configuration far behind the overall best can still win at a budget nobody reached:
    the incumbent there is the best value observed at that budget, not the overall best."""
    configs = {
        0: Configuration(0, {"x": 0.9}, _curve(0.9, 2), [0], "running", dict(SPACE)),
        1: Configuration(1, {"x": 0.3}, _curve(0.3, 6), [1], "paused", dict(SPACE)),
        2: Configuration(2, {"x": 0.2}, _curve(0.2, 6), [2], "paused", dict(SPACE)),
    }
    d = _engine().decide(configs, maximize=True, running=0)
    assert (d.kind, d.config_id) == ("continue", 0)


def test_initial_design_starts_fresh_configurations() -> None:
    configs = {0: Configuration(0, {"x": 0.5}, [0.2], [0], "running", dict(SPACE))}
    d = _engine().decide(configs, maximize=True, running=0)
    assert d.kind == "fresh" and d.reason == "initial design"


def test_fresh_candidate_params_are_in_the_space() -> None:
    configs = {
        i: Configuration(i, {"x": 0.1 * i}, [0.01 * i], [i], "completed", dict(SPACE))
        for i in range(5)
    }
    d = _engine().decide(configs, maximize=True)
    assert d.kind == "fresh" and d.params is not None and 0.0 <= d.params["x"] <= 1.0


def test_model_failure_falls_back_to_a_valid_logged_decision(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from optuna_dyhpo._gp import FitError
    from optuna_dyhpo._gp import Surrogate

    def broken_fit(*args: object, **kwargs: object) -> float:
        raise FitError("non-PSD kernel matrix (simulated)")

    monkeypatch.setattr(Surrogate, "fit", broken_fit)
    configs = _configs()
    configs[0].status = "running"
    engine = _engine()
    caplog.set_level(logging.WARNING, logger="optuna.dyhpo")
    import optuna

    optuna.logging.enable_propagation()
    try:
        d = engine.decide(configs, maximize=True, running=0)
    finally:
        optuna.logging.disable_propagation()
    # Successive-halving fallback: the best promotable paused configuration gets the step.
    assert d.reason.startswith("fallback: FitError") and (d.kind, d.config_id) == ("resume", 9)
    assert "non-PSD" in caplog.text and engine.stats.failed_fits == 1


def test_same_seed_same_decision_and_refit_only_on_new_data() -> None:
    configs = _configs()
    configs[3].status = "running"
    a, b = _engine(), _engine()
    assert a.decide(configs, True, running=3) == b.decide(configs, True, running=3)
    fits = a.stats.scratch_fits + a.stats.warm_fits
    a.decide(configs, True, running=3)
    assert a.stats.scratch_fits + a.stats.warm_fits == fits
