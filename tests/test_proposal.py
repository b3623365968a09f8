from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_dyhpo._decision import EngineSettings
from optuna_dyhpo._engine import DecisionEngine
from optuna_dyhpo._proposal import tpe_proposal
from optuna_dyhpo._search_space import SearchSpaceEncoder
from optuna_dyhpo._state import Configuration
from tests.logs import optuna_records

SPACE = {
    "x": FloatDistribution(0.0, 1.0),
    "n": IntDistribution(1, 5),
    "act": CategoricalDistribution(("relu", "tanh")),
}


def _config(
    i: int, x: float, length: int, status: str = "paused", sign: float = 1.0
) -> Configuration:
    curve = [sign * (1.0 - (x - 0.8) ** 2) * (1.0 - 0.5**b) for b in range(1, length + 1)]
    params = {"x": x, "n": 1 + i % 5, "act": ("relu", "tanh")[i % 2]}
    return Configuration(i, params, curve, [i], status, dict(SPACE))


def _study(sign: float = 1.0) -> list[Configuration]:
    """Forty configurations: those near x = 0.8 reached more steps and higher values."""
    xs = [(i + 0.5) / 40 for i in range(40)]
    return [_config(i, x, 10 if abs(x - 0.8) < 0.1 else 2, sign=sign) for i, x in enumerate(xs)]


def test_the_proposal_is_a_point_of_the_space_and_a_function_of_the_seed() -> None:
    encoder = SearchSpaceEncoder(SPACE)
    configs = _study()
    a = tpe_proposal(encoder, configs, 1.0, 10, seed=3)
    b = tpe_proposal(encoder, configs, 1.0, 10, seed=3)
    assert a.shape == (1, 3)
    assert bool(((a >= 0) & (a <= 1)).all())
    assert a.tolist() == b.tolist()
    params = encoder.decode(a[0].tolist())
    assert set(params) == set(SPACE) and params["act"] in ("relu", "tanh")


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_proposals_concentrate_where_the_curves_went_furthest_and_highest(sign: float) -> None:
    """Over many seeds TPE proposes near the good region (x ~ 0.8) far more often than a
    uniform draw would (20 % of the range lies within 0.1 of it), to maximise and minimise."""
    encoder = SearchSpaceEncoder(SPACE)
    configs = _study(sign)
    xs = [
        encoder.decode(tpe_proposal(encoder, configs, sign, 10, seed=s)[0].tolist())["x"]
        for s in range(40)
    ]
    near = sum(abs(x - 0.8) < 0.1 for x in xs) / len(xs)
    assert near > 0.5


def test_too_few_or_foreign_configurations_give_no_proposal() -> None:
    encoder = SearchSpaceEncoder(SPACE)
    assert tpe_proposal(encoder, [_config(0, 0.5, 3)], 1.0, 10, seed=0).shape == (0, 3)
    foreign = [
        Configuration(i, {"y": 0.1 * i}, [0.1, 0.2], [i], "paused", {"y": FloatDistribution(0, 1)})
        for i in range(5)
    ]
    assert tpe_proposal(encoder, foreign, 1.0, 10, seed=0).shape == (0, 3)


def test_a_diverged_configuration_counts_with_the_worst_value_at_its_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    added: list[optuna.trial.FrozenTrial] = []
    original = optuna.Study.add_trials

    def spy(self: optuna.Study, trials):  # type: ignore[no-untyped-def]
        added.extend(trials)
        return original(self, trials)

    monkeypatch.setattr(optuna.Study, "add_trials", spy)
    configs = [_config(0, 0.1, 3), _config(1, 0.8, 10), _config(2, 0.5, 2, status="diverged")]
    tpe_proposal(SearchSpaceEncoder(SPACE), configs, 1.0, 10, seed=0)
    by_x = {t.params["x"]: t for t in added}
    worst = min(v for c in configs for v in c.curve)
    assert by_x[0.5].state == optuna.trial.TrialState.PRUNED
    # TPE ranks a stopped trial by its last step and value: one step past the diverged
    # configuration's curve, at the worst value observed.
    assert by_x[0.5].intermediate_values == {3: worst}
    assert by_x[0.8].state == optuna.trial.TrialState.COMPLETE  # reached max_budget
    assert by_x[0.8].value == pytest.approx(configs[1].curve[-1])
    assert by_x[0.1].state == optuna.trial.TrialState.PRUNED
    assert by_x[0.1].intermediate_values == {3: configs[0].curve[-1]}


def test_the_engine_scores_the_tpe_proposal_as_its_new_candidate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one new configuration a decision scores (and would start) is TPE's proposal, and
    the scratch studies behind it leave no log line."""
    import optuna_dyhpo._engine as engine_module

    proposed = []
    scored = []
    original_scores = engine_module.lookahead_scores

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = tpe_proposal(*args, **kwargs)
        proposed.append(out)
        return out

    def scores(s, table, cache, idx, fresh_x):  # type: ignore[no-untyped-def]
        scored.append(fresh_x)
        return original_scores(s, table, cache, idx, fresh_x)

    monkeypatch.setattr(engine_module, "tpe_proposal", spy)
    monkeypatch.setattr(engine_module, "lookahead_scores", scores)
    configs = {c.config_id: c for c in _study()}
    encoder = SearchSpaceEncoder(SPACE)
    with optuna_records() as records:
        optuna.create_study()  # the handler sees Optuna's lines
        assert any("study created" in m for m in records.lines())
        records.records.clear()
        decisions = []
        for seed in range(3):
            settings = EngineSettings(
                10, promotion_probability=0, n_startup_configs=3, proposal="tpe"
            )
            decisions.append(DecisionEngine(settings, seed=seed).decide(configs, maximize=True))
    assert not [m for m in records.lines() if "study created" in m]
    for seed, d in enumerate(decisions):
        assert scored[seed].tolist() == encoder.encode_unit(proposed[seed]).tolist()
        if d.kind == "fresh":
            assert d.params == encoder.decode(proposed[seed][0].tolist())
    assert len(proposed) == len(scored) == 3


def test_a_study_with_tpe_proposals_starts_configurations_of_the_space(tmp_path: Path) -> None:
    from optuna_dyhpo import StopAfterEpochs
    from optuna_dyhpo import get_configurations
    from tests.synthetic import make_objective
    from tests.synthetic import make_study

    study = make_study(8, tmp_path=tmp_path, n_startup_configs=3, proposal="tpe")
    study.optimize(make_objective(checkpoint=True), callbacks=[StopAfterEpochs(40)])
    configs = get_configurations(study)
    assert sum(len(c.curve) for c in configs) >= 40
    # At most 8 epochs each: the proposals started at least two after the start-up design.
    assert len(configs) >= 5
    assert all(c.params.keys() == configs[0].params.keys() for c in configs)
