"""The HPO4DL-compatible Tuner, the epoch progress bar and the per-decision log lines."""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
import re
from typing import Any

import ConfigSpace as CS
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import Tuner
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from optuna_dyhpo._tuner import _is_active
from optuna_dyhpo._tuner import configspace_to_optuna


def hpo4dl_objective(
    configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
) -> list[dict[str, Any]]:
    """HPO4DL's README objective, plus a checkpoint that proves resumption continues."""
    x = configuration["x"]
    path = Path(checkpoint_path)
    if previous_epoch > 0:  # a resumed configuration finds its own state
        state = json.loads(path.read_text())
        assert state == {"x": x, "epoch": previous_epoch}, (state, x, previous_epoch)
    else:
        assert not path.exists()
    path.write_text(json.dumps({"x": x, "epoch": epoch}))
    return [{"epoch": i, "metric": (x - 2) ** 2} for i in range(previous_epoch + 1, epoch + 1)]


def make_tuner(out: Path, **kwargs: Any) -> Tuner:
    args: dict[str, Any] = {
        "objective_function": hpo4dl_objective,
        "configuration_space": CS.ConfigurationSpace({"x": (-5.0, 10.0)}),
        "minimize": True,
        "max_budget": 45,
        "optimizer": "dyhpo",
        "seed": 0,
        "max_epochs": 27,
        "num_configurations": 1000,
        "output_path": out,
    }
    args.update(kwargs)
    return Tuner(**args)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def minimized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tuner, dict[str, Any]]:
    tuner = make_tuner(tmp_path_factory.mktemp("tuner-min"))
    return tuner, tuner.run()


# --------------------------------------------------------------------------- ConfigSpace
def test_configspace_mapping_of_every_supported_type() -> None:
    cs = CS.ConfigurationSpace(seed=0)
    cs.add(
        [
            CS.UniformFloatHyperparameter("lr", 1e-4, 1e-1, log=True),
            CS.UniformFloatHyperparameter("dropout", 0.0, 0.5),
            CS.UniformIntegerHyperparameter("width", 8, 256, log=True),
            CS.UniformIntegerHyperparameter("layers", 1, 4),
            CS.CategoricalHyperparameter("opt", ["sgd", "adam"]),
            CS.OrdinalHyperparameter("batch", [16, 64, 256]),
            CS.Constant("act", "relu"),
        ]
    )
    params = configspace_to_optuna(cs)
    assert params["lr"].distribution == FloatDistribution(1e-4, 1e-1, log=True)
    assert params["dropout"].distribution == FloatDistribution(0.0, 0.5)
    assert params["width"].distribution == IntDistribution(8, 256, log=True)
    assert params["layers"].distribution == IntDistribution(1, 4)
    assert params["opt"].distribution == CategoricalDistribution(("sgd", "adam"))
    # Ordinal: an ordered index (so the surrogate sees the order), mapped back to the value.
    assert params["batch"].distribution == IntDistribution(0, 2)
    assert params["batch"].values == (16, 64, 256)
    assert params["act"].distribution is None and params["act"].constant == "relu"

    trial = optuna.create_study().ask()
    values = {name: p.suggest(trial) for name, p in params.items()}
    assert values["batch"] in (16, 64, 256) and trial.params["batch"] in (0, 1, 2)
    assert values["batch"] == (16, 64, 256)[trial.params["batch"]]
    assert values["act"] == "relu" and "act" not in trial.params
    assert isinstance(values["width"], int) and 8 <= values["width"] <= 256


