"""The HPO4DL-compatible Tuner, the epoch progress bar and the per-decision log lines.

Runtime: every Tuner run here but one stays within DyHPO's initial design (at most 5 epochs) or
uses the model-free ``"hyperband"`` optimizer, so no surrogate is fitted; only the race with a
real torch objective (``torch_race``) and ``test_one_info_line_per_decision`` fit DyHPO's model.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
from pathlib import Path
import re
from typing import Any
import warnings

import ConfigSpace as CS
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
import pytest

from optuna_dyhpo import DyHPOPruner
from optuna_dyhpo import DyHPOSampler
from optuna_dyhpo import DyHPOWarning
from optuna_dyhpo import StopAfterEpochs
from optuna_dyhpo import TrialResume
from optuna_dyhpo import Tuner
from optuna_dyhpo import epochs_spent
from optuna_dyhpo import get_configurations
from optuna_dyhpo._tuner_space import configspace_to_optuna
from optuna_dyhpo._tuner_space import is_active

EXPERIMENT = re.compile(r"^experiment_\d{8}-\d{6}(_\d+)?$")
HPO4DL_COLUMNS = [
    "",
    "epoch",
    "metric",
    "configuration_id",
    "configuration",
    "time",
    "overhead_time",
    "total_time",
    "best_metric",
    "trial",
]


def objective_function(
    configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
) -> list[dict[str, Any]]:
    """HPO4DL's README objective, verbatim."""
    x = configuration["x"]
    evaluated_info = [
        {"epoch": i, "metric": (x - 2) ** 2} for i in range(previous_epoch + 1, epoch + 1)
    ]
    return evaluated_info


