from __future__ import annotations

import logging
import math

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
    # The paper's next-step rule alone (no promotions mixed in).
    settings = EngineSettings(
        10,
        n_startup_configs=3,
        n_candidates=64,
        promotion_probability=0,
        hyperband_brackets=False,
        acquisition="next-step",
    )
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


def _many(n_configs: int, steps: int) -> dict[int, Configuration]:
    """``n_configs`` paused configurations of ``steps`` steps each, trained in turn."""
    out = {}
    for i in range(n_configs):
        x = (i + 0.5) / n_configs
        out[i] = Configuration(
            i, {"x": x}, _curve(x, steps), [i], "paused", dict(SPACE), step_trials=[i] * steps
        )
    return out


def test_refits_go_on_beyond_the_row_cap() -> None:
    """Refits are decided from the observations, not from the capped rows."""
    settings = EngineSettings(20, n_candidates=32, promotion_probability=0, max_rows=100)
    engine = DecisionEngine(settings, seed=0)
    configs = _many(50, 10)  # 500 observations, five times the row cap
    engine.decide(configs, maximize=True)
    fits = engine.stats.scratch_fits + engine.stats.warm_fits
    for i in range(50, 50 + 3 * settings.refit_every):
        configs[i] = Configuration(
            i, {"x": 0.01}, [0.0], [i], "paused", dict(SPACE), step_trials=[i]
        )
    engine.decide(configs, maximize=True)
    assert engine.stats.scratch_fits + engine.stats.warm_fits > fits


def test_a_failed_fit_is_followed_by_a_fit_from_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna_dyhpo._gp import FitError
    from optuna_dyhpo._gp import Surrogate

    real_fit = Surrogate.fit
    calls = {"n": 0}

    def fail_once(self: Surrogate, *args: object, **kwargs: object) -> float:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FitError("simulated")
        return real_fit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Surrogate, "fit", fail_once)
    engine = _engine()
    configs = _configs()
    assert engine.decide(configs, maximize=True).reason.startswith("fallback")
    # The very next decision fits again (it does not wait for the data to grow).
    assert engine.decide(configs, maximize=True).reason == "ei"
    assert engine.stats.scratch_fits == 1


def test_fit_rows_are_ordered_by_arrival_so_the_newest_observations_are_kept() -> None:
    """The rows the likelihood is fitted on keep the newest *observations*: here the oldest
    configuration was resumed last, so its steps are the newest."""
    import torch

    from optuna_dyhpo._gp import CurveTable

    x = torch.tensor([[0.1], [0.5], [0.9]], dtype=torch.float64)
    curves = [[0.1, 0.2, 0.3, 0.4], [0.5], [0.6]]
    recency = [[1, 2, 10, 11], [3], [4]]  # config 0's steps 3-4 arrived after the others
    table = CurveTable.build(x, curves, recency, 1.0, 10)
    rows, _ = table.training_rows()
    # Newest rows last: config 0's steps 3 and 4 (prefix lengths 2 and 3).
    assert rows.masks[-1].sum() == 3 and rows.masks[-2].sum() == 2
    assert torch.equal(rows.params[-1], x[0])


def test_incumbent_where_nobody_reached_the_budget_is_the_best_of_all_observations() -> None:
    import torch

    from optuna_dyhpo._gp import CurveTable

    x = torch.zeros((2, 1), dtype=torch.float64)
    table = CurveTable.build(x, [[0.1, 0.9, 0.2], [0.3]], [[1, 2, 3], [4]], 1.0, 10)
    inc = table.incumbents(torch.tensor([1, 2, 4]))
    best = float(table.curves.max())
    assert float(inc[1]) == best and float(inc[2]) == best and float(inc[0]) < best


