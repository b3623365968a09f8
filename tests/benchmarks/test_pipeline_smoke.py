"""Smoke test of the whole benchmark pipeline on a tiny budget: run, resume, report, merge.

Every method runs once on one LCBench task (if the YAHPO data is present) and on the digits MLP
(real training with checkpoints), at a budget of a few dozen epochs. The assertions check what
the benchmark promises: one results file per run, monotone incumbent trajectories, epochs
accounted exactly (and re-derived independently from the Optuna storage), checkpointed
resumption that reproduces uninterrupted training, a resumable runner, and a written report.
"""

from __future__ import annotations

import json
from pathlib import Path
import time
from typing import Any

import numpy as np
import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
import pytest

from benchmarks import merge
from benchmarks import report
from benchmarks import run
from benchmarks.methods import METHODS
from benchmarks.methods import check_available
from benchmarks.problems import parse_problems
from benchmarks.problems import resolve_lcbench_dir

BUDGET = 24
DIGITS_MAX_EPOCHS = 6


def _lcbench_available() -> bool:
    try:
        resolve_lcbench_dir()
    except FileNotFoundError:
        return False
    return True


PROBLEMS = (["lcbench:3945"] if _lcbench_available() else []) + ["digits"]
# dyhpo-rung is DyHPO with another acquisition (the method-level tests run it: test_families),
# dyhpo-mh DyHPO with the multi-horizon acquisition (test_families runs it), dyhpo-ev with
# the evidence acquisition (test_families too),
# dyhpo-bg DyHPO fitting in its helper process (tests/test_sampler.py runs that).
METHOD_NAMES = [
    m
    for m in METHODS
    if m not in ("dyhpo-rung", "dyhpo-mh", "dyhpo-ev", "dyhpo-bg")
    and (m != "smac-mf" or check_available(m) is None)
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench")
    args = [
        "--problems",
        *PROBLEMS,
        "--digits-max-epochs",
        str(DIGITS_MAX_EPOCHS),
        "--methods",
        *METHOD_NAMES,
        "--seeds",
        "0",
        "--budget",
        str(BUDGET),
        "--out",
        str(out),
        "--no-progress",
    ]
    rc = run.main(args)
    problems = parse_problems(PROBLEMS, digits_max_epochs=DIGITS_MAX_EPOCHS)
    results = {}
    for p in problems:
        for m in METHOD_NAMES:
            run_id = f"{p.name}__{m}__b{BUDGET}__s0"
            path = run.result_path(out, run_id)
            results[(p.name, m)] = json.loads(path.read_text()) if path.is_file() else None
    return {"out": out, "args": args, "rc": rc, "problems": problems, "results": results}


def _study(out: Path, res: dict[str, Any]) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(out / res["storage"]["path"])))
    return optuna.load_study(study_name=res["storage"]["study_name"], storage=storage)


def test_every_run_finished(pipeline: dict[str, Any]) -> None:
    assert pipeline["rc"] == 0
    missing = [k for k, v in pipeline["results"].items() if v is None]
    assert not missing, f"no results file for {missing}"


def test_trajectories_and_accounting(pipeline: dict[str, Any]) -> None:
    problems = {p.name: p for p in pipeline["problems"]}
    for (pname, method), res in pipeline["results"].items():
        traj = res["trajectory"]
        inc = np.asarray(traj["incumbent_value"])
        reg = np.asarray(traj["regret"])
        assert res["epochs_spent"] == BUDGET == len(inc) == len(reg), (pname, method)
        assert np.all(np.diff(inc) >= 0), f"{pname}/{method}: incumbent not monotone"
        assert np.all(np.diff(reg) <= 0), f"{pname}/{method}: regret not monotone"
        assert np.all(np.diff(traj["wall_time_s"]) >= 0)
        assert np.all(np.diff(traj["overhead_s"]) >= 0)
        # The epochs re-derived from the stored trials match the budget exactly.
        assert res["epochs_from_storage"] == BUDGET, (pname, method)
        expected = "continuation" if method.startswith("dyhpo") else "restart"
        assert res["budget_accounting"] == expected
        # Overhead is measured, positive and smaller than the wall time.
        assert 0.0 < res["overhead_s"] < res["wall_time_s"], (pname, method)
        assert res["n_decisions"] > 0
        assert res["overhead_per_decision_s"] == pytest.approx(
            res["overhead_s"] / res["n_decisions"]
        )
        # The final incumbent is the best value anywhere in the study.
        study = _study(pipeline["out"], res)
        trials = study.get_trials(deepcopy=False)
        best_stored = max(v for t in trials for v in t.intermediate_values.values())
        assert inc[-1] == pytest.approx(best_stored)
        assert res["final"]["regret"] == pytest.approx(
            problems[pname].normalised_regret(best_stored)
        )
        assert len(trials) == res["n_trials"]