def readme_tuner(out: Path, max_budget: int = 5, **kwargs: Any) -> Tuner:
    """HPO4DL's README call (its ``max_budget=1000`` lowered to stay in the initial design)."""
    args: dict[str, Any] = {
        "objective_function": objective_function,
        "configuration_space": CS.ConfigurationSpace({"x": (-5.0, 10.0)}),
        "minimize": True,
        "max_budget": max_budget,
        "optimizer": "dyhpo",
        "seed": 0,
        "max_epochs": 27,
        "num_configurations": 1000,
        "output_path": out,
    }
    return Tuner(**{**args, **kwargs})


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def header(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return next(csv.reader(f))


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


def conditional_space() -> CS.ConfigurationSpace:
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
    return cs


@pytest.mark.parametrize(("optimizer", "budget"), [("dyhpo", 5), ("hyperband", 48)])
def test_conditions_suggest_only_active_hyperparameters(
    tmp_path: Path, optimizer: str, budget: int
) -> None:
    cs = conditional_space()
    seen: list[dict[str, Any]] = []

    def objective(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        seen.append(dict(configuration))
        return {"epoch": epoch, "metric": configuration["lr"] * epoch}

    tuner = Tuner(objective, cs, 1, budget, tmp_path, optimizer, seed=1)
    incumbent = tuner.run()
    for c in seen:
        # Every configuration ConfigSpace accepts is valid (raises on inactive values).
        CS.Configuration(cs, values=c).check_valid_configuration()
        assert ("momentum" in c) == (c["opt"] == "sgd")
        assert ("nesterov" in c) == ("momentum" in c and c["momentum"] > 0.5)
    if budget >= 48:  # 48 random configurations: every branch shows up (a miss: p < 2e-6)
        assert {c["opt"] for c in seen} == {"sgd", "adam"}
        assert any("nesterov" in c for c in seen)
    for t in tuner.study.trials:
        assert ("momentum" in t.params) == (t.params["opt"] == "sgd")
    CS.Configuration(cs, values=incumbent["configuration"]).check_valid_configuration()
    rows = read_rows(tuner.results_path)
    assert [ast.literal_eval(r["configuration"]) for r in rows] == seen


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
    assert is_active(cs, "d", {"a": "y", "c": 1})  # OR: b is inactive, but a is "y"
    assert not is_active(cs, "d", {"a": "x", "b": 0.2, "c": 1})
    assert is_active(cs, "d", {"a": "x", "b": 0.7, "c": 1})
    assert is_active(cs, "e", {"a": "x", "b": 0.7, "c": 3})
    assert not is_active(cs, "e", {"a": "x", "b": 0.7, "c": 2})
    assert not is_active(cs, "e", {"a": "y", "c": 5})
    # The same answers as ConfigSpace itself, on every configuration it samples.
    params = configspace_to_optuna(cs)
    for config in cs.sample_configuration(40):
        values = dict(config)
        active: dict[str, Any] = {}
        for name in params:
            if is_active(cs, name, active):
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


def test_configuration_space_json_has_hpo4dl_fields(tmp_path: Path) -> None:
    cs = CS.ConfigurationSpace(seed=0)
    cs.add(
        [
            CS.UniformFloatHyperparameter("lr", 1e-4, 1e-1, log=True, default_value=1e-2),
            CS.CategoricalHyperparameter("opt", ["sgd", "adam"]),
            CS.OrdinalHyperparameter("batch", [16, 64]),
            CS.Constant("act", "relu"),
        ]
    )
    tuner = Tuner(objective_function, cs, 3, 2, tmp_path)
    records = json.loads((tuner.output_path / "configuration_space.json").read_text())
    assert [r["name"] for r in records] == list(cs)  # ConfigSpace's order
    assert sorted(records, key=lambda r: ["lr", "opt", "batch", "act"].index(r["name"])) == [
        {
            "name": "lr",
            "type": "UniformFloatHyperparameter",
            "default": pytest.approx(1e-2),
            "values": None,
            "bounds": [pytest.approx(1e-4), pytest.approx(1e-1)],
            "log": True,
        },
        {
            "name": "opt",
            "type": "CategoricalHyperparameter",
            "default": "sgd",
            "values": ["sgd", "adam"],
            "bounds": None,
            "log": None,
        },
        {
            "name": "batch",
            "type": "OrdinalHyperparameter",
            "default": 16,
            "values": [16, 64],
            "bounds": None,
            "log": None,
        },
        {
            "name": "act",
            "type": "Constant",
            "default": "relu",
            "values": None,
            "bounds": None,
            "log": None,
        },
    ]


# --------------------------------------------------------------------------- HPO4DL's API
def test_readme_example_writes_hpo4dl_layout(tmp_path: Path) -> None:
    tuner = readme_tuner(tmp_path)
    assert EXPERIMENT.match(tuner.experiment_name)
    assert tuner.output_path == tmp_path / tuner.experiment_name and tuner.output_path.is_dir()
    incumbent = tuner.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == [tuner.experiment_name]
    assert sorted(p.name for p in tuner.output_path.iterdir()) == [
        "checkpoints",  # the README objective saves nothing: an empty copy of its folder
        "configuration_space.json",
        "dyhpo.db",
        "hpo4dl_results.csv",
    ]
    assert not any((tuner.output_path / "checkpoints").iterdir())
    assert header(tuner.results_path) == HPO4DL_COLUMNS
    assert set(incumbent) == set(HPO4DL_COLUMNS[1:])
    study = optuna.load_study(study_name="dyhpo", storage=tuner.storage_url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert epochs_spent(study) == 5


def test_hpo4dl_positional_argument_order(tmp_path: Path) -> None:
    # hpo4dl.tuner.Tuner(objective_function, configuration_space, max_epochs, max_budget,
    #                    output_path, optimizer, minimize, num_configurations, seed, device,
    #                    storage_path)
    space = CS.ConfigurationSpace({"x": (-5.0, 10.0)})
    tuner = Tuner(
        objective_function, space, 27, 5, tmp_path / "o", "dyhpo", True, 1000, 0, "cpu", tmp_path
    )
    assert (tuner.max_epochs, tuner.max_budget, tuner.optimizer) == (27, 5, "dyhpo")
    assert (tuner.minimize, tuner.num_configurations, tuner.seed) == (True, 1000, 0)
    assert tuner.device == "cpu"
    assert tuner.output_path.parent == tmp_path / "o"
    assert tuner.storage_path == tmp_path / "hpo4dl"
    incumbent = tuner.run()
    rows = read_rows(tuner.results_path)
    assert len(rows) == 5 and tuner.study.direction == optuna.study.StudyDirection.MINIMIZE
    assert incumbent["metric"] == min(float(r["metric"]) for r in rows)
    # The order optuna-dyhpo had before (minimize, max_budget, optimizer, seed, max_epochs,
    # num_configurations, output_path) is rejected, naming the HPO4DL parameter it hits.
    with pytest.raises(ValueError, match=r"`max_epochs` must be an integer >= 1, but got True"):
        Tuner(objective_function, space, True, 5, "dyhpo", 0, 27, 1000, tmp_path / "old")


def test_device_is_accepted_and_ignored_with_a_warning(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert readme_tuner(tmp_path, device=None).device is None
        assert readme_tuner(tmp_path, device="cpu").device == "cpu"
        assert readme_tuner(tmp_path, device=torch.device("cpu")).device == "cpu"
        assert readme_tuner(tmp_path, device="cpu:0").device == "cpu:0"
    with pytest.warns(DyHPOWarning, match=r"`device='cuda'` is ignored: .* runs on the CPU"):
        tuner = readme_tuner(tmp_path, device="cuda", max_budget=2)
    assert tuner.run()["metric"] >= 0  # runs all the same
    with pytest.raises(ValueError, match=r"`device` must be None, a str .* but got 0 \(int\)"):
        readme_tuner(tmp_path, device=0)


def test_storage_path_holds_the_configuration_folders(tmp_path: Path) -> None:
    storage = tmp_path / "scratch"
    paths: list[str] = []

    def objective(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        assert isinstance(checkpoint_path, str) and Path(checkpoint_path).parent.is_dir()
        Path(checkpoint_path).write_text(str(configuration["x"]))
        paths.append(checkpoint_path)
        return {"epoch": epoch, "metric": configuration["x"]}

    space = CS.ConfigurationSpace({"x": (0.0, 1.0)})
    tuner = Tuner(objective, space, 3, 4, tmp_path / "out", storage_path=storage)
    assert tuner.storage_path == storage / "hpo4dl"
    incumbent = tuner.run()
    # HPO4DL's layout: <storage_path>/hpo4dl/<experiment>/trial_<configuration_id>/last
    for p, row in zip(paths, read_rows(tuner.results_path), strict=True):
        rel = Path(p).relative_to(storage)
        assert rel.parts == ("hpo4dl", tuner.experiment_name, f"trial_{row['configuration_id']}",
                             "last")  # fmt: skip
    # Deleted at the end, as HPO4DL does; the best configuration's folder is copied first.
    assert not storage.exists() or not any(storage.rglob("*"))
    best = tuner.output_path / "checkpoints" / "last"
    assert float(best.read_text()) == incumbent["configuration"]["x"]
    assert not (tmp_path / "out" / "hpo4dl").exists()


def test_every_run_gets_its_own_experiment_folder(tmp_path: Path) -> None:
    first = readme_tuner(tmp_path, max_budget=3)
    first.run()
    before = {p: p.read_bytes() for p in first.output_path.rglob("*") if p.is_file()}
    second = readme_tuner(tmp_path, max_budget=2)  # the same second, most likely
    assert second.output_path != first.output_path
    assert EXPERIMENT.match(second.experiment_name)
    second.run()
    # Nothing of the first experiment changed; each has its own study and results.
    assert {p: p.read_bytes() for p in first.output_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [first.experiment_name, second.experiment_name]
    )
    assert len(read_rows(first.results_path)) == 3 and len(read_rows(second.results_path)) == 2
    assert epochs_spent(first.study) == 3 and epochs_spent(second.study) == 2
    assert optuna.get_all_study_names(second.storage_url) == ["dyhpo"]


def test_results_have_hpo4dl_fields(tmp_path: Path) -> None:
    calls = 0

    def objective(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        entry = {"epoch": epoch, "metric": configuration["x"], "loss": 1.0 - configuration["x"]}
        if calls >= 3:  # a field that appears later becomes a column of every row
            entry["late"] = calls
        return entry

    space = CS.ConfigurationSpace({"x": (0.0, 1.0)})
    tuner = Tuner(objective, space, 4, 5, tmp_path, minimize=False, seed=3)
    incumbent = tuner.run()
    assert tuner.study.direction == optuna.study.StudyDirection.MAXIMIZE
    columns = header(tuner.results_path)
    assert columns == [*HPO4DL_COLUMNS[:3], "loss", "late", *HPO4DL_COLUMNS[3:]]
    rows = read_rows(tuner.results_path)
    assert [r[""] for r in rows] == [str(i) for i in range(5)]
    assert [r["late"] for r in rows] == ["", "", "3", "4", "5"]
    best = -math.inf
    for r, t in zip(rows, tuner.study.trials, strict=True):
        x = ast.literal_eval(r["configuration"])["x"]
        assert float(r["metric"]) == x == t.params["x"] and int(r["trial"]) == t.number
        assert float(r["loss"]) == pytest.approx(1.0 - x)
        assert float(r["total_time"]) == pytest.approx(
            float(r["time"]) + float(r["overhead_time"])
        )
        assert float(r["time"]) >= 0 and float(r["overhead_time"]) >= 0
        best = max(best, x)
        assert float(r["best_metric"]) == best  # HPO4DL: the running best (cummax)
    # run() returns the row of the best epoch, as HPO4DL does (plus `trial`).
    top = max(range(5), key=lambda i: float(rows[i]["metric"]))
    assert list(incumbent) == columns[1:]
    if top < 2:
        assert incumbent["late"] is None  # not returned at that epoch
    assert incumbent["metric"] == incumbent["best_metric"] == float(rows[top]["metric"])
    assert incumbent["configuration"] == ast.literal_eval(rows[top]["configuration"])
    assert incumbent["configuration_id"] == int(rows[top]["configuration_id"])
    assert incumbent["time"] == float(rows[top]["time"])
    assert tuner.incumbent() == incumbent


# --------------------------------------------------------------------------- a real torch race
def torch_objective(
    configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
) -> dict[str, Any]:
    """Trains a small MLP; saves a *folder* at checkpoint_path (``last/last.pth``)."""
    import torch

    assert epoch == previous_epoch + 1  # DyHPO asks for one epoch at a time
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(96, generator=gen)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, configuration["hidden"]),
        torch.nn.Tanh(),
        torch.nn.Linear(configuration["hidden"], 1),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=configuration["lr"], momentum=0.9)
    file = os.path.join(checkpoint_path, "last.pth")
    if previous_epoch > 0:  # a resumed configuration finds its own state
        state = torch.load(file, weights_only=True)
        assert state["epoch"] == previous_epoch and state["configuration"] == configuration
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    else:
        assert not os.path.exists(checkpoint_path)
    for batch in range(4):
        xb, yb = x[batch * 16 : (batch + 1) * 16], y[batch * 16 : (batch + 1) * 16]
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(xb).squeeze(-1), yb).backward()
        optimizer.step()
    with torch.no_grad():
        loss = float(torch.nn.functional.mse_loss(model(x[64:]).squeeze(-1), y[64:]))
    os.makedirs(checkpoint_path, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "configuration": dict(configuration),
        },
        file,
    )
    return {"epoch": epoch, "metric": loss if math.isfinite(loss) else 1e6}


@pytest.fixture(scope="module")
def torch_race(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tuner, dict[str, Any]]:
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("torch-race")
    space = CS.ConfigurationSpace(seed=0)
    space.add(
        [
            CS.UniformFloatHyperparameter("lr", 1e-3, 0.3, log=True),
            CS.UniformIntegerHyperparameter("hidden", 2, 16),
        ]
    )
    tuner = Tuner(
        torch_objective,
        space,
        3,
        12,
        root / "out",
        "dyhpo",
        True,
        64,
        0,
        None,
        root / "storage",
        keep_checkpoints=True,
    )
    incumbent = tuner.run()
    # Continue until DyHPO resumed a paused configuration (successive-halving promotions
    # guarantee one, whatever the trajectory); run() continues the same study.
    while not any(len(c.trial_numbers) > 1 for c in get_configurations(tuner.study)):
        assert tuner.max_budget < 80, "DyHPO should resume a paused configuration"
        tuner.max_budget += 4
        incumbent = tuner.run()
    return tuner, incumbent


def test_torch_race_resumes_from_the_saved_folders(
    torch_race: tuple[Tuner, dict[str, Any]],
) -> None:
    tuner, incumbent = torch_race
    configs = get_configurations(tuner.study)
    rows = read_rows(tuner.results_path)
    # The budget is exact, counted once per epoch across resumptions and run() calls.
    assert len(rows) == epochs_spent(tuner.study) == tuner.max_budget
    by_config = {c.config_id: c for c in configs}
    epochs: dict[int, list[int]] = {}
    for r in rows:
        c = by_config[int(r["configuration_id"])]
        epoch = int(r["epoch"])
        epochs.setdefault(c.config_id, []).append(epoch)
        assert c.curve[epoch - 1] == float(r["metric"])
        assert c.step_trials[epoch - 1] == int(r["trial"])
        assert ast.literal_eval(r["configuration"]) == c.params
    assert all(e == list(range(1, len(e) + 1)) for e in epochs.values())
    assert incumbent["metric"] == min(float(r["metric"]) for r in rows)
    assert len(list(tuner.output_path.parent.iterdir())) == 1  # one experiment, continued


def test_torch_race_best_checkpoint_in_hpo4dl_layout(
    torch_race: tuple[Tuner, dict[str, Any]],
) -> None:
    import torch

    tuner, incumbent = torch_race
    # HPO4DL copies the best configuration's trial_<id> folder to <experiment>/checkpoints.
    best = tuner.output_path / "checkpoints" / "last" / "last.pth"
    state = torch.load(best, weights_only=True)
    assert state["configuration"] == incumbent["configuration"]
    config = next(
        c for c in get_configurations(tuner.study) if c.config_id == incumbent["configuration_id"]
    )
    assert state["epoch"] == config.last_step >= incumbent["epoch"]  # its latest state
    # keep_checkpoints=True: every configuration's folder stays in storage_path.
    folders = sorted((tuner.storage_path / tuner.experiment_name).iterdir())
    assert [p.name for p in folders] == sorted(
        f"trial_{c.config_id}" for c in get_configurations(tuner.study)
    )
    for c in get_configurations(tuner.study):
        saved = torch.load(
            tuner.checkpoint_dir(c.config_id) / "last" / "last.pth", weights_only=True
        )
        assert saved["epoch"] == c.last_step and saved["configuration"] == c.params


def test_run_again_needs_the_checkpoints_to_continue(tmp_path: Path) -> None:
    tuner = readme_tuner(tmp_path, max_budget=3)
    incumbent = tuner.run()
    assert tuner.run() == incumbent  # nothing more to spend: the same incumbent
    tuner.max_budget = 5
    with pytest.raises(RuntimeError, match="configuration folders were deleted.*keep_check"):
        tuner.run()


# --------------------------------------------------------------------------- objective results
def test_objective_may_return_a_dict_or_a_list(tmp_path: Path) -> None:
    def as_dict(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> dict[str, Any]:
        return {"epoch": epoch, "metric": -abs(configuration["x"] - 1) + 0.01 * epoch}

    def as_list(
        configuration: dict[str, Any], epoch: int, previous_epoch: int, checkpoint_path: str
    ) -> list[dict[str, Any]]:
        return [{"epoch": epoch, "metric": -abs(configuration["x"] - 1) + 0.01 * epoch}]

    cs = CS.ConfigurationSpace({"x": (0.0, 3.0)})
    results = []
    for objective in (as_dict, as_list):
        tuner = Tuner(objective, cs, 4, 5, tmp_path, seed=0)
        incumbent = tuner.run()
        rows = read_rows(tuner.results_path)
        assert incumbent["metric"] == max(float(r["metric"]) for r in rows)
        results.append([(r["configuration"], r["epoch"], r["metric"]) for r in rows])
    assert results[0] == results[1]  # the same seed and metrics: the same run


def test_objective_is_called_with_hpo4dl_keywords(tmp_path: Path) -> None:
    received: list[set[str]] = []

    def keywords_only(**kwargs: Any) -> dict[str, Any]:  # works with HPO4DL's keyword call
        received.append(set(kwargs))
        return {"epoch": kwargs["epoch"], "metric": kwargs["configuration"]["x"]}

    Tuner(keywords_only, CS.ConfigurationSpace({"x": (0.0, 1.0)}), 2, 2, tmp_path).run()
    assert received == [{"configuration", "epoch", "previous_epoch", "checkpoint_path"}] * 2


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
        ({"storage_path": 3}, "`storage_path` must be None or a non-empty str or pathlib.Path"),
        ({"device": ["cuda"]}, r"`device` must be None, a str such as 'cpu' or 'cuda', or a"),
        ({"objective_function": 3}, "`objective_function` must be callable"),
        ({"configuration_space": {"x": (0.0, 1.0)}}, "`configuration_space` must be a Config"),
    ],
)
def test_arguments_are_validated(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "objective_function": objective_function,
        "configuration_space": CS.ConfigurationSpace({"x": (-5.0, 10.0)}),
        "max_epochs": 27,
        "max_budget": 5,
        "output_path": tmp_path / "out",
        "storage_path": tmp_path / "storage",
    }
    with pytest.raises(ValueError, match=message):
        Tuner(**{**args, **kwargs})
    assert not any(tmp_path.iterdir())  # nothing is written for invalid arguments


def test_hyperband_optimizer_runs_with_optuna_hyperband(tmp_path: Path) -> None:
    tuner = readme_tuner(tmp_path, max_budget=40, optimizer="hyperband", max_epochs=9)
    incumbent = tuner.run()
    assert isinstance(tuner.study.pruner, optuna.pruners.HyperbandPruner)
    assert isinstance(tuner.study.sampler, optuna.samplers.RandomSampler)
    rows = read_rows(tuner.results_path)
    assert len(rows) == 40
    assert any(t.state == optuna.trial.TrialState.PRUNED for t in tuner.study.trials[:-1])
    assert incumbent["metric"] == min(float(r["metric"]) for r in rows)
    assert all(r["trial"] == r["configuration_id"] for r in rows)  # never resumed


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


def test_progress_bar_shows_epochs_of_the_budget(capfd: pytest.CaptureFixture[str]) -> None:
    # 13 start-up configurations: the bar is tested without fitting DyHPO's model.
    sampler = DyHPOSampler(max_budget=4, seed=0, n_startup_configs=13)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=DyHPOPruner())
    study.optimize(curve_objective, callbacks=[StopAfterEpochs(12)], show_progress_bar=True)
    err = capfd.readouterr().err
    counts = [int(n) for n in re.findall(r"\b(\d+)/12 \[", err)]
    assert counts, err
    assert counts[-1] == 12 and counts == sorted(counts)
    assert "epoch" in err and "best value" in err
    assert "Progress bar won't be displayed" not in err

    quiet = optuna.create_study(
        direction="maximize",
        sampler=DyHPOSampler(max_budget=4, seed=0, n_startup_configs=13),
        pruner=DyHPOPruner(),
    )
    quiet.optimize(curve_objective, callbacks=[StopAfterEpochs(6)])
    assert "/6 [" not in capfd.readouterr().err