def test_a_widened_range_takes_effect_for_fresh_candidates() -> None:
    wide = {"x": FloatDistribution(0.0, 10.0)}
    configs = _configs()
    configs[10] = Configuration(10, {"x": 5.0}, _curve(0.5, 2), [10], "paused", dict(wide))
    engine = _engine()
    seen = []
    for i in range(11, 20):  # new first steps keep arriving; fresh candidates are redrawn
        configs[i] = Configuration(i, {"x": 9.0}, [0.0], [i], "paused", dict(wide))
        d = engine.decide(configs, maximize=True)
        if d.kind == "fresh" and d.params is not None:
            seen.append(d.params["x"])
    from optuna_dyhpo._candidates import current_space

    assert current_space(list(configs.values()))["x"] == wide["x"]
    assert all(0.0 <= v <= 10.0 for v in seen)


def test_programming_errors_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    from optuna_dyhpo._gp import Surrogate

    def bug(*args: object, **kwargs: object) -> None:
        raise TypeError("a bug, not a numerical failure")

    monkeypatch.setattr(Surrogate, "predict", bug)
    with pytest.raises(TypeError, match="a bug"):
        _engine().decide(_configs(), maximize=True)


def test_thread_count_is_left_to_the_user_off_the_main_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch's thread count is process-wide: a decision on another thread (``n_jobs > 1``)
    never changes it; on the main thread it is lowered during the math and restored after."""
    import threading

    import torch

    from optuna_dyhpo._gp import Surrogate

    seen: list[tuple[str, int]] = []
    real_predict = Surrogate.predict

    def spy(self: Surrogate, inputs: object) -> object:
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real_predict(self, inputs)  # type: ignore[arg-type]

    monkeypatch.setattr(Surrogate, "predict", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        worker = threading.Thread(
            target=lambda: _engine().decide(_configs(), maximize=True), name="worker"
        )
        worker.start()
        worker.join()
        assert seen and {n for name, n in seen if name == "worker"} == {2}
        _engine().decide(_configs(), maximize=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cost_depends_on_observed_curves_not_on_max_budget() -> None:
    """With ``max_budget=10**6`` the surrogate's rows are as wide as the longest curve."""
    settings = EngineSettings(10**6, n_startup_configs=3, n_candidates=32)
    engine = DecisionEngine(settings, seed=0)
    d = engine.decide(_configs(), maximize=True)
    assert d.kind in ("fresh", "resume")
    cache = next(iter(next(iter(engine._caches.values())).values()))
    assert cache.surrogate is not None
    width = cache.surrogate._model.train_inputs[0].shape[1]  # d + 2 + 2 * longest curve
    assert width == 1 + 2 + 2 * 3


def test_diverged_configurations_inform_the_model() -> None:
    """Configurations that diverged at their first step are rows at the worst value: the model
    learns where training diverges instead of proposing it again and again."""
    configs = _configs()
    for i in range(10, 30):  # every x above 0.8 diverged at once
        x = 0.8 + 0.01 * (i - 10)
        configs[i] = Configuration(i, {"x": x}, [], [i], "diverged", dict(SPACE))
    engine = _engine()
    chosen = []
    for k in range(6):  # a few decisions on growing data (new fresh candidates each time)
        configs[100 + k] = Configuration(
            100 + k, {"x": 0.3}, [0.3 * 0.5], [100 + k], "paused", dict(SPACE)
        )
        d = engine.decide(configs, maximize=True)
        if d.kind == "fresh":
            assert d.params is not None
            chosen.append(d.params["x"])
    assert all(x < 0.8 for x in chosen)


def test_lookahead_rows_see_shorter_prefixes() -> None:
    import torch

    from optuna_dyhpo._gp import CurveTable

    x = torch.zeros((1, 1), dtype=torch.float64)
    table = CurveTable.build(x, [[0.1, 0.2, 0.3, 0.4, 0.5]], [[1, 2, 3, 4, 5]], 1.0, 10)
    one, _ = table.training_rows(lookahead=False)
    both, targets = table.training_rows(lookahead=True)
    assert one.n == 5 and both.n == 9  # one look-ahead row per observation at b >= 2
    seen = both.masks.sum(dim=1)
    budgets = torch.round(both.budgets * 10).long()
    assert torch.all(seen <= budgets - 1)
    assert torch.all(seen[5:] < budgets[5:] - 1)  # the look-ahead rows skip steps
    assert torch.allclose(both.prefix, seen / 10)
    # Scored at max_budget from the whole curve.
    rows = table.next_step_rows(torch.tensor([0]), target=10)
    assert float(rows.budgets[0]) == 1.0 and float(rows.masks.sum()) == 5