def test_conditions_suggest_only_active_hyperparameters(tmp_path: Path) -> None:
    cs = CS.ConfigurationSpace(seed=0)
    opt = CS.CategoricalHyperparameter("opt", ["sgd", "adam"])
    momentum = CS.UniformFloatHyperparameter("momentum", 0.0, 0.99)
    nesterov = CS.CategoricalHyperparameter("nesterov", [True, False])
    lr = CS.UniformFloatHyperparameter("lr", 1e-3, 1.0, log=True)
    cs.add([opt, momentum, nesterov, lr])
    cs.add(
        [
            CS.EqualsCondition(momentum, opt, "sgd"),
            CS.GreaterThanCondition(nesterov, momentum, 0.5),  # a grandchild of opt
        ]
    )
    seen: list[dict[str, Any]] = []

    def objective(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        seen.append(dict(configuration))
        return {"epoch": epoch, "metric": configuration["lr"] * epoch}

    tuner = Tuner(objective, cs, max_budget=16, max_epochs=2, seed=1, output_path=tmp_path)
    incumbent = tuner.run()
    assert {c["opt"] for c in seen} == {"sgd", "adam"}
    for c in seen:
        # Every configuration ConfigSpace accepts is valid (raises on inactive values).
        CS.Configuration(cs, values=c).check_valid_configuration()
        assert ("momentum" in c) == (c["opt"] == "sgd")
        assert ("nesterov" in c) == ("momentum" in c and c["momentum"] > 0.5)
    assert any("nesterov" in c for c in seen)
    for t in tuner.study.trials:
        assert ("momentum" in t.params) == (t.params["opt"] == "sgd")
    CS.Configuration(cs, values=incumbent["configuration"]).check_valid_configuration()
    rows = read_rows(tuner.results_path)
    assert list(rows[0])[-4:] == list(cs.keys())  # ConfigSpace's (topological) order
    assert all((r["momentum"] == "") == (r["opt"] == "adam") for r in rows)


def test_conjunctions_decide_which_hyperparameters_are_active() -> None:
    cs = CS.ConfigurationSpace(seed=0)
    a = CS.CategoricalHyperparameter("a", ["x", "y"])
    b = CS.UniformFloatHyperparameter("b", 0.0, 1.0)
    c = CS.UniformIntegerHyperparameter("c", 1, 5)
    d = CS.UniformFloatHyperparameter("d", 0.0, 1.0)
    e = CS.UniformFloatHyperparameter("e", 0.0, 1.0)
    cs.add([a, b, c, d, e])
    cs.add(CS.EqualsCondition(b, a, "x"))
    cs.add(CS.OrConjunction(CS.GreaterThanCondition(d, b, 0.5), CS.InCondition(d, a, ["y"])))
    cs.add(CS.AndConjunction(CS.EqualsCondition(e, a, "x"), CS.GreaterThanCondition(e, c, 2)))
    assert _is_active(cs, "d", {"a": "y", "c": 1})  # OR: b is inactive, but a is "y"
    assert not _is_active(cs, "d", {"a": "x", "b": 0.2, "c": 1})
    assert _is_active(cs, "d", {"a": "x", "b": 0.7, "c": 1})
    assert _is_active(cs, "e", {"a": "x", "b": 0.7, "c": 3})
    assert not _is_active(cs, "e", {"a": "x", "b": 0.7, "c": 2})
    assert not _is_active(cs, "e", {"a": "y", "c": 5})
    # The same answers as ConfigSpace itself, on every configuration it samples.
    params = configspace_to_optuna(cs)
    for config in cs.sample_configuration(40):
        values = dict(config)
        active: dict[str, Any] = {}
        for name in params:
            if _is_active(cs, name, active):
                active[name] = values[name]
        assert active == values


def test_unsupported_configspace_features_are_named() -> None:
    cs = CS.ConfigurationSpace({"a": (0, 10), "b": ["x", "y"]})
    cs.add(
        CS.ForbiddenAndConjunction(
            CS.ForbiddenEqualsClause(cs["a"], 3), CS.ForbiddenEqualsClause(cs["b"], "x")
        )
    )
    with pytest.raises(ValueError, match="forbidden clauses"):
        configspace_to_optuna(cs)
    normal = CS.ConfigurationSpace()
    normal.add(CS.NormalFloatHyperparameter("n", mu=0.0, sigma=1.0, lower=-3.0, upper=3.0))
    with pytest.raises(ValueError, match="'n' is a NormalFloatHyperparameter"):
        configspace_to_optuna(normal)
    with pytest.raises(ValueError, match="must be a ConfigSpace.ConfigurationSpace.*dict"):
        configspace_to_optuna({"x": (0.0, 1.0)})


# --------------------------------------------------------------------------- the README example
def test_hpo4dl_example_minimize_finds_x_near_2(minimized: tuple[Tuner, dict[str, Any]]) -> None:
    tuner, incumbent = minimized
    assert set(incumbent) == {"configuration", "configuration_id", "trial", "epoch", "metric"}
    x = incumbent["configuration"]["x"]
    assert abs(x - 2) < 0.1, incumbent
    assert incumbent["metric"] == pytest.approx((x - 2) ** 2)
    assert tuner.study.direction == optuna.study.StudyDirection.MINIMIZE
    # DyHPO raced: some configuration was paused and resumed in a later trial.
    assert any(len(c.trial_numbers) > 1 for c in get_configurations(tuner.study))


def test_results_csv_has_one_row_per_epoch_spent(minimized: tuple[Tuner, dict[str, Any]]) -> None:
    tuner, incumbent = minimized
    rows = read_rows(tuner.results_path)
    assert list(rows[0]) == [
        "configuration_id",
        "trial",
        "epoch",
        "metric",
        "best_metric",
        "time",
        "x",
    ]
    # The budget is exact: 45 epochs, counted once per epoch even across resumptions.
    assert len(rows) == epochs_spent(tuner.study) == 45
    study = optuna.load_study(study_name="dyhpo", storage=tuner.storage_url)
    trials = {t.number: t for t in study.trials}
    for r in rows:
        t = trials[int(r["trial"])]
        assert t.user_attrs["dyhpo_config"] == int(r["configuration_id"])
        assert t.intermediate_values[int(r["epoch"])] == float(r["metric"])
        assert float(r["x"]) == t.params["x"]
    # Each configuration's epochs are 1, 2, 3, ... in the order they were trained.
    by_config: dict[int, list[int]] = {}
    for r in rows:
        by_config.setdefault(int(r["configuration_id"]), []).append(int(r["epoch"]))
    assert all(e == list(range(1, len(e) + 1)) for e in by_config.values())
    best = [float(r["best_metric"]) for r in rows]
    assert best == sorted(best, reverse=True) and best[-1] == incumbent["metric"]


def test_best_checkpoint_is_kept_and_the_rest_removed(
    minimized: tuple[Tuner, dict[str, Any]],
) -> None:
    tuner, incumbent = minimized
    state = json.loads((tuner.output_path / "best_checkpoint" / "last").read_text())
    assert state["x"] == incumbent["configuration"]["x"]
    last = max(t.last_step for t in get_configurations(tuner.study)
               if t.config_id == incumbent["configuration_id"])  # fmt: skip
    assert state["epoch"] == last  # the configuration's latest state
    assert not (tuner.output_path / "checkpoints").exists()
    assert (tuner.output_path / "dyhpo.db").is_file()


def test_keep_checkpoints_keeps_every_configuration_directory(tmp_path: Path) -> None:
    tuner = make_tuner(tmp_path, max_budget=12, max_epochs=3, keep_checkpoints=True)
    tuner.run()
    configs = get_configurations(tuner.study)
    dirs = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert dirs == sorted(f"config_{c.config_id}" for c in configs)
    for c in configs:
        state = json.loads((tuner.checkpoint_dir(c.config_id) / "last").read_text())
        assert state == {"x": c.params["x"], "epoch": c.last_step}


def test_maximize_finds_the_other_end(tmp_path: Path) -> None:
    tuner = make_tuner(tmp_path, minimize=False, max_budget=30, seed=1)
    incumbent = tuner.run()
    # (x - 2)^2 on [-5, 10] is largest at x = 10 (64; x = -5 gives 49).
    assert incumbent["configuration"]["x"] > 9.5, incumbent
    assert incumbent["metric"] > 56
    assert tuner.study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_running_again_starts_afresh(tmp_path: Path) -> None:
    make_tuner(tmp_path, max_budget=6, max_epochs=2).run()
    tuner = make_tuner(tmp_path, max_budget=4, max_epochs=2)
    tuner.run()
    assert len(read_rows(tuner.results_path)) == 4
    assert optuna.get_all_study_names(tuner.storage_url) == ["dyhpo"]
    assert epochs_spent(tuner.study) == 4


# --------------------------------------------------------------------------- objective results
def test_objective_may_return_a_dict_or_a_list(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []

    def as_dict(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        calls.append((previous_epoch, epoch))
        return {"epoch": epoch, "metric": -abs(configuration["x"] - 1) + 0.01 * epoch}

    cs = CS.ConfigurationSpace({"x": (0.0, 3.0)})
    tuner = Tuner(as_dict, cs, max_budget=14, max_epochs=4, seed=0, output_path=tmp_path / "d")
    incumbent = tuner.run()
    assert len(calls) == 14 and all(e == p + 1 for p, e in calls)
    assert len(read_rows(tuner.results_path)) == 14
    assert incumbent["metric"] == max(
        v for t in tuner.study.trials for v in t.intermediate_values.values()
    )

    def as_list(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> list[dict[str, Any]]:
        return [{"epoch": epoch, "metric": -abs(configuration["x"] - 1) + 0.01 * epoch}]

    other = Tuner(as_list, cs, max_budget=14, max_epochs=4, seed=0, output_path=tmp_path / "l")
    assert other.run() == incumbent  # same seed, same metrics: the same race


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (0.5, r"must return a dict \{'epoch': int, 'metric': float\}"),
        ({"metric": 0.5}, "must return a dict"),
        (
            {"epoch": 2, "metric": 0.5},
            r"must return the metric of epoch 1 .* returned epochs \[2\]",
        ),
        ({"epoch": 1, "metric": "high"}, "'metric' must be a number"),
        ({"epoch": 1.0, "metric": 0.5}, "'epoch' must be an int"),
    ],
)
def test_bad_objective_results_are_explained(tmp_path: Path, result: Any, message: str) -> None:
    def objective(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> Any:
        return result

    cs = CS.ConfigurationSpace({"x": (0.0, 1.0)})
    tuner = Tuner(objective, cs, max_budget=3, max_epochs=2, seed=0, output_path=tmp_path)
    with pytest.raises(ValueError, match=message):
        tuner.run()


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer": "smac"}, "`optimizer` must be one of 'dyhpo', 'hyperband', but got 'smac'"),
        ({"max_budget": 0}, r"`max_budget` must be an integer >= 1 .* but got 0 \(int\)"),
        ({"max_budget": None}, r"`max_budget` must be an integer >= 1 .*unlimited.* got None"),
        ({"max_epochs": 2.5}, r"`max_epochs` must be an integer >= 1, but got 2.5 \(float\)"),
        ({"num_configurations": 0}, "`num_configurations` must be an integer >= 1, but got 0"),
        ({"seed": -1}, r"`seed` must be an integer >= 0 or None, but got -1"),
        ({"minimize": "yes"}, "`minimize` must be True or False, but got 'yes'"),
        ({"output_path": ""}, "`output_path` must be a non-empty str or pathlib.Path"),
        ({"objective_function": 3}, "`objective_function` must be callable"),
        ({"configuration_space": {"x": (0.0, 1.0)}}, "`configuration_space` must be a Config"),
    ],
)
def test_arguments_are_validated(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_tuner(tmp_path, **kwargs)
    assert not (tmp_path / "dyhpo.db").exists()  # nothing is written before run()


def test_hyperband_optimizer_runs_with_optuna_hyperband(tmp_path: Path) -> None:
    tuner = make_tuner(tmp_path, optimizer="hyperband", max_budget=40, max_epochs=9)
    incumbent = tuner.run()
    assert isinstance(tuner.study.pruner, optuna.pruners.HyperbandPruner)
    assert isinstance(tuner.study.sampler, optuna.samplers.RandomSampler)
    rows = read_rows(tuner.results_path)
    assert len(rows) == 40
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in tuner.study.trials[:-1])
    assert incumbent["metric"] == min(float(r["metric"]) for r in rows)


# --------------------------------------------------------------------------- progress bar, logs
def curve_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    value = math.nan
    for epoch in TrialResume(trial).steps():
        value = x * (1.0 - 0.5**epoch)
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_progress_bar_shows_epochs_of_the_budget(capfd: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study(
        direction="maximize", sampler=DyHPOSampler(max_budget=4, seed=0), pruner=DyHPOPruner()
    )
    study.optimize(curve_objective, callbacks=[StopAfterEpochs(12)], show_progress_bar=True)
    err = capfd.readouterr().err
    counts = [int(n) for n in re.findall(r"\b(\d+)/12 \[", err)]
    assert counts, err
    assert counts[-1] == 12 and counts == sorted(counts)
    assert "epoch" in err and "best value" in err
    assert "Progress bar won't be displayed" not in err

    quiet = optuna.create_study(
        direction="maximize", sampler=DyHPOSampler(max_budget=4, seed=0), pruner=DyHPOPruner()
    )
    quiet.optimize(curve_objective, callbacks=[StopAfterEpochs(6)])
    assert "/6 [" not in capfd.readouterr().err


def test_one_info_line_per_decision() -> None:
    handler = _Records()
    logger = logging.getLogger("optuna.dyhpo")
    logger.addHandler(handler)
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        study = optuna.create_study(
            direction="maximize", sampler=DyHPOSampler(max_budget=4, seed=0), pruner=DyHPOPruner()
        )
        # Run until a paused configuration was resumed: DyHPO's promotions guarantee one
        # (after at most `collapse_window` one-step configurations), whatever the trajectory.
        calls = 0
        for budget in range(16, 200, 8):
            calls += 1
            study.optimize(curve_objective, callbacks=[StopAfterEpochs(budget)])
            if any("dyhpo_continues_trial" in t.user_attrs for t in study.trials):
                break
    finally:
        optuna.logging.set_verbosity(previous)
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in handler.records if r.levelno == logging.INFO]
    assert all(r.name.startswith("optuna.dyhpo.") for r in handler.records)

    def count(pattern: str) -> int:
        return sum(bool(re.search(pattern, line)) for line in lines)

    trials = study.trials
    starts = [t for t in trials if t.user_attrs.get("dyhpo_continues_trial") is None]
    resumes = [t for t in trials if t.user_attrs.get("dyhpo_continues_trial") is not None]
    assert resumes, "the race should resume a paused configuration"
    # The sampler decides once per trial: a new configuration or a resumption.
    assert count(r"^Trial \d+ starts a new configuration") == len(starts)
    assert count(r"^Trial \d+ resumes configuration \d+ at step \d+") == len(resumes)
    # The pruner decides after every epoch before max_budget: continue or pause.
    own_epochs_before_max = sum(
        1
        for t in trials
        for step in t.intermediate_values
        if step >= t.user_attrs["dyhpo_start_epoch"] and step < 4
    )
    continues = count(r"^Configuration \d+ \(trial \d+\) continues to step \d+")
    paused = count(r"^Paused configuration \d+ of trial \d+ at step \d+")
    assert paused == sum(t.user_attrs.get("dyhpo_status") == "paused" for t in trials)
    assert continues + paused == own_epochs_before_max
    assert count(r"^Spent \d+ of \d+ epochs: stopping the study") == calls