def test_restart_methods_train_from_scratch(pipeline: dict[str, Any]) -> None:
    for (pname, method), res in pipeline["results"].items():
        if method == "dyhpo":
            continue
        max_epochs = res["problem"]["max_epochs"]
        trials = _study(pipeline["out"], res).get_trials(deepcopy=False)
        for t in trials:
            steps = sorted(t.intermediate_values)
            assert steps == list(range(1, len(steps) + 1)), (pname, method, t.number)
        if method == "random":
            # No pruning: every trial but the one the budget cut trains max epochs.
            assert all(len(t.intermediate_values) == max_epochs for t in trials[:-1])
            assert all(t.state == TrialState.COMPLETE for t in trials)
        if method in ("tpe-sh", "tpe-hyperband") and BUDGET >= 3 * max_epochs:
            # Enough budget for several configurations: the pruner must have stopped some.
            assert any(t.state == TrialState.PRUNED for t in trials), (pname, method)


def test_dyhpo_continuation_and_checkpoints(pipeline: dict[str, Any]) -> None:
    import optuna_dyhpo

    for (pname, method), res in pipeline["results"].items():
        if method != "dyhpo":
            continue
        assert res["epochs_from_segments"] == BUDGET
        study = _study(pipeline["out"], res)
        assert optuna_dyhpo.epochs_spent(study) == BUDGET
        assert res["resumed_trials"] > 0, f"{pname}: DyHPO never resumed a configuration"
        if not res["problem"]["needs_checkpoint"]:
            continue
        assert res["checkpoints_loaded"] == res["resumed_trials"]
        assert res["checkpoints_saved"] >= res["checkpoints_loaded"]
        # A configuration paused and resumed from its checkpoint has exactly the curve of an
        # uninterrupted training run of the same configuration.
        (problem,) = [p for p in pipeline["problems"] if p.name == pname]
        configs = optuna_dyhpo.get_configurations(study)
        resumed = [c for c in configs if len(c.trial_numbers) > 1]
        assert resumed
        config = max(resumed, key=lambda c: len(c.curve))
        learner = problem.new_learner(dict(config.params), res["seed"])
        fresh = [learner.train_epoch(e) for e in range(1, len(config.curve) + 1)]
        assert fresh == pytest.approx(list(config.curve), abs=1e-6)


def test_runner_is_resumable(pipeline: dict[str, Any]) -> None:
    out = pipeline["out"]
    files = sorted((out / "results").glob("*.json"))
    before = {f: f.stat().st_mtime_ns for f in files}
    t0 = time.perf_counter()
    assert run.main(pipeline["args"]) == 0
    assert time.perf_counter() - t0 < 10.0
    assert {f: f.stat().st_mtime_ns for f in files} == before


def test_report_and_merge(pipeline: dict[str, Any]) -> None:
    out = pipeline["out"]
    md = out / "RESULTS.md"
    assert report.main(["--results", str(out / "results"), "--output", str(md)]) == 0
    text = md.read_text()
    for method in METHOD_NAMES:
        assert f"| {method} |" in text
    assert "python -m benchmarks.run" in text and "python -m benchmarks.report" in text
    assert "Optimiser overhead" in text and "overhead ms/decision" in text
    assert "logical cores" in text
    pngs = sorted((out / "plots").glob("*.png"))
    assert any(p.name.startswith("regret_") for p in pngs)
    assert any(p.name.startswith("rank_") for p in pngs)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        assert f"plots/{p.name}" in text
    # A section another script wrote into the file survives a new report; old tables do not.
    kept = "<!-- other-script:begin -->\n## From another script\n<!-- other-script:end -->"
    md.write_text("# stale table\n\n" + kept + "\n")
    assert report.main(["--results", str(out / "results"), "--output", str(md)]) == 0
    again = md.read_text()
    assert again.count(kept) == 1 and "# stale table" not in again
    copied, _ = merge.merge(out, out / "dashboard.journal")
    assert len(copied) == len(pipeline["results"])
    storage = JournalStorage(JournalFileBackend(str(out / "dashboard.journal")))
    assert {s.study_name for s in storage.get_all_studies()} == set(copied)