@pytest.mark.parametrize("maximize", [True, False])
def test_lookahead_decisions_are_valid(maximize: bool) -> None:
    configs = _configs(1.0 if maximize else -1.0)
    configs[0].status = "running"
    settings = EngineSettings(
        10, n_startup_configs=3, n_candidates=64, promotion_probability=0, acquisition="lookahead"
    )
    d = DecisionEngine(settings, seed=0).decide(configs, maximize=maximize, running=0)
    assert d.reason == "ei" and math.isfinite(d.log_ei)
    if d.kind != "fresh":
        assert d.config_id is not None and d.budget == configs[d.config_id].last_step + 1


@pytest.mark.parametrize("maximize", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rung_decisions_are_valid(maximize: bool, seed: int) -> None:
    configs = _configs(1.0 if maximize else -1.0)
    configs[0].status = "running"
    settings = EngineSettings(
        10, n_startup_configs=3, n_candidates=64, promotion_probability=0, acquisition="rung"
    )
    d = DecisionEngine(settings, seed=seed).decide(configs, maximize=maximize, running=0)
    assert d.reason == "ei" and math.isfinite(d.log_ei)
    if d.kind != "fresh":
        assert d.config_id is not None and d.budget == configs[d.config_id].last_step + 1


@pytest.mark.parametrize("maximize", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_horizon_scores_each_candidate_at_least_as_high_as_the_lookahead(
    monkeypatch: pytest.MonkeyPatch, maximize: bool, seed: int
) -> None:
    """The multi-horizon score is the best log EI over budgets that include ``max_budget``,
    against the same incumbent and with the same model: never below the look-ahead's score
    (up to rounding), and its decisions are valid steps."""
    import torch

    import optuna_dyhpo._engine as engine_module
    from optuna_dyhpo._scores import lookahead_scores

    scores: dict[str, torch.Tensor] = {}

    def spy(s, table, cache, idx, fresh_x):  # type: ignore[no-untyped-def]
        scores[s.acquisition] = lookahead_scores(s, table, cache, idx, fresh_x)
        return scores[s.acquisition]

    monkeypatch.setattr(engine_module, "lookahead_scores", spy)
    configs = _configs(1.0 if maximize else -1.0)
    configs[0].status = "running"
    configs[9].curve = configs[9].curve[:1]
    for acquisition in ("lookahead", "multi-horizon"):
        settings = _ei_only(acquisition)
        d = DecisionEngine(settings, seed=seed).decide(configs, maximize=maximize, running=0)
        assert d.reason == "ei" and math.isfinite(d.log_ei)
        if d.kind != "fresh":
            assert d.config_id is not None and d.budget == configs[d.config_id].last_step + 1
    assert scores["multi-horizon"].shape == scores["lookahead"].shape
    assert torch.all(scores["multi-horizon"] >= scores["lookahead"] - 1e-9)


def _ei_only(acquisition: str) -> EngineSettings:
    """Settings of a ten-step study scored by ``acquisition`` alone (no promotions)."""
    return EngineSettings(
        10,
        n_startup_configs=3,
        n_candidates=64,
        proposal="gp",
        promotion_probability=0,
        acquisition=acquisition,  # type: ignore[arg-type]
    )


def _spy_budgets(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Records the budgets of the rows predicted for paused configurations (``rows``) and of
    the incumbents compared with (``incumbents``) at the next decision."""
    from optuna_dyhpo._gp import CurveTable

    seen: dict[str, object] = {}
    original_rows, original_inc = CurveTable.next_step_rows, CurveTable.incumbents

    def rows(self: CurveTable, index, target=None):  # type: ignore[no-untyped-def]
        seen["rows"] = target.tolist()
        return original_rows(self, index, target)

    def incumbents(self: CurveTable, budgets, cumulative=False):  # type: ignore[no-untyped-def]
        seen["incumbents"] = budgets.tolist()
        return original_inc(self, budgets, cumulative)

    monkeypatch.setattr(CurveTable, "next_step_rows", rows)
    monkeypatch.setattr(CurveTable, "incumbents", incumbents)
    return seen


@pytest.mark.parametrize("horizon", [1, 3, 9])
def test_rung_judges_each_candidate_at_horizon_times_its_next_budget(
    monkeypatch: pytest.MonkeyPatch, horizon: int
) -> None:
    """The rows scored and the incumbents compared are at ``horizon * (last step + 1)``,
    capped at ``max_budget`` (fresh candidates: at ``horizon``)."""
    seen = _spy_budgets(monkeypatch)
    configs = _configs()
    configs[9].curve = _curve(0.95, 1)  # one configuration one step in, the others three
    settings = EngineSettings(
        10,
        n_startup_configs=3,
        n_candidates=8,
        proposal="gp",
        promotion_probability=0,
        acquisition="rung",
        horizon=horizon,
    )
    DecisionEngine(settings, seed=0).decide(configs, maximize=True)
    existing = [min(horizon * 4, 10)] * 9 + [min(horizon * 2, 10)]
    assert seen["rows"] == existing
    assert seen["incumbents"] == existing + [min(horizon, 10)] * 8


@pytest.mark.parametrize("long_ones", [0, 2, 3, 5])
def test_evidence_judges_each_candidate_at_the_budget_enough_configurations_reached(
    monkeypatch: pytest.MonkeyPatch, long_ones: int
) -> None:
    """``"evidence"``: a fresh candidate is judged at the largest budget that
    ``n_startup_configs`` configurations reached (against the best value observed there), a
    paused one at that budget or its next step if it is further."""
    seen = _spy_budgets(monkeypatch)
    configs = _configs()  # ten configurations, three steps each
    for c in list(configs.values())[:long_ones]:
        c.curve = _curve(0.8, 7)
    settings = EngineSettings(
        10,
        n_startup_configs=3,
        n_candidates=8,
        proposal="gp",
        promotion_probability=0,
        acquisition="evidence",
    )
    DecisionEngine(settings, seed=0).decide(configs, maximize=True)
    evidence = 7 if long_ones >= 3 else 3
    existing = [max(len(c.curve) + 1, evidence) for c in configs.values()]
    assert seen["rows"] == existing
    assert seen["incumbents"] == existing + [evidence] * 8


@pytest.mark.parametrize("acquisition", ["lookahead", "multi-horizon"])
def test_the_new_configuration_is_chosen_at_the_evidence_budget(
    monkeypatch: pytest.MonkeyPatch, acquisition: str
) -> None:
    """The look-ahead picks its one fresh candidate by the expected improvement at the
    evidence budget, against the best value observed there, and only that candidate is
    judged at its look-ahead budgets against the paused ones."""
    import torch

    import optuna_dyhpo._engine as engine_module
    from optuna_dyhpo._gp import CurveTable
    from optuna_dyhpo._gp import log_expected_improvement
    from optuna_dyhpo._scores import lookahead_scores

    calls: list[tuple[int, int]] = []
    scores: list[torch.Tensor] = []
    ranked: list[torch.Tensor] = []
    original = CurveTable.fresh_rows

    def fresh_rows(self: CurveTable, x, target=1):  # type: ignore[no-untyped-def]
        calls.append((int(x.shape[0]), int(target)))
        return original(self, x, target)

    def spy(s, table, cache, idx, fresh_x):  # type: ignore[no-untyped-def]
        out = lookahead_scores(s, table, cache, idx, fresh_x)
        mean, sd = cache.surrogate.predict(original(table, fresh_x, 3))
        at = table.incumbents(torch.tensor([3]))
        ranked.append(log_expected_improvement(mean, cache.spread * sd, at))
        scores.append(out)
        return out

    monkeypatch.setattr(CurveTable, "fresh_rows", fresh_rows)
    monkeypatch.setattr(engine_module, "lookahead_scores", spy)
    configs = _configs()  # three steps each: three configurations reached budget 3
    DecisionEngine(_ei_only(acquisition), seed=0).decide(configs, maximize=True)
    ahead = [10] if acquisition == "lookahead" else [1, 3, 9, 10]
    assert calls == [(64, 3)] + [(1, b) for b in ahead]
    fresh = scores[0][len(configs) :]
    assert int(torch.isfinite(fresh).sum()) == 1
    assert int(torch.argmax(fresh)) == int(torch.argmax(ranked[0]))


def _crossing(b: int, x: float) -> float:
    """Fast starters (x < 0.5) plateau at 0.5; slow starters end near 0.9."""
    return 0.5 * (1 - 0.3**b) if x < 0.5 else 0.9 * (1 - 0.85**b)


@pytest.mark.parametrize("maximize", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_lookahead_sees_that_slow_starters_end_higher(maximize: bool, seed: int) -> None:
    """Crossing curves: with look-ahead rows, the surrogate predicts from three steps that the
    slow starter ends higher at ``max_budget`` although the fast starter leads now; the
    next-step rule scores the fast starter higher."""
    import torch

    from optuna_dyhpo._gp import CurveTable
    from optuna_dyhpo._gp import Surrogate

    sign = 1.0 if maximize else -1.0
    xs = [0.05, 0.1, 0.15, 0.2, 0.3, 0.35, 0.6, 0.65, 0.7, 0.75, 0.85, 0.9]
    curves = [[sign * _crossing(b, x) for b in range(1, 11)] for x in xs]
    curves += [[sign * _crossing(b, x) for b in range(1, 4)] for x in (0.25, 0.8)]
    x = torch.tensor([[v] for v in [*xs, 0.25, 0.8]], dtype=torch.float64)
    recency = [[i * 20 + b for b in range(len(c))] for i, c in enumerate(curves)]
    table = CurveTable.build(x, curves, recency, sign, 10)
    model = Surrogate(1, seed=seed)
    rows, targets = table.training_rows(lookahead=True)
    model.fit(rows, targets, warm_start=False)
    final, _ = model.predict(table.next_step_rows(torch.tensor([12, 13]), target=10))
    assert float(final[1]) > float(final[0])  # the slow starter (x = 0.8) ends higher
    assert float(table.curves[12, 2]) > float(table.curves[13, 2])  # the fast one leads now


def test_stagnation_zero_turns_the_restart_rule_off() -> None:
    settings = EngineSettings(10, n_candidates=16, promotion_probability=0, stagnation=0.0)
    engine = DecisionEngine(settings, seed=0)
    configs = _configs()
    for k in range(3):  # no new best value for a while: still no fit from scratch
        configs[20 + k] = Configuration(
            20 + k, {"x": 0.01}, [0.0], [20 + k], "paused", dict(SPACE)
        )
        engine.decide(configs, maximize=True)
    assert engine.stats.scratch_fits == 1


def test_only_the_best_paused_configurations_of_each_length_are_scored() -> None:
    from optuna_dyhpo._candidates import best_per_length

    settings = EngineSettings(
        20, n_candidates=8, promotion_probability=0, max_paused=6, acquisition="next-step"
    )
    configs = _many(40, 3)
    for i in range(40, 60):  # shorter curves too
        x = (i - 39.5) / 20
        configs[i] = Configuration(
            i, {"x": x}, _curve(x, 1), [i], "paused", dict(SPACE), step_trials=[i]
        )
    allowed = {c.config_id for c in best_per_length(list(configs.values()), 6, 1.0)}
    for seed in range(3):
        decision = DecisionEngine(settings, seed=seed).decide(configs, maximize=True)
        assert decision.kind == "fresh" or decision.config_id in allowed
