"""Fast checks of the robustness suite (``benchmarks.families``).

Every family builds and has the property it claims (flat starts, crossing curves, heavy noise,
divergence, a minimised loss with overfitting, 1/7/30 hyperparameters, a conditional space), its
regret is 0 at the known optimum and never negative elsewhere, the real SGD problems start at
chance, and every method (DyHPO included) completes a tiny run on a diverging, a minimised and a
conditional family. Properties are checked over many sampled configurations and several
instances (seeds), not on one seeded trajectory.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState
import pytest

from benchmarks import report
from benchmarks import run
from benchmarks.families import CHANCE
from benchmarks.families import FAMILIES
from benchmarks.families import LOSS_CHANCE
from benchmarks.families import TOP
from benchmarks.families import CancerSGDProblem
from benchmarks.families import CurveFamily
from benchmarks.families import DigitsSGDProblem
from benchmarks.families import from_unit
from benchmarks.methods import METHODS
from benchmarks.methods import BudgetRecorder
from benchmarks.methods import RunContext
from benchmarks.problems import Learner
from benchmarks.problems import Problem
from benchmarks.problems import parse_problems
from benchmarks.timing import OverheadTimer

SEEDS = (0, 1, 2)
TINY_FAMILIES = ["family:diverge:e8", "family:loss-min:e8", "family:conditional:e8"]
TINY_METHODS = ["dyhpo", "tpe-hyperband", "random-hyperband", "tpe-sh", "random"]
TINY_BUDGET = 30

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _configs(problem: Problem, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random configurations, suggested define-by-run as an objective would."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [problem.suggest(study.ask()) for _ in range(n)]


def _curve(problem: CurveFamily, config: dict[str, Any], seed: int) -> np.ndarray:
    shape = problem.shape(config, seed)
    return np.array([shape.value(e) for e in range(1, problem.max_epochs + 1)])


def _observed(problem: Problem, config: dict[str, Any], seed: int) -> tuple[list, list]:
    learner = problem.new_learner(config, seed)
    observed, noiseless = [], []
    for epoch in range(1, problem.max_epochs + 1):
        observed.append(learner.train_epoch(epoch))
        noiseless.append(learner.noiseless_value)
    return observed, noiseless


def _valid(dist: BaseDistribution, value: Any) -> bool:
    return dist._contains(dist.to_internal_repr(value))


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------


def test_suite_builds_and_specs_round_trip() -> None:
    problems = parse_problems(["suite"])
    assert len(problems) == len(FAMILIES) + 2
    assert len({p.name for p in problems}) == len(problems)
    for p in problems:
        assert p.suite == "robustness"
        assert p.search_space()
        assert p.default_budget >= 10 * p.max_epochs
        (again,) = parse_problems([p.spec])
        assert again.name == p.name and again.max_epochs == p.max_epochs
        desc = json.loads(json.dumps(p.describe()))
        assert desc["direction"] in ("maximize", "minimize") and desc["hardness"]
    assert [p.name for p in parse_problems(["family:all"])] == [f"fam-{k}" for k in FAMILIES]
    (short,) = parse_problems(["family:crossing:e8"])
    assert (short.name, short.max_epochs, short.spec) == (
        "fam-crossing-e8",
        8,
        "family:crossing:e8",
    )
    with pytest.raises(ValueError):
        parse_problems(["family:nope"])


def test_dimensions_and_kinds() -> None:
    dims = {k: len(FAMILIES[k]().search_space()) for k in ("dim1", "dim7", "dim30")}
    assert dims == {"dim1": 1, "dim7": 7, "dim30": 30}
    space7 = FAMILIES["dim7"]().search_space().values()
    assert any(isinstance(d, CategoricalDistribution) for d in space7)
    assert any(isinstance(d, IntDistribution) for d in space7)
    assert any(isinstance(d, FloatDistribution) and d.log for d in space7)


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_regret_is_zero_at_the_known_optimum_and_never_negative(kind: str) -> None:
    problem = FAMILIES[kind]()
    space = problem.search_space()
    for seed in SEEDS:
        best = problem.optimum_config(seed)
        assert all(_valid(space[n], v) for n, v in best.items()), best
        observed, noiseless = _observed(problem, best, seed)
        assert problem.normalised_regret(noiseless[-1]) == pytest.approx(0.0, abs=1e-9)
        assert all(math.isfinite(v) for v in observed)
        # No sampled configuration, at any epoch, beats the closed-form optimum.
        for config in _configs(problem, 120, seed):
            curve = _curve(problem, config, seed)
            finite = curve[np.isfinite(curve)]
            regrets = [problem.normalised_regret(v) for v in finite]
            assert min(regrets, default=1.0) >= -1e-12, config
            if problem.direction == "maximize":  # An overfitting loss may exceed chance.
                assert max(regrets, default=0.0) <= 1.0 + 1e-9, config
    assert problem.normalised_regret(problem.start_value) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["noisy", "diverge", "loss-min"])
def test_observations_do_not_depend_on_pauses(kind: str) -> None:
    problem = FAMILIES[kind]()
    for config in _configs(problem, 5, 7):
        observed, _ = _observed(problem, config, 3)
        for epoch in (1, problem.max_epochs // 2, problem.max_epochs):
            fresh = problem.new_learner(dict(reversed(list(config.items()))), 3)
            np.testing.assert_equal(fresh.train_epoch(epoch), observed[epoch - 1])


# --------------------------------------------------------------------------------------------
# The property each family claims
# --------------------------------------------------------------------------------------------


def test_flat_start_is_flat_for_k_epochs_then_rises() -> None:
    problem = FAMILIES["flat-start"]()
    t = problem.max_epochs
    for seed in SEEDS:
        flats, early, final = [], [], []
        for i, config in enumerate(_configs(problem, 150, seed)):
            curve = _curve(problem, config, seed)
            k = int(np.argmax(curve != CHANCE)) if np.any(curve != CHANCE) else t
            flats.append(k)
            early.append(curve[2])
            final.append(curve[-1])
            if k < t - 2 and curve[-1] > CHANCE + 0.05:
                assert np.all(np.diff(curve[max(k - 1, 0) :]) > 0), "no rise after the flat phase"
            if i < 10 and k > 0:  # What an optimiser sees: chance plus a little noise.
                observed, _ = _observed(problem, config, seed)
                assert max(abs(v - CHANCE) for v in observed[:k]) < 6 * problem.noise_sd
        assert len(set(flats)) >= 10, "the flat length k should vary with the configuration"
        assert np.mean(np.array(flats) >= 5) > 0.3
        # The best configurations start late: epoch 3 says nothing about the final ranking.
        best = _curve(problem, problem.optimum_config(seed), seed)
        assert np.sum(best == CHANCE) >= 0.2 * t and best[-1] == pytest.approx(TOP)
        ranks_early, ranks_final = np.argsort(np.argsort(early)), np.argsort(np.argsort(final))
        assert abs(np.corrcoef(ranks_early, ranks_final)[0, 1]) < 0.3


def test_crossing_curves_cross() -> None:
    problem = FAMILIES["crossing"]()
    for seed in SEEDS:
        best = _curve(problem, problem.optimum_config(seed), seed)
        curves = np.array([_curve(problem, c, seed) for c in _configs(problem, 150, seed)])
        ahead_early = curves[:, 2] > best[2]
        assert ahead_early.mean() > 0.4, "fast starters should lead after 3 epochs"
        assert np.all(curves[:, -1] <= best[-1] + 1e-12)
        # Curves that lead at epoch 3 and end clearly lower than the optimum.
        assert np.any(ahead_early & (curves[:, -1] < best[-1] - 0.15))


def test_noisy_family_noise_is_as_large_as_the_gaps_between_good_configurations() -> None:
    problem = FAMILIES["noisy"]()
    residuals = []
    for seed in SEEDS:
        configs = _configs(problem, 200, seed)
        for config in configs[:40]:
            observed, noiseless = _observed(problem, config, seed)
            residuals += [o - n for o, n in zip(observed, noiseless, strict=True)]
        finals = np.sort([_curve(problem, c, seed)[-1] for c in configs])[::-1]
        # The ten best of 200 random configurations lie within a few noise sds of each other.
        assert finals[0] - finals[9] < 5 * problem.noise_sd
    assert np.std(residuals) == pytest.approx(problem.noise_sd, rel=0.15)
    assert problem.noise_sd >= 0.02


def test_diverge_family_emits_nan_and_lures() -> None:
    problem = FAMILIES["diverge"]()
    t = problem.max_epochs
    for seed in SEEDS:
        assert np.all(np.isfinite(_curve(problem, problem.optimum_config(seed), seed)))
        n_div, lures, finals = 0, [], []
        configs = _configs(problem, 200, seed)
        for config in configs:
            curve = _curve(problem, config, seed)
            bad = np.flatnonzero(~np.isfinite(curve))
            if bad.size == 0:
                finals.append(curve[-1])
                continue
            n_div += 1
            assert np.all(~np.isfinite(curve[bad[0] :])), "NaN must persist once diverged"
            if bad[0] >= t // 2:
                lures.append(np.nanmax(curve[: bad[0]]))
            if n_div == 1:  # The learner reports the NaN itself (what an optimiser sees).
                observed, _ = _observed(problem, config, seed)
                assert np.array_equal(np.isfinite(observed), np.isfinite(curve))
        assert 0.15 < n_div / len(configs) < 0.5
        # Some configurations look like the best ones until they diverge late in training.
        assert lures and max(lures) > np.quantile(finals, 0.9)


def test_loss_family_is_minimised_and_overfits() -> None:
    problem = FAMILIES["loss-min"]()
    assert problem.direction == "minimize" and problem.metric == "val_loss"
    assert problem.is_better(0.2, 0.3) and not problem.is_better(0.3, 0.2)
    for seed in SEEDS:
        best = _curve(problem, problem.optimum_config(seed), seed)
        assert best[0] > 1.0 and np.all(np.diff(best) < 0), "the optimum's loss decreases"
        assert best[-1] == pytest.approx(problem.best_value)
        overfit = 0
        for config in _configs(problem, 150, seed):
            curve = _curve(problem, config, seed)
            assert curve[0] <= LOSS_CHANCE + 1e-9
            overfit += curve.min() < curve[-1] - 0.05
        assert overfit >= 15, "weakly regularised configurations should overfit"


def test_conditional_family_params_differ_by_branch() -> None:
    problem = FAMILIES["conditional"]()
    seen: dict[str, set[frozenset[str]]] = {}
    for config in _configs(problem, 60, 5):
        opt = config["optimizer"]
        seen.setdefault(opt, set()).add(frozenset(config))
        assert set(config) == set(problem.branch_params(opt))
    assert set(seen) == {"sgd", "adam", "rmsprop"}
    sets = [next(iter(s)) for s in seen.values()]
    assert all(len(s) == 1 for s in seen.values()) and len(set(sets)) == 3
    assert set().union(*sets) == set(problem.search_space())
    for seed in SEEDS:
        best = problem.optimum_config(seed)
        assert best["optimizer"] == "sgd"
        best_curve = _curve(problem, best, seed)
        configs = _configs(problem, 150, seed)
        adam = [_curve(problem, c, seed) for c in configs if c["optimizer"] == "adam"]
        # The best branch learns slowest: some adam configurations lead it early on.
        assert any(c[2] > best_curve[2] for c in adam)


# --------------------------------------------------------------------------------------------
# Real SGD problems: chance-level first epochs, deterministic checkpoints
# --------------------------------------------------------------------------------------------


def _corner(problem: Problem, u_lr: float, u_init: float) -> dict[str, Any]:
    space = problem.search_space()
    return {
        "learning_rate": from_unit(space["learning_rate"], u_lr),
        "init_scale": from_unit(space["init_scale"], u_init),
        "weight_decay": from_unit(space["weight_decay"], 0.5),
    }


@pytest.mark.parametrize(
    ("problem_cls", "first_epoch_max"), [(DigitsSGDProblem, 0.3), (CancerSGDProblem, 0.64)]
)
def test_real_sgd_problems_start_at_chance(problem_cls: type, first_epoch_max: float) -> None:
    problem = problem_cls()
    for u_lr in (0.0, 0.5, 1.0):
        for u_init in (0.0, 1.0):
            for seed in (0, 1):
                acc = problem.new_learner(_corner(problem, u_lr, u_init), seed).train_epoch(1)
                assert acc <= first_epoch_max, (u_lr, u_init, seed, acc)
    # Yet the best corner learns: late epochs separate the configurations.
    learner = problem.new_learner(_corner(problem, 1.0, 1.0), 0)
    accs = [learner.train_epoch(e) for e in range(1, problem.max_epochs + 1)]
    assert max(accs) > 0.85
    assert problem.normalised_regret(max(accs)) == pytest.approx(1.0 - max(accs))


@pytest.mark.parametrize("problem_cls", [DigitsSGDProblem, CancerSGDProblem])
def test_real_sgd_problems_resume_exactly(problem_cls: type) -> None:
    problem = problem_cls()
    config = _corner(problem, 0.9, 0.9)
    learner = problem.new_learner(config, 4)
    straight = [learner.train_epoch(e) for e in range(1, 6)]
    first = problem.new_learner(config, 4)
    for e in range(1, 4):
        first.train_epoch(e)
    resumed = problem.new_learner(config, 4)
    resumed.load_state_dict(first.state_dict())
    assert [resumed.train_epoch(e) for e in (4, 5)] == straight[3:]


# --------------------------------------------------------------------------------------------
# Methods: NaN and direction handling, tiny runs of every method, the report section
# --------------------------------------------------------------------------------------------


class _AlwaysDiverges(Problem):
    """Learning rates above 0.01 return NaN from epoch 2 on; a minimised loss otherwise."""

    name = family = spec = "stub-diverge"
    metric = "val_loss"
    direction = "minimize"
    max_epochs = 4

    def search_space(self) -> dict[str, BaseDistribution]:
        return {"learning_rate": FloatDistribution(1e-4, 1.0, log=True)}

    def new_learner(self, config: dict[str, Any], seed: int) -> Learner:
        problem_lr = float(config["learning_rate"])

        class _L(Learner):
            def train_epoch(self, epoch: int) -> float:
                if problem_lr > 0.01 and epoch >= 2:
                    return math.nan
                return 1.0 / epoch + problem_lr

        return _L()

    def normalised_regret(self, best_value: float) -> float:
        return best_value


@pytest.mark.parametrize("method", [*TINY_METHODS, "dyhpo-rung", "dyhpo-mh", "dyhpo-ev"])
def test_diverged_trials_are_pruned_not_failed(method: str, tmp_path: Path) -> None:
    problem = _AlwaysDiverges()
    timer = OverheadTimer()
    ctx = RunContext(
        problem=problem,
        seed=0,
        budget=24,
        study_name="stub",
        storage=optuna.storages.InMemoryStorage(),
        work_dir=tmp_path,
        recorder=BudgetRecorder(problem, 24, timer),
        timer=timer,
    )
    stats = METHODS[method].run(ctx)
    study = optuna.load_study(study_name="stub", storage=ctx.storage)
    assert study.direction == StudyDirection.MINIMIZE
    trials = study.get_trials(deepcopy=False)
    assert all(t.state != TrialState.FAIL for t in trials)
    for t in trials:
        values = [t.intermediate_values[s] for s in sorted(t.intermediate_values)]
        if any(not math.isfinite(v) for v in values):
            assert t.state == TrialState.PRUNED and not math.isfinite(values[-1])
            assert all(math.isfinite(v) for v in values[:-1])
    assert stats["n_diverged_trials"] == sum(
        1 for t in trials if any(not math.isfinite(v) for v in t.intermediate_values.values())
    )
    inc = np.asarray(ctx.recorder.incumbent)
    assert len(inc) == 24 and np.all(np.diff(inc) <= 0), "a minimised incumbent never rises"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("suite")
    args = ["--problems", *TINY_FAMILIES, "--methods", *TINY_METHODS, "--seeds", "0"]
    args += ["--budget", str(TINY_BUDGET), "--out", str(out), "--no-progress"]
    rc = run.main(args)
    # The per-problem default budget (no --budget): 15 x max epochs for a synthetic family.
    rc_default = run.main(
        ["--problems", "family:dim1:e3", "--methods", "random-hyperband", "--seeds", "0"]
        + ["--out", str(out), "--no-progress"]
    )
    return {"out": out, "rc": rc, "rc_default": rc_default}


def test_every_method_completes_a_tiny_run(tiny: dict[str, Any]) -> None:
    out = tiny["out"]
    assert tiny["rc"] == 0 and tiny["rc_default"] == 0
    for problem in parse_problems(TINY_FAMILIES):
        sign = 1.0 if problem.direction == "maximize" else -1.0
        for method in TINY_METHODS:
            path = run.result_path(out, f"{problem.name}__{method}__b{TINY_BUDGET}__s0")
            res = json.loads(path.read_text())
            assert res["epochs_spent"] == res["epochs_from_storage"] == TINY_BUDGET
            inc = sign * np.asarray(res["trajectory"]["incumbent_value"])
            assert np.all(np.diff(inc) >= 0), (problem.name, method)
            assert res["problem"]["direction"] == problem.direction
            assert res["final"]["regret"] == pytest.approx(res["trajectory"]["regret"][-1])
            storage = JournalStorage(JournalFileBackend(str(out / res["storage"]["path"])))
            study = optuna.load_study(study_name=res["storage"]["study_name"], storage=storage)
            assert study.direction.name.lower() == problem.direction
    res = json.loads(run.result_path(out, "fam-dim1-e3__random-hyperband__b45__s0").read_text())
    assert res["budget_epochs"] == 45 == len(res["trajectory"]["regret"])


def test_report_has_a_robustness_section(tiny: dict[str, Any]) -> None:
    out = tiny["out"]
    md = out / "RESULTS.md"
    assert report.main(["--results", str(out / "results"), "--output", str(md)]) == 0
    text = md.read_text()
    assert "## Robustness suite" in text and "**Acceptance of `dyhpo`:" in text
    assert "mean rank over families" in text
    for problem in parse_problems(TINY_FAMILIES):
        assert f"### {problem.name}, budget {TINY_BUDGET} epochs" in text
        png = out / "plots" / f"suite_{problem.name}-b{TINY_BUDGET}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{png.name}" in text
